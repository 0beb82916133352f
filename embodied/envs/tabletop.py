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
"""

from __future__ import annotations

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
    ) -> None:
        big = max(size, render_size)
        self.sim = BulletSim(
            timestep=timestep, solver_iterations=solver_iterations, renderer=renderer, width=big, height=big
        )
        self.size = size
        self.finger_force = finger_force
        self.camera = Camera(size, size, fov=HEAD_FOV, near=0.05, far=3.0)
        self.view = look_at(HEAD_EYE, HEAD_TARGET)
        self.video_camera = Camera(render_size, render_size, fov=50.0, near=0.05, far=5.0)
        self.video_view = look_at(VIDEO_EYE, VIDEO_TARGET)
        # camera-to-world rotation (columns: camera x, y, z axes in the world) for pixel rays
        v = np.asarray(self.view, dtype=np.float64).reshape(4, 4).T  # world -> camera, row-major
        self._cam_rot = v[:3, :3].T
        self._eye = np.asarray(HEAD_EYE, dtype=np.float64)
        self._focal = float(self.camera.intrinsics[1, 1])
        self.placed: list[Placed] = []
        self.build()

    # -- world ---------------------------------------------------------------------------
    def build(self) -> None:
        """(Re)build the world from nothing: table and arm. Deterministic."""
        sim = self.sim
        sim.reset_world()
        self.placed = []
        col = sim.p.createCollisionShape(p.GEOM_BOX, halfExtents=TABLE_HALF)
        vis = sim.p.createVisualShape(p.GEOM_BOX, halfExtents=TABLE_HALF, rgbaColor=(0.62, 0.52, 0.42, 1.0))
        self.table = sim.add_body("table", sim.p.createMultiBody(0.0, col, vis, TABLE_CENTER))
        sim.p.changeDynamics(self.table, -1, lateralFriction=0.8, restitution=0.0)
        self.arm = KukaArm(sim, finger_force=self.finger_force)
        # The table top is evenly lit (no shadows), so its colour in the head camera is one RGB
        # value: measure it once, then draw observations without the table and fill the empty
        # pixels with it. Bit-identical images, ~4x cheaper (the full-frame table dominates
        # TinyRenderer's cost).
        self.arm.set_visible(False)
        frame = self.camera.render(sim, self.view, seg=True)
        assert frame.seg is not None
        self.table_rgb = frame.rgb[frame.seg == self.table][0].copy()
        self._table_rgba = sim.p.getVisualShapeData(self.table)[0][7]
        self._table_visible = True

    def clear(self) -> None:
        """Remove every object (newest first, so the next spawns get the same body ids again)."""
        for placed in reversed(self.placed):
            self.sim.p.removeBody(placed.body)
        self.sim.bodies = {k: v for k, v in self.sim.bodies.items() if k in ("table", "arm")}
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
            lin, ang = self.sim.p.getBaseVelocity(placed.body)
            if math.hypot(*lin) > SETTLE_SPEED or math.hypot(*ang) > SETTLE_SPIN:
                return False
        return True

    def poses(self) -> np.ndarray:
        """(n, 7) float64 object poses: position (m) and xyzw quaternion."""
        out = np.zeros((len(self.placed), 7))
        for i, placed in enumerate(self.placed):
            pos, orn = self.sim.p.getBasePositionAndOrientation(placed.body)
            out[i, :3], out[i, 3:] = pos, orn
        return out

    def tallest_near(self, x: float, y: float, radius: float = 0.15) -> float:
        """Top (m) of the tallest object whose AABB comes within ``radius`` m of (x, y); 0 when none."""
        top = 0.0
        for placed in self.placed:
            lo, hi = self.sim.p.getAABB(placed.body)
            dx = max(lo[0] - x, 0.0, x - hi[0])
            dy = max(lo[1] - y, 0.0, y - hi[1])
            if dx * dx + dy * dy < radius * radius:
                top = max(top, hi[2])
        return top

    def object_pixels(self) -> np.ndarray:
        """(n, 2) float32 (u, v) pixel of each object's top centre (its AABB's top face centre)."""
        out = np.zeros((len(self.placed), 2), np.float32)
        for i, placed in enumerate(self.placed):
            lo, hi = self.sim.p.getAABB(placed.body)
            out[i] = self.world_to_pixel(((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2])) - 0.5
        return out

    def valid(self) -> bool:
        """False after a physics blow-up: NaN states, objects flung off the table or moving absurdly fast."""
        if not self.arm.finite():
            return False
        for placed in self.placed:
            pos, orn = self.sim.p.getBasePositionAndOrientation(placed.body)
            lin, ang = self.sim.p.getBaseVelocity(placed.body)
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
        self._show_table(False)
        frame = self.camera.render(self.sim, self.view, seg=True)
        assert frame.seg is not None
        frame.rgb[frame.seg < 0] = self.table_rgb
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

    def _show_table(self, visible: bool) -> None:
        if visible != self._table_visible:
            r, g, b, a = self._table_rgba
            self.sim.p.changeVisualShape(self.table, -1, rgbaColor=(r, g, b, a if visible else 0.0))
            self._table_visible = visible

    def pixel_ray(self, u: float, v: float) -> np.ndarray:
        """Unit world direction (3,) of the ray through the centre of pixel (u, v) (column, row)."""
        c = self.size / 2.0
        d_cam = np.array([(u + 0.5 - c) / self._focal, -(v + 0.5 - c) / self._focal, -1.0])
        d = self._cam_rot @ d_cam
        return d / np.linalg.norm(d)

    def pixel_to_world(self, u: float, v: float) -> tuple[np.ndarray, int]:
        """The first surface seen at pixel (u, v): world point (3,) m and index in ``placed`` (-1: table)."""
        d = self.pixel_ray(u, v)
        hit = self.sim.p.rayTest(self._eye.tolist(), (self._eye + 3.0 * d).tolist())[0]
        if hit[0] < 0:  # past the table's edge: intersect the table plane
            return self._eye + d * (-self._eye[2] / d[2]), -1
        slot = next((i for i, o in enumerate(self.placed) if o.body == hit[0]), -1)
        return np.asarray(hit[3], dtype=np.float64), slot

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

    Observations are Dicts with ``rgb`` (H, W, 3) uint8 plus the task's float32 vectors.
    Every info has these keys, padded to K = the most objects this env places (``n_objects``
    max), so the shapes never depend on the scene and vector envs can stack them::

        n_objects      int               n, objects on the table
        instances      (K,) int64        library uids (-1 pad)
        categories     list of K str     ("" pad)
        category_ids   (K,) int64        (-1 pad)
        mask           (H, W) int16      object index per pixel (-1 = table)
        object_pixels  (K, 2) float32    (u, v) of each object's top centre (-1 pad)
        poses          (K, 7) float64    position (m) + xyzw quaternion (0 pad)
        invalid        bool              False

    After a physics blow-up (NaN, objects flung off the table) the step's info is only
    ``invalid`` (True) and ``success`` (False); the episode ends there and the observation is
    all zeros, never half-simulated data.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    default_n_objects: Any = (1, 3)
    workspace = WORKSPACE

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
    ) -> None:
        self.size = check_positive_int("size", size)
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
        )
        self.sim = self.scene.sim
        self._rebuild = False
        self._started = False
        self.rgb_space = spaces.Box(0, 255, shape=(self.size, self.size, 3), dtype=np.uint8)

    # -- episode -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """A new scene, a pure function of the draws from ``np_random``; the arm waits at HOME."""
        super().reset(seed=seed)
        scene = self.scene
        for _ in range(20):  # a scene that blows up while settling is drawn again (rare)
            if self._rebuild:
                scene.build()
                self._rebuild = False
            scene.clear()
            scene.arm.reset(HOME)
            n = int(self.np_random.integers(self.n_objects[0], self.n_objects[1] + 1))
            scene.populate(self.np_random, self.pool, n, self.workspace)
            scene.settle()
            if scene.valid():
                break
            self._rebuild = True
        else:
            raise RuntimeError("could not build a stable tabletop scene in 20 tries")
        self._started = True
        self._on_reset()
        return self._observe_reset()

    def _on_reset(self) -> None:
        """Hook: per-episode state of the task."""

    def _observe_reset(self) -> tuple[dict, dict]:
        """Hook: the first observation and info of an episode."""
        rgb, mask = self.scene.observe()
        return self._obs(rgb), self._info(mask)

    def _obs(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """The observation Dict for ``rgb`` (subclasses add their vectors)."""
        return {"rgb": rgb}

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
