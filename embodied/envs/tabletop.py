"""The shared tabletop world of the Curious Robot tasks (grasp, push, poke, look).

A Kuka arm with a parallel gripper stands at the back edge of a table; one to
several library objects are dropped at random places and yaws and settled
before the first observation. A fixed head camera looks down at the workspace
(observation, ``size`` x ``size`` px); a separate third-person camera films the
scene for ``render()``.

World frame: metres, z up, table top at z = 0, the arm's base at the origin, the
workspace (object centres) in x 0.40..0.70, y -0.17..0.17. The head camera
stands at the far side of the table looking back at the robot, so image u
(columns) grows with world +y and image v (rows) grows with world +x.

Speed: the table and arm are loaded once per env and reused (loading the arm
costs ~40 ms); episodes only remove and re-spawn objects (memoized shapes), teleport
the arm, settle until velocities vanish, and render the observation with the
arm hidden (the real robot also takes its picture with the arm out of view; it
makes frames ~8x cheaper). Reuse keeps episodes history independent because
bodies are recreated in the same order and get the same ids (PyBullet reuses
freed ids last-in first-out); tests check it bit for bit. After a physics
blow-up the world is rebuilt from scratch.

Randomised scenes (``randomize=True``, the default; ``randomize=False`` gives the plain
scenes of before, bit for bit): every episode draws from the env's ``np_random``

* the table's texture and tint and a back wall's texture and tint: textures from a
  training-only pool (:func:`training_textures`, generated under its own key, never the
  evaluation's ``backdrop`` / ``palette`` pools), tints uniform in ``TINT`` per channel;
  the table is drawn ``BIG_TABLE_HALF`` wide (its collision box stays ``TABLE_HALF``) and the
  wall stands ``WALL_X`` behind the robot, 4 m wide and 3 m tall;
* the light direction, uniform in ``LIGHT_RANGE`` (the evaluation's range);
* the head camera: it keeps facing the robot from the far side of the table (image u =
  world +y, rows grow with world +x) but its elevation, distance and aim point
  (``HEAD_TARGET_RANGE``) vary; the elevation and distance ranges are the env class's
  ``head_elevation`` / ``head_distance`` (defaults ``HEAD_ELEVATION`` 45-75 deg and
  ``HEAD_DISTANCE`` 0.62-0.9 m; Push and Poke set their own, see their docstrings). Every pixel <-> world
  mapping (``pixel_to_world``, ``world_to_pixel``, ``object_pixels``) uses the episode's camera.

The observation of a randomised scene costs one extra render per episode: the empty,
textured backdrop is rendered once after it is drawn, and each observation renders only the
objects and fills the rest from it (no shadows, so the composite is the full render).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from embodied.envs.validate import check_categories, check_positive_int, check_split
from embodied.sim import BulletSim, Camera, look_at, objects
from embodied.sim.arm import HOME, KukaArm
from embodied.sim.assets import procedural_texture, write_texture

TABLE_CENTER = (0.4, 0.0, -0.025)  # m; top surface at z = 0
TABLE_HALF = (0.65, 0.6, 0.025)  # m; wider than the head camera's view, so every pixel sees the table
WORKSPACE = ((0.40, 0.70), (-0.17, 0.17))  # m, x and y ranges of object centres
HEAD_EYE = (0.85, 0.0, 0.58)  # m; outside every mesh (TinyRenderer can hang with the eye inside one)
HEAD_TARGET = (0.55, 0.0, 0.0)
HEAD_FOV = 40.0  # degrees, vertical
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
HEAD_ELEVATION = (math.radians(45.0), math.radians(75.0))  # head camera elevation (default 62.7 deg)
HEAD_DISTANCE = (0.62, 0.9)  # m from the aim point (default 0.65 m)
HEAD_TARGET_RANGE = ((0.50, 0.60), (-0.04, 0.04))  # m, the aim point's x and y on the table
REACH = ((0.15, 0.95), (-0.5, 0.5))  # m; a randomised camera's pixels off the table map into this box
RAY_LENGTH = 10.0  # m, pixel rays of a randomised camera (the default camera's are 3 m)


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


class Tabletop:
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

    def set_head_camera(self, eye: Sequence[float], target: Sequence[float]) -> None:
        """Point the head camera from ``eye`` at ``target`` (m); every pixel <-> world mapping follows."""
        self.eye = tuple(float(c) for c in eye)
        self.target = tuple(float(c) for c in target)
        self.view = look_at(self.eye, self.target)
        # camera-to-world rotation (columns: camera x, y, z axes in the world) for pixel rays
        v = np.asarray(self.view, dtype=np.float64).reshape(4, 4).T  # world -> camera, row-major
        self._cam_rot = v[:3, :3].T
        self._eye = np.asarray(self.eye, dtype=np.float64)
        self._background = None

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

    def draw_head_camera(
        self,
        rng: np.random.Generator,
        elevation: tuple[float, float] = HEAD_ELEVATION,
        distance: tuple[float, float] = HEAD_DISTANCE,
        target: tuple[tuple[float, float], tuple[float, float]] = HEAD_TARGET_RANGE,
    ) -> None:
        """A random head camera: aim point on the table in ``target`` (x, y ranges, m), then
        elevation (rad) and distance (m) uniform in their ranges, facing -x (image u = world +y)."""
        tx, ty = rng.uniform(target[0][0], target[0][1]), rng.uniform(target[1][0], target[1][1])
        el = rng.uniform(*elevation)
        d = rng.uniform(*distance)
        aim = np.array([tx, ty, 0.0])
        self.set_head_camera(aim + d * np.array([math.cos(el), 0.0, math.sin(el)]), aim)

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

    def pixel_ray(self, u: float, v: float) -> np.ndarray:
        """Unit world direction (3,) of the ray through the centre of pixel (u, v) (column, row)."""
        c = self.size / 2.0
        d_cam = np.array([(u + 0.5 - c) / self._focal, -(v + 0.5 - c) / self._focal, -1.0])
        d = self._cam_rot @ d_cam
        return d / np.linalg.norm(d)

    def pixel_to_world(self, u: float, v: float) -> tuple[np.ndarray, int]:
        """The first surface seen at pixel (u, v): world point (3,) m and index in ``placed`` (-1: table).

        With ``randomize``, table points (and pixels that see the wall or the sky) are clamped into
        ``REACH`` (x, y), so an action never sends the arm out of its reach.
        """
        d = self.pixel_ray(u, v)
        hit = self.sim.ray(self._eye.tolist(), (self._eye + self._ray_length * d).tolist())
        if hit[0] < 0:  # past the table's edge: intersect the table plane
            if not self.randomize:
                return self._eye + d * (-self._eye[2] / d[2]), -1
            # a randomised camera can see the wall or above the horizon: keep the point in reach
            point = self._eye + d * (-self._eye[2] / d[2]) if d[2] < -1e-3 else self._eye + self._ray_length * d
            x = min(max(point[0], REACH[0][0]), REACH[0][1])
            y = min(max(point[1], REACH[1][0]), REACH[1][1])
            return np.array([x, y, 0.0]), -1
        slot = next((i for i, o in enumerate(self.placed) if o.body == hit[0]), -1)
        point = np.asarray(hit[3], dtype=np.float64)
        if self.randomize and slot < 0:  # the table, seen further out than the arm reaches
            point[0] = min(max(point[0], REACH[0][0]), REACH[0][1])
            point[1] = min(max(point[1], REACH[1][0]), REACH[1][1])
        return point, slot

    def pixel_on_plane(self, u: float, v: float, z: float = 0.0) -> np.ndarray | None:
        """World point (3,) where the ray through pixel (u, v) meets the plane at height ``z`` (m); None if never."""
        d = self.pixel_ray(u, v)
        if d[2] > -1e-6 or self._eye[2] <= z:
            return None
        return self._eye + d * ((z - self._eye[2]) / d[2])

    def image_direction_on_table(self, u: float, v: float, angle: float, z: float = 0.0) -> tuple[float, float]:
        """World (x, y) unit vector of the table-plane direction that image direction ``angle`` (rad,
        counter-clockwise from u, v pointing down) shows at pixel (u, v), with the current camera."""
        a = self.pixel_on_plane(u, v, z)
        b = self.pixel_on_plane(u + 2.0 * math.cos(angle), v - 2.0 * math.sin(angle), z)
        if a is None or b is None or math.hypot(b[0] - a[0], b[1] - a[1]) < 1e-9:
            return -math.sin(angle), math.cos(angle)  # seen from straight above
        n = math.hypot(b[0] - a[0], b[1] - a[1])
        return (b[0] - a[0]) / n, (b[1] - a[1]) / n

    def world_to_pixel(self, point: Sequence[float]) -> np.ndarray:
        """(u, v) float pixel coordinates of a world point (pixel centres at integer + 0.5)."""
        rel = self._cam_rot.T @ (np.asarray(point, dtype=np.float64) - self._eye)
        c = self.size / 2.0
        return np.array([c + self._focal * rel[0] / -rel[2], c - self._focal * rel[1] / -rel[2]])

    def close(self) -> None:
        self.sim.close()


def check_n_objects(value: Any) -> tuple[int, int]:
    """``n_objects`` as (min, max): an int n -> (n, n); a pair -> itself; ValueError otherwise."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = (check_positive_int("n_objects", v) for v in value)
        if lo > hi:
            raise ValueError(f"n_objects={list(value)}; expected [min, max] with min <= max")
        return lo, hi
    n = check_positive_int("n_objects", value)
    return n, n


