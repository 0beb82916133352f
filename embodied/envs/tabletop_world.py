"""The tabletop world of the Curious Robot tasks: table, arm, objects, cameras (owned by one env).

See ``embodied.envs.tabletop`` for the world frame, the speed tricks and what a randomised scene
draws; the head camera's pixel geometry is :class:`~embodied.envs.tabletop_view.HeadView`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pybullet as p

from embodied.envs.tabletop_view import HEAD_EYE, HEAD_FOV, HEAD_TARGET, RAY_LENGTH, HeadView
from embodied.sim import BulletSim, Camera, look_at, objects
from embodied.sim.arm import KukaArm
from embodied.sim.assets import procedural_texture, write_texture

TABLE_CENTER = (0.4, 0.0, -0.025)  # m; top surface at z = 0
TABLE_HALF = (0.65, 0.6, 0.025)  # m; wider than the head camera's view, so every pixel sees the table
WORKSPACE = ((0.40, 0.70), (-0.17, 0.17))  # m, x and y ranges of object centres
VIDEO_EYE = (1.45, -1.1, 1.0)
VIDEO_TARGET = (0.35, 0.0, 0.3)
DROP_GAP = 0.002  # m between an object's lowest point and the table when dropped
SPAWN_GAP = 0.01  # m kept free between the bounding circles of spawned objects
SETTLE_SPEED = 0.01  # m/s; objects count as settled below this speed ...
SETTLE_SPIN = 0.1  # rad/s ... and this angular speed
SETTLE_MAX_S = 1.0  # s of simulated time at most
FLUNG_Z = (-0.05, 1.5)  # m; an object outside this height range (or off the table) was flung
MAX_SPEED = 20.0  # m/s; faster than this is a blow-up
CLEARANCE = 0.03  # m kept above the tallest nearby object when the gripper comes in from above

# -- randomised scenes (randomize=True) ------------------------------------------------------
TEXTURE_KEY = "train-tabletop"  # the training pool's own key: disjoint from the evaluation's pools
TEXTURE_POOL = 64  # textures in the training pool (loaded once per world, when first drawn)
TEXTURE_PATTERNS = ("plain", "checker", "stripes", "noise", "dots")
TINT = (0.45, 1.0)  # per-channel tint of the table's and the wall's texture
LIGHT_RANGE = ((-1.0, -1.0, 0.3), (1.0, 1.0, 1.5))  # light direction, uniform in this box
BIG_TABLE_HALF = (1.6, 1.6, 0.025)  # m, the drawn table top (the collision box stays TABLE_HALF)
WALL_HALF = (0.01, 2.0, 1.5)  # m, the back wall (visual only: no collision, invisible to rays)
WALL_X = -0.4  # m, where the wall stands for the head camera (behind the robot's base)
WALL_Z = 1.0  # m, the wall's centre height


@functools.lru_cache(maxsize=4)
def training_textures(n: int = TEXTURE_POOL) -> tuple[str, ...]:
    """``n`` texture files of the training scenes: two random colours in a random pattern each.

    Drawn from ``default_rng([TEXTURE_KEY as bytes])`` and cached on disk under keys tagged
    ``"train"``: never the evaluation's pools (``embodied.eval.render._texture_pool``).
    """
    rng = np.random.default_rng([*TEXTURE_KEY.encode(), n])
    paths = []
    for i in range(n):
        pair = rng.uniform(0.1, 1.0, size=(2, 3))
        pattern = TEXTURE_PATTERNS[int(rng.integers(len(TEXTURE_PATTERNS)))]
        tex_seed = int(rng.integers(2**31))
        image = procedural_texture(pattern, pair, np.random.default_rng(tex_seed), size=64)
        key = {"train": TEXTURE_KEY, "i": i, "colors": np.round(pair, 4).tolist(), "pattern": pattern, "seed": tex_seed}
        paths.append(str(write_texture(key, image)))
    return tuple(paths)


@dataclass
class Placed:
    """An object on the table: its library spec and body id."""

    spec: objects.ObjectSpec
    body: int


class Tabletop(HeadView):
    """Table, arm, objects and cameras of one tabletop world (owned by one env).

    Args:
        size: observation image side in pixels. render_size: third-person video side in pixels.
        timestep: physics step in seconds. solver_iterations: constraint solver iterations.
        renderer: "tiny" or "egl". finger_force: N m per finger motor.
        randomize: draw the big table and the back wall, restyled by :meth:`restyle` and seen
            by the camera of :meth:`set_head_camera` (see the module docstring); False: the
            plain table and the fixed head camera.
    """

    def __init__(
        self,
        *,
        size: int = 128,
        render_size: int = 256,
        timestep: float = 1.0 / 240.0,
        solver_iterations: int = 20,
        renderer: str = "tiny",
        finger_force: float = 3.0,
        randomize: bool = False,
    ) -> None:
        big = max(size, render_size)
        self.sim = BulletSim(
            timestep=timestep, solver_iterations=solver_iterations, renderer=renderer, width=big, height=big
        )
        self.size = size
        self.finger_force = finger_force
        self.randomize = bool(randomize)
        self.camera = Camera(size, size, fov=HEAD_FOV, near=0.05, far=3.0)
        self.video_camera = Camera(render_size, render_size, fov=50.0, near=0.05, far=5.0)
        self.video_view = look_at(VIDEO_EYE, VIDEO_TARGET)
        self._focal = float(self.camera.intrinsics[1, 1])
        self._ray_length = RAY_LENGTH if self.randomize else 3.0
        self.set_head_camera(HEAD_EYE, HEAD_TARGET)
        self.placed: list[Placed] = []
        self.wall = -1
        self._background: np.ndarray | None = None
        self.build()

    # -- world ---------------------------------------------------------------------------
    def build(self) -> None:
        """(Re)build the world from nothing: table and arm. Deterministic."""
        sim = self.sim
        sim.reset_world()
        self.placed = []
        if self.randomize:  # drawn big (textured by restyle()); it collides at TABLE_HALF
            big = {"halfExtents": BIG_TABLE_HALF}
            table = sim.create_body("box", TABLE_CENTER, halfExtents=TABLE_HALF, visual_size=big)
        else:
            table = sim.create_body("box", TABLE_CENTER, rgba=(0.62, 0.52, 0.42, 1.0), halfExtents=TABLE_HALF)
        self.table = sim.add_body("table", table)
        sim.set_dynamics(self.table, lateralFriction=0.8, restitution=0.0)
        self.arm = KukaArm(sim, finger_force=self.finger_force)
        self._background = None
        self._table_visible = True
        if self.randomize:  # textures, tints and light come from restyle(); no single table colour
            wall = sim.create_body("box", (WALL_X, 0.0, WALL_Z), collision=False, halfExtents=WALL_HALF)
            self.wall = sim.add_body("wall", wall)
            self._table_rgba = (1.0, 1.0, 1.0, 1.0)
            self._wall_rgba = (1.0, 1.0, 1.0, 1.0)
            self.table_rgb = np.zeros(3, np.uint8)
            return
        # The table top is evenly lit (no shadows), so its colour in the head camera is one RGB
        # value: measure it once, then draw observations without the table and fill the empty
        # pixels with it. Bit-identical images, ~4x cheaper (the full-frame table dominates
        # TinyRenderer's cost).
        self.arm.set_visible(False)
        frame = self.camera.render(sim, self.view, seg=True)
        assert frame.seg is not None
        self.table_rgb = frame.rgb[frame.seg == self.table][0].copy()
        self._table_rgba = sim.visual_shapes(self.table)[0][7]

    def restyle(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the table's and the wall's texture and tint and the light direction from ``rng``.

        Only with ``randomize``. Textures come from :func:`training_textures`, each loaded into
        this world the first time it is drawn. Returns the draws (texture indices, tints, light).
        """
        assert self.randomize, "restyle() needs a Tabletop(randomize=True)"
        pool = training_textures()
        picks = rng.integers(len(pool), size=2)
        tints = rng.uniform(*TINT, size=(2, 3))
        light = rng.uniform(*LIGHT_RANGE)
        self._table_rgba = (*(float(c) for c in tints[0]), 1.0)
        self._wall_rgba = (*(float(c) for c in tints[1]), 1.0)
        alpha = 1.0 if self._table_visible else 0.0
        for body, k, rgba in ((self.table, picks[0], self._table_rgba), (self.wall, picks[1], self._wall_rgba)):
            key = ("train-texture", int(k))
            if key not in self.sim.cache:
                self.sim.cache[key] = self.sim.load_texture(pool[int(k)])
            self.sim.set_color(body, (*rgba[:3], alpha), texture=self.sim.cache[key])
        self.camera.light_direction = tuple(float(c) for c in light)
        self._background = None
        return {"textures": picks, "tints": tints, "light": light}

    def snap_background(self) -> None:
        """Render the backdrop (table and wall, arm hidden) the observations are composited on.

        Call it after :meth:`restyle` and :meth:`set_head_camera`, before objects are placed.
        """
        self.arm.set_visible(False)
        self._show_table(True)
        self._background = self.camera.render(self.sim, self.view).rgb

    def clear(self) -> None:
        """Remove every object (newest first, so the next spawns get the same body ids again)."""
        for placed in reversed(self.placed):
            self.sim.remove(placed.body)
        self.sim.bodies = {k: v for k, v in self.sim.bodies.items() if k in ("table", "arm", "wall")}
        self.placed = []

    def populate(
        self,
        rng: np.random.Generator,
        pool: Sequence[objects.ObjectSpec],
        n: int,
        workspace: tuple[tuple[float, float], tuple[float, float]] = WORKSPACE,
    ) -> list[Placed]:
        """Drop ``n`` objects drawn from ``pool`` at random non-overlapping places and yaws (all draws from ``rng``).

        workspace: ((x min, x max), (y min, y max)) m for the objects' centres.
        """
        picks = rng.choice(len(pool), size=n, replace=len(pool) < n)
        centres: list[tuple[float, float, float]] = []
        for k in picks:
            spec = pool[int(k)]
            radius = 0.5 * math.hypot(spec.extents[0], spec.extents[1])
            for _ in range(50):
                x = rng.uniform(*workspace[0])
                y = rng.uniform(*workspace[1])
                if all(math.hypot(x - cx, y - cy) > radius + cr + SPAWN_GAP for cx, cy, cr in centres):
                    break
            else:
                continue  # no room left: fewer objects this episode
            yaw = rng.uniform(-math.pi, math.pi)
            centres.append((x, y, radius))
            z = spec.extents[2] / 2.0 + DROP_GAP
            body = objects.spawn(self.sim, spec, (x, y, z), p.getQuaternionFromEuler((0.0, 0.0, yaw)))
            self.placed.append(Placed(spec, body))
        return self.placed

    def settle(self, max_seconds: float = SETTLE_MAX_S, chunk: int = 6) -> int:
        """Step until every object is still (or ``max_seconds`` pass); returns the steps taken."""
        sim = self.sim
        limit = max(chunk, int(max_seconds / sim.timestep))
        steps = 0
        while steps < limit:
            sim.step(chunk)
            steps += chunk
            if self.still():
                break
        return steps

    def still(self) -> bool:
        for placed in self.placed:
            lin, ang = self.sim.base_velocity(placed.body)
            if math.hypot(*lin) > SETTLE_SPEED or math.hypot(*ang) > SETTLE_SPIN:
                return False
        return True

    def poses(self) -> np.ndarray:
        """(n, 7) float64 object poses: position (m) and xyzw quaternion."""
        out = np.zeros((len(self.placed), 7))
        for i, placed in enumerate(self.placed):
            pos, orn = self.sim.base_pose(placed.body)
            out[i, :3], out[i, 3:] = pos, orn
        return out

    def tallest_near(self, x: float, y: float, radius: float = 0.15) -> float:
        """Top (m) of the tallest object whose AABB comes within ``radius`` m of (x, y); 0 when none."""
        top = 0.0
        for placed in self.placed:
            lo, hi = self.sim.aabb(placed.body)
            dx = max(lo[0] - x, 0.0, x - hi[0])
            dy = max(lo[1] - y, 0.0, y - hi[1])
            if dx * dx + dy * dy < radius * radius:
                top = max(top, hi[2])
        return top

    def object_pixels(self) -> np.ndarray:
        """(n, 2) float32 (u, v) pixel of each object's top centre (its AABB's top face centre)."""
        out = np.zeros((len(self.placed), 2), np.float32)
        for i, placed in enumerate(self.placed):
            lo, hi = self.sim.aabb(placed.body)
            out[i] = self.world_to_pixel(((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2])) - 0.5
        return out

    def valid(self) -> bool:
        """False after a physics blow-up: NaN states, objects flung off the table or moving absurdly fast."""
        if not self.arm.finite():
            return False
        for placed in self.placed:
            pos, orn = self.sim.base_pose(placed.body)
            lin, ang = self.sim.base_velocity(placed.body)
            values = (*pos, *orn, *lin, *ang)
            if not all(math.isfinite(v) for v in values):
                return False
            if not FLUNG_Z[0] < pos[2] < FLUNG_Z[1] or math.hypot(*lin) > MAX_SPEED:
                return False
            if abs(pos[0] - TABLE_CENTER[0]) > TABLE_HALF[0] or abs(pos[1] - TABLE_CENTER[1]) > TABLE_HALF[1]:
                return False
        return True

    # -- sensing -------------------------------------------------------------------------
    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """Head camera image with the arm hidden: rgb (H, W, 3) uint8 and mask (H, W) int16.

        mask holds the index into ``placed`` of the object seen at each pixel, -1 elsewhere.
        """
        self.arm.set_visible(False)
        if self.randomize and self._background is None:
            self._snap_background_hiding_objects()
        self._show_table(False)
        frame = self.camera.render(self.sim, self.view, seg=True)
        assert frame.seg is not None
        empty = frame.seg < 0
        frame.rgb[empty] = self._background[empty] if self.randomize else self.table_rgb
        lut = np.full(max([self.table, self.arm.body] + [o.body for o in self.placed]) + 2, -1, dtype=np.int16)
        for i, placed in enumerate(self.placed):
            lut[placed.body + 1] = i
        seg = np.clip(frame.seg, -1, len(lut) - 2)
        return frame.rgb, lut[seg + 1]

    def render_video(self) -> np.ndarray:
        """(S, S, 3) uint8 third-person view with the arm drawn."""
        self.arm.set_visible(True)
        self._show_table(True)
        return self.video_camera.render(self.sim, self.video_view).rgb

    def _snap_background_hiding_objects(self) -> None:
        """The backdrop without the objects, when the scene already holds some (objects hidden for it)."""
        colors = []
        for placed in self.placed:
            data = self.sim.visual_shapes(placed.body)
            colors.append([(d[1], d[7]) for d in data])
            for link, rgba in colors[-1]:
                self.sim.set_color(placed.body, (*rgba[:3], 0.0), link)
        self.snap_background()
        for placed, links in zip(self.placed, colors, strict=True):
            for link, rgba in links:
                self.sim.set_color(placed.body, rgba, link)

    def _show_table(self, visible: bool) -> None:
        """Show or hide the table (and, when randomised, the wall) in renders."""
        if visible != self._table_visible:
            r, g, b, a = self._table_rgba
            self.sim.set_color(self.table, (r, g, b, a if visible else 0.0))
            if self.wall >= 0 and self.randomize:
                r, g, b, a = self._wall_rgba
                self.sim.set_color(self.wall, (r, g, b, a if visible else 0.0))
            self._table_visible = visible

    def close(self) -> None:
        self.sim.close()
