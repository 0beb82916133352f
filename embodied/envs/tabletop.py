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

Code: the world is :class:`~embodied.envs.tabletop_world.Tabletop` (its head camera's pixel
geometry :class:`~embodied.envs.tabletop_view.HeadView`); this module holds the env base,
:class:`TabletopEnv`, and re-exports the world's names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from embodied.envs.tabletop_view import (  # noqa: F401 - re-exported: the tabletop's names live here too
    HEAD_DISTANCE,
    HEAD_ELEVATION,
    HEAD_EYE,
    HEAD_FOV,
    HEAD_TARGET,
    HEAD_TARGET_RANGE,
    RAY_LENGTH,
    REACH,
    HeadView,
)
from embodied.envs.tabletop_world import (  # noqa: F401 - re-exported
    BIG_TABLE_HALF,
    CLEARANCE,
    DROP_GAP,
    FLUNG_Z,
    LIGHT_RANGE,
    MAX_SPEED,
    SETTLE_MAX_S,
    SETTLE_SPEED,
    SETTLE_SPIN,
    SPAWN_GAP,
    TABLE_CENTER,
    TABLE_HALF,
    TEXTURE_KEY,
    TEXTURE_PATTERNS,
    TEXTURE_POOL,
    TINT,
    VIDEO_EYE,
    VIDEO_TARGET,
    WALL_HALF,
    WALL_X,
    WALL_Z,
    WORKSPACE,
    Placed,
    Tabletop,
    training_textures,
)
from embodied.envs.validate import check_categories, check_positive_int, check_split
from embodied.sim import objects
from embodied.sim.arm import HOME


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
