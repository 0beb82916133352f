"""``embodied/Reach-v0``: move a fingertip onto a tabletop object seen only in the image.

A pixel-control task where seeing matters and a CPU budget is enough for an RL
agent to make progress: one library object lies at a random place and yaw on a
table; a fingertip marker (a bright sphere, moved kinematically, no physics)
starts elsewhere. A fixed camera looks straight down at the table. The action is
a planar end-effector delta; the fingertip's position is proprioception, the
target's is only in the image.

World frame: metres, z up, table top at z = 0, the camera above the origin.
Image up is world +x, image left is world +y (rows grow with -x, columns with -y).

Speed: the world holds two bodies and is never stepped; an episode removes the old
object and spawns the new one (memoized shapes), so body ids repeat and episodes
are history independent. The table is not drawn: the background pixels are filled
with its colour (bit-identical to drawing an evenly lit table, several times cheaper).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from embodied.envs.validate import check_action, check_categories, check_number, check_positive_int, check_split
from embodied.sim import BulletSim, Camera, look_at, objects

TABLE_RGB = np.array([158, 133, 107], dtype=np.uint8)  # the background = table top colour
CAMERA_HEIGHT = 0.8  # m above the table, looking straight down
CAMERA_FOV = 38.0  # degrees: about 0.55 m of table across the image
TARGET_RANGE = 0.16  # m: object centres in [-r, r]^2
FINGER_RANGE = 0.22  # m: the fingertip is kept in [-r, r]^2
FINGER_RADIUS = 0.02  # m
FINGER_RGBA = (0.9, 0.1, 0.1, 1.0)
MIN_START_DISTANCE = 0.1  # m between the fingertip's start and the target


def check_pixel_task(size: Any, render_size: Any, split: Any, render_mode: Any) -> tuple[int, str]:
    """(size, split) of a pixel reaching task (Reach, ReachObject), its shared arguments checked:
    one-line ValueErrors naming the value."""
    size = check_positive_int("size", size)
    check_positive_int("render_size", render_size)
    split = check_split(split)
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode={render_mode!r}; expected None or 'rgb_array'")
    return size, split


class ReachEnv(gym.Env):
    """Reach a tabletop object with a kinematic fingertip, from pixels.

    One library object lies at a random place and yaw on a table; a fingertip marker (a
    bright sphere, moved kinematically, no physics) starts elsewhere; a fixed camera looks
    straight down. The fingertip's position is proprioception, the target's is only in the
    image.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``: the fingertip's planar move (dx, dy) in units of
    ``step_size`` m (world x, y; image up is world +x, image left world +y); the fingertip
    stays within +-0.22 m.

    ## Observation Space

    ``Dict(rgb=Box(0, 255, (size, size, 3), uint8), proprio=Box(-1, 1, (4,), float32))``:
    the top-down view, and the fingertip's position (x, y) / 0.22 m with the last action
    executed (clipped to [-1, 1]; zeros at reset). Nothing but the image reveals where the
    target is.

    ## Rewards

    ``-distance_weight * d`` per step, d the fingertip's distance (m) to the object's centre
    in the table plane, plus ``success_bonus`` on the step that reaches it.

    ## Starting State

    An object of the split (and ``categories``) at a uniform place in +-0.16 m and a uniform
    yaw; the fingertip uniform in +-0.22 m, at least 0.1 m from the target; all drawn from
    ``np_random``.

    ## Episode End

    Terminated when the fingertip comes within ``success_radius`` m of the target; the
    registered id truncates at ``max_episode_steps`` of its preset (``envs/reach.toml``: 50).

    ## Info

    The same keys and shapes after reset and every step::

        success             bool          fingertip within success_radius of the target
        distance            float         m, in the table plane
        fingertip           (2,) float32  m, (x, y)
        target              (2,) float32  m, (x, y) of the object's centre
        target_instance     int           library uid
        target_category     str
        target_category_id  int

    Learners must not need info.

    ## Arguments

        size: observation width = height in pixels.
        split: "train" or "heldout" object instances (evaluate on "heldout").
        categories: restrict the target to these library categories (default: all).
        step_size: metres the fingertip moves per unit of action (per axis).
        success_radius: metres between fingertip and object centre (in the table plane) that count as reached.
        distance_weight: reward per metre of distance, per step (the reward is ``-distance_weight * d``).
        success_bonus: reward added on the step that reaches the target (the episode then terminates).
        render_size: pixels of ``render()`` frames. render_mode: None or "rgb_array".
        renderer: "tiny" or "egl".
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        *,
        size: int = 64,
        split: str = "train",
        categories: list[str] | tuple[str, ...] | None = None,
        step_size: float = 0.03,
        success_radius: float = 0.04,
        distance_weight: float = 10.0,
        success_bonus: float = 5.0,
        render_size: int = 256,
        render_mode: str | None = None,
        renderer: str = "tiny",
    ) -> None:
        self.size, self.split = check_pixel_task(size, render_size, split, render_mode)
        for name, value in (("step_size", step_size), ("success_radius", success_radius)):
            check_number(name, value, 0.0, "a finite number of metres > 0")
        for name, value in (("distance_weight", distance_weight), ("success_bonus", success_bonus)):
            check_number(name, value, 0.0, "a finite number >= 0", strict=False)
        categories = check_categories(categories)
        self.pool = objects.instances(self.split, categories)
        self.step_size, self.success_radius = float(step_size), float(success_radius)
        self.distance_weight, self.success_bonus = float(distance_weight), float(success_bonus)
        self.render_mode = render_mode

        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "rgb": spaces.Box(0, 255, shape=(self.size, self.size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32),
            }
        )
        big = max(self.size, render_size)
        self.sim = BulletSim(renderer=renderer, width=big, height=big)
        self.view = look_at((0.0, 0.0, CAMERA_HEIGHT), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0))
        self.camera = Camera(self.size, self.size, fov=CAMERA_FOV, near=0.1, far=2.0)
        self.render_camera = Camera(render_size, render_size, fov=CAMERA_FOV, near=0.1, far=2.0)
        finger = self.sim.create_body(
            "sphere", (0.0, 0.0, FINGER_RADIUS), rgba=FINGER_RGBA, collision=False, radius=FINGER_RADIUS
        )
        self.finger = self.sim.add_body("finger", finger)
        self.target_body = -1
        self.target_spec: objects.ObjectSpec | None = None
        self.target_xy = np.zeros(2)
        self.finger_xy = np.zeros(2)
        self.last_action = np.zeros(2, np.float32)

    # -- episode -----------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """A new target object and fingertip start: a pure function of the draws from ``np_random``."""
        super().reset(seed=seed)
        rng = self.np_random
        spec = self.pool[int(rng.integers(len(self.pool)))]
        target = rng.uniform(-TARGET_RANGE, TARGET_RANGE, size=2)
        yaw = float(rng.uniform(-math.pi, math.pi))
        for _ in range(100):
            finger = rng.uniform(-FINGER_RANGE, FINGER_RANGE, size=2)
            if np.linalg.norm(finger - target) >= MIN_START_DISTANCE:
                break
        if self.target_body >= 0:  # remove the old object; the new one gets the same body id again
            self.sim.remove_body("target")
        pos = (float(target[0]), float(target[1]), spec.extents[2] / 2.0)
        orn = p.getQuaternionFromEuler((0.0, 0.0, yaw))
        self.target_body = objects.spawn(self.sim, spec, pos, orn, static=True, name="target")
        self.target_spec, self.target_xy, self.finger_xy = spec, target, finger
        self.last_action = np.zeros(2, np.float32)
        self._place_finger()
        return self._observe(), self._info(self._distance())

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self.target_spec is None:
            raise RuntimeError("call reset() before step()")
        try:
            a = np.clip(check_action(self.action_space, action), -1.0, 1.0)
        except (TypeError, ValueError) as err:  # e.g. a string: numpy's message would not name the action
            if "action=" in str(err):
                raise
            raise ValueError(f"action={action!r}; expected 2 finite numbers in [-1, 1]") from None
        self.finger_xy = np.clip(self.finger_xy + self.step_size * a, -FINGER_RANGE, FINGER_RANGE)
        self.last_action = a.astype(np.float32)
        self._place_finger()
        d = self._distance()
        success = d <= self.success_radius
        reward = -self.distance_weight * d + (self.success_bonus if success else 0.0)
        return self._observe(), float(reward), bool(success), False, self._info(d)

    def _place_finger(self) -> None:
        x, y = (float(v) for v in self.finger_xy)
        self.sim.set_base_pose(self.finger, (x, y, FINGER_RADIUS), (0.0, 0.0, 0.0, 1.0))

    def _distance(self) -> float:
        """Metres between the fingertip and the object's centre, in the table plane."""
        return float(np.linalg.norm(self.finger_xy - self.target_xy))

    # -- sensing -----------------------------------------------------------
    def _image(self, camera: Camera) -> np.ndarray:
        frame = camera.render(self.sim, self.view, seg=True)
        assert frame.seg is not None
        frame.rgb[frame.seg < 0] = TABLE_RGB
        return frame.rgb

    def _observe(self) -> dict[str, np.ndarray]:
        hand = (self.finger_xy / FINGER_RANGE).astype(np.float32)
        return {"rgb": self._image(self.camera), "proprio": np.concatenate([hand, self.last_action])}

    def _info(self, distance: float) -> dict[str, Any]:
        assert self.target_spec is not None
        return {
            "success": bool(distance <= self.success_radius),
            "distance": distance,
            "fingertip": self.finger_xy.astype(np.float32),
            "target": self.target_xy.astype(np.float32),
            "target_instance": int(self.target_spec.uid),
            "target_category": self.target_spec.category,
            "target_category_id": int(self.target_spec.category_id),
        }

    def render(self) -> np.ndarray | None:
        """(S, S, 3) uint8: the observation camera's view at ``render_size``."""
        if self.render_mode != "rgb_array" or self.target_spec is None:
            return None
        return self._image(self.render_camera)

    def close(self) -> None:
        self.sim.close()