class TabletopEnv(gym.Env):
    """Base of the tabletop envs: validation, scene reset, observation, blow-up handling, video.

    Args:
        size: observation width = height in pixels.
        split: "train" or "heldout" object instances. categories: restrict to these library categories.
        n_objects: objects per scene, an int or [min, max].
        render_size: pixels of ``render()`` frames. render_mode: None or "rgb_array".
        timestep: physics step (s). solver_iterations: constraint solver iterations.
        renderer: "tiny" (CPU) or "egl" (GPU).
        randomize: True (default): every episode draws the table and wall textures and tints,
            the light direction and the head camera's elevation, distance and aim (see the
            module docstring for the ranges); False: the plain table, fixed light and head
            camera of before (bit-identical observations for the same seed and actions).

    Observations are Dicts with ``rgb`` (H, W, 3) uint8 plus the task's float32 vectors,
    declared with :meth:`observe_vectors`. The tasks move the arm with its primitives
    (``KukaArm.steps_for``, ``descend_until``, ``closing_yaw`` in ``embodied.sim.arm``) and
    approach from ``CLEARANCE`` above the tallest nearby object.
    Every info has these keys, padded to K = the most objects this env places (``n_objects``
    max), so the shapes never depend on the scene and vector envs can stack them::

        n_objects      int               n, objects on the table
        instances      (K,) int64        library uids (-1 pad)
        categories     list of K str     ("" pad)
        category_ids   (K,) int64        (-1 pad)
        mask           (H, W) int16      object index per pixel (-1 = table)
        object_pixels  (K, 2) float32    (u, v) of each object's top centre (-1 pad)
        poses          (K, 7) float64    position (m) + xyzw quaternion (0 pad)
        camera_eye     (3,) float64      m, the camera of this observation; camera_target (3,)
                                         float64 m, the point it looks at (z up)
        light_direction (3,) float64     the renderer's light direction
        invalid        bool              False

    After a physics blow-up (NaN, objects flung off the table) the step's info is only
    ``invalid`` (True) and ``success`` (False); the episode ends there and the observation is
    all zeros, never half-simulated data.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    default_n_objects: Any = (1, 3)
    workspace = WORKSPACE
    head_elevation = HEAD_ELEVATION  # rad, randomised head camera (see the module docstring)
    head_distance = HEAD_DISTANCE  # m

    def __init__(
        self,
        *,
        size: int = 128,
        split: str = "train",
        categories: Sequence[str] | None = None,
        n_objects: int | Sequence[int] | None = None,
        render_size: int = 256,
        render_mode: str | None = None,
        timestep: float = 1.0 / 240.0,
        solver_iterations: int = 20,
        renderer: str = "tiny",
        finger_force: float = 3.0,
        randomize: bool = True,
    ) -> None:
        self.size = check_positive_int("size", size)
        if not isinstance(randomize, (bool, np.bool_)):
            raise ValueError(f"randomize={randomize!r}; expected true or false")
        self.randomize = bool(randomize)
        check_positive_int("render_size", render_size)
        check_positive_int("solver_iterations", solver_iterations)
        self.split = check_split(split)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; expected None or 'rgb_array'")
        if not (isinstance(timestep, (int, float)) and math.isfinite(timestep) and 0 < timestep <= 0.02):
            raise ValueError(f"timestep={timestep!r}; expected seconds in (0, 0.02]")
        categories = check_categories(categories)
        self.n_objects = check_n_objects(self.default_n_objects if n_objects is None else n_objects)
        self.render_mode = render_mode
        self.pool = objects.instances(split, categories)
        self.scene = Tabletop(
            size=self.size,
            render_size=render_size,
            timestep=timestep,
            solver_iterations=solver_iterations,
            renderer=renderer,
            finger_force=finger_force,
            randomize=self.randomize,
        )
        self.sim = self.scene.sim
        self._rebuild = False
        self._started = False
        self.rgb_space = spaces.Box(0, 255, shape=(self.size, self.size, 3), dtype=np.uint8)
        self.vectors: dict[str, np.ndarray] = {}  # the task's observation vectors (see observe_vectors)

    def observe_vectors(self, **boxes: spaces.Box) -> None:
        """Declare the task's observation vectors: the observation space becomes
        ``Dict(rgb, **boxes)``; ``self.vectors[name]`` holds each one's current value, zeros at
        every reset until the task writes it; observations carry copies."""
        self.observation_space = spaces.Dict({"rgb": self.rgb_space, **boxes})
        self.vectors = {name: np.zeros(box.shape, box.dtype) for name, box in boxes.items()}

    # -- episode -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """A new scene, a pure function of the draws from ``np_random``; the arm waits at HOME."""
        super().reset(seed=seed)
        self._new_scene()
        self._started = True
        self.vectors = {name: np.zeros_like(value) for name, value in self.vectors.items()}
        self._on_reset()
        return self._observe_reset()

    def _new_scene(self) -> None:
        """Build this episode's scene from ``np_random`` draws (the tabletop; Look may take a room)."""
        scene = self.scene
        for _ in range(20):  # a scene that blows up while settling is drawn again (rare)
            if self._rebuild:
                scene.build()
                self._rebuild = False
            scene.clear()
            scene.arm.reset(HOME)
            if self.randomize:
                self._restyle()
            n = int(self.np_random.integers(self.n_objects[0], self.n_objects[1] + 1))
            scene.populate(self.np_random, self.pool, n, self.workspace)
            scene.settle()
            if scene.valid():
                break
            self._rebuild = True
        else:
            raise RuntimeError("could not build a stable tabletop scene in 20 tries")

    def _restyle(self) -> None:
        """Hook (randomised scenes, before objects are placed): textures, light, head camera, backdrop."""
        self.scene.restyle(self.np_random)
        self.scene.draw_head_camera(self.np_random, self.head_elevation, self.head_distance)
        self.scene.snap_background()

    def _on_reset(self) -> None:
        """Hook: per-episode state of the task."""

    def _observe_reset(self) -> tuple[dict, dict]:
        """Hook: the first observation and info of an episode."""
        rgb, mask = self.scene.observe()
        return self._obs(rgb), self._info(mask)

    def _obs(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """The observation Dict for ``rgb``: ``rgb`` and a copy of each of ``vectors``."""
        return {"rgb": rgb, **{name: value.copy() for name, value in self.vectors.items()}}

    def _info(self, mask: np.ndarray) -> dict[str, Any]:
        placed = self.scene.placed
        n, k = len(placed), self.n_objects[1]
        return {
            "n_objects": n,
            "instances": self.pad(np.array([o.spec.uid for o in placed], dtype=np.int64), -1),
            "categories": [o.spec.category for o in placed] + [""] * (k - n),
            "category_ids": self.pad(np.array([o.spec.category_id for o in placed], dtype=np.int64), -1),
            "mask": mask,
            "object_pixels": self.pad(self.scene.object_pixels(), -1.0),
            "poses": self.pad(self.scene.poses(), 0.0),
            "camera_eye": np.array(self.scene.eye, dtype=np.float64),
            "camera_target": np.array(self.scene.target, dtype=np.float64),
            "light_direction": np.array(self.scene.camera.light_direction, dtype=np.float64),
            "invalid": False,
        }

    def pad(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Per-object rows padded with ``fill`` to the env's maximum object count.

        Fixed shapes let vector envs stack infos (Gymnasium needs equal shapes across sub-envs).
        """
        k = self.n_objects[1]
        out = np.full((k, *values.shape[1:]), fill, dtype=values.dtype)
        out[: len(values)] = values[:k]
        return out

    def _require_reset(self) -> None:
        if not self._started:
            raise RuntimeError("call reset() before step()")

    def _invalid(self) -> tuple[dict, float, bool, bool, dict]:
        """End the episode after a blow-up: zero observation, ``info["invalid"]``; the next reset rebuilds."""
        self._rebuild = True
        self._started = False
        obs = {k: np.zeros_like(v) for k, v in self._obs(np.zeros((self.size, self.size, 3), np.uint8)).items()}
        info = {"invalid": True, "success": False}
        return obs, 0.0, True, False, info

    def target_of(self, slot: int) -> dict[str, Any]:
        """instance / category / category_id of the object at index ``slot`` (-1, "", -1 for none)."""
        if slot < 0:
            return {"instance": -1, "category": "", "category_id": -1}
        spec = self.scene.placed[slot].spec
        return {"instance": spec.uid, "category": spec.category, "category_id": spec.category_id}

    def render(self) -> np.ndarray | None:
        """(S, S, 3) uint8 third-person frame of the current state (render_mode "rgb_array")."""
        if self.render_mode != "rgb_array":
            return None
        return self.scene.render_video()

    def close(self) -> None:
        self.scene.close()


def number(value: Any) -> str:
    """A number for an error message: ``5``, ``5.5``, ``nan`` (not ``np.float64(5.5)``)."""
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


def check_pixel(name: str, value: Any, size: int) -> int:
    """A pixel coordinate as int, or ValueError naming it unless it is an integer in [0, size)."""
    v = float(value)
    if not math.isfinite(v) or not v.is_integer() or not 0 <= v < size:
        raise ValueError(f"{name}={number(value)}; expected an integer pixel coordinate in [0, {size})")
    return int(v)


def as_vector(action: Any, length: int, what: str) -> np.ndarray:
    """``action`` as a float64 vector of ``length``, or ValueError naming it."""
    try:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"action={action!r}; expected {what}") from None
    if a.shape != (length,):
        raise ValueError(f"action={action!r} has {a.size} values; expected {what}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action={action!r} contains NaN or inf; expected {what}")
    return a
