"""``embodied/Push-v0``: planar pushes with the closed gripper, chosen in the head camera's image.

The Curious Robot's push task on the shared tabletop (``embodied.envs.tabletop``); the
spaces, rewards and infos are documented on :class:`PushEnv` (``help(env.unwrapped)``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pybullet as p
from gymnasium import spaces

from embodied.envs.tabletop import CLEARANCE, TabletopEnv, as_vector, number
from embodied.envs.validate import check_positive_int
from embodied.sim.arm import DESCEND_SPEED, HOME, LANDED_FORCE, closing_yaw

LENGTH_MIN, LENGTH_MAX = 0.04, 0.16  # m
PUSH_HEIGHT = 0.012  # m, height of the closed fingertips' lowest point while pushing
PUSH_SPEED = 0.4  # m/s
LIFT = 0.05  # m
MOVED = 0.005  # m; smaller displacements count as "not moved"


def image_direction_to_world(angle: float) -> tuple[float, float]:
    """World (x, y) unit vector of an image-frame direction (u = world +y, image up = world -x)."""
    return -math.sin(angle), math.cos(angle)


class PushEnv(TabletopEnv):
    """Push objects on a table.

    The closed fingertips go down at the surface seen at the start pixel (a guarded move:
    they stop on whatever they land on), slide along the direction, lift, and the arm steps
    out of view; the scene settles and is photographed again.

    ## Action Space

    ``Box(-1, 1, (4,), float32)``, normalised for SB3: ``(u, v, direction, length)`` with the
    start pixel ``u = (a0 + 1) / 2 * (size - 1)`` (column), ``v = (a1 + 1) / 2 * (size - 1)``
    (row), the direction ``a2 * pi`` rad counter-clockwise from the image's u axis as seen
    from above (the grasp angle convention; in randomised scenes, whose camera may look at the
    table at a slant, the direction the image shows at the start pixel: the push goes where an
    arrow drawn on the image at that angle points on the table), and the length
    ``LENGTH_MIN + (a3 + 1) / 2 * (LENGTH_MAX - LENGTH_MIN)`` m (0.04-0.16) on the table.

    ## Observation Space

    ``Dict(rgb=Box(0, 255, (size, size, 3), uint8), push=Box(-10, 10, (4,), float32))``: the
    image *after* the push (the arm not drawn) and the last push's start x, y and end x, y (m);
    ``push`` is zeros at reset. The image before the push is the previous observation, and
    ``info["rgb_before"]``.

    ## Rewards

    0 on every step: the task is to gather (before, after, action) triples.

    ## Starting State

    One library object (``n_objects``) dropped at a random place and yaw in the workspace and
    settled; the arm waits out of view. With ``randomize=True`` (the default) every episode
    also draws, from ``np_random``, the table's and a back wall's texture (a 64-texture
    training-only pool, never the evaluation's) and tint (0.45-1.0 per channel), the light
    direction (uniform in [-1, 1] x [-1, 1] x [0.3, 1.5], the evaluation's range) and the head
    camera: elevation 55-75 deg, distance 0.62-0.9 m, aim point x 0.50-0.60 m, y -0.04-0.04 m,
    always facing the robot (image u = world +y); pixel actions map through the episode's
    camera, which keeps the workspace in view (the evaluation's close-up and low views come
    from ``Look-v0``). ``randomize=False``: the plain scenes of before, bit for bit.

    ## Episode End

    Terminated after ``pushes`` pushes (default 1), or at once after a physics blow-up. The
    env never truncates; the registered id's TimeLimit does, at ``max_episode_steps`` of
    ``envs/push.toml``.

    ## Info

    After reset, the tabletop info (:class:`~embodied.envs.tabletop.TabletopEnv`: fixed
    shapes, objects padded to K = ``n_objects`` max); after a step, also (the same keys and
    shapes every step)::

        rgb_before           (H, W, 3) uint8  the image before the push
        start_pixel          (2,) float64     (u, v); end_pixel (2,) float64
        push_start           (3,) float64     m; push_end (3,) float64 m
        angle                float            rad, image frame; length float m
        displacement         (K, 3) float64   m, every object's move (0 pad)
        rotation             (K,) float64     rad, every object's yaw change (0 pad)
        moved                int              index of the object that moved most, -1 if none
                                              moved > 5 mm; its instance int (-1),
                                              category str (""), category_id int (-1)
        object_displacement  (3,) float64     m, that object's move (zeros for none)
        object_rotation      float            rad, its yaw change (0.0 for none)

    After a physics blow-up the step's info is only ``invalid`` (True) and ``success`` (False).

    ## Arguments

    ``TabletopEnv``'s, and: pushes: pushes per episode.
    """

    default_n_objects: Any = 1
    # a slanted view makes image-planned pushes past tall objects miss them: below 55 deg the
    # informed policy's pushes moved the object in 0.72 of episodes (0.79 here; 0.83 plain)
    head_elevation = (math.radians(55.0), math.radians(75.0))

    def __init__(self, *, pushes: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pushes = check_positive_int("pushes", pushes)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.observe_vectors(push=spaces.Box(-10.0, 10.0, shape=(4,), dtype=np.float32))
        self._count = 0
        self._rgb = np.zeros((self.size, self.size, 3), np.uint8)

    def _on_reset(self) -> None:
        self._count = 0

    def _obs(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        self._rgb = rgb
        return super()._obs(rgb)

    def decode(self, action: Any) -> tuple[float, float, float, float]:
        """(u px, v px, angle rad, length m) of an action, or a one-line ValueError naming the bad value."""
        a = as_vector(action, 4, "(u, v, direction, length), each in [-1, 1]")
        names = ("u", "v", "direction", "length")
        for name, x in zip(names, a, strict=True):
            if not -1.0 - 1e-6 <= x <= 1.0 + 1e-6:
                raise ValueError(f"{name}={number(x)} (normalised); expected a value in [-1, 1]")
        a = np.clip(a, -1.0, 1.0)
        scale = (self.size - 1) / 2.0
        length = LENGTH_MIN + (a[3] + 1.0) / 2.0 * (LENGTH_MAX - LENGTH_MIN)
        return float((a[0] + 1.0) * scale), float((a[1] + 1.0) * scale), float(a[2] * math.pi), float(length)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        self._require_reset()
        u, v, angle, length = self.decode(action)
        scene, arm = self.scene, self.scene.arm
        before_rgb = self._rgb
        before = scene.poses()
        point, _ = scene.pixel_to_world(u, v)
        if self.randomize:  # the direction the image shows at the start pixel (the camera varies)
            dx, dy = scene.image_direction_on_table(u, v, angle, float(point[2]))
        else:
            dx, dy = image_direction_to_world(angle)
        yaw = closing_yaw(math.atan2(dy, dx) + math.pi / 2)  # the fingers side by side, across the push
        z = PUSH_HEIGHT + arm.closed_dip
        start = np.array([point[0], point[1], z])
        end = start + length * np.array([dx, dy, 0.0])
        tallest = scene.tallest_near(float(point[0]), float(point[1]))
        z_pre = max(tallest + CLEARANCE, float(point[2])) + arm.closed_dip

        above = (start[0], start[1], z_pre)
        arm.teleport(above, yaw, opening=0.0)
        if arm.descend_until(above, start, LANDED_FORCE, yaw=yaw, opening=0.0):
            start[2] = end[2] = float(arm.tcp()[2])  # slide over whatever the fingers landed on
        arm.move(start, end, arm.steps_for(length, PUSH_SPEED), yaw=yaw, opening=0.0)
        arm.move(end, end + (0.0, 0.0, LIFT), arm.steps_for(LIFT, DESCEND_SPEED), yaw=yaw, opening=0.0)
        arm.reset(HOME)
        scene.settle()
        if not scene.valid():
            return self._invalid()

        after = scene.poses()
        displacement = after[:, :3] - before[:, :3]
        rotation = np.array(
            [
                (p.getEulerFromQuaternion(a)[2] - p.getEulerFromQuaternion(b)[2] + math.pi) % (2 * math.pi) - math.pi
                for a, b in zip(after[:, 3:], before[:, 3:], strict=True)
            ]
        )
        dist = np.linalg.norm(displacement[:, :2], axis=1) if len(displacement) else np.zeros(0)
        moved = int(np.argmax(dist)) if dist.size and dist.max() > MOVED else -1
        self._count += 1
        self.vectors["push"] = np.array([start[0], start[1], end[0], end[1]], np.float32)
        rgb, mask = scene.observe()
        info = self._info(mask)
        info.update(self.target_of(moved))
        info.update(
            rgb_before=before_rgb.copy(),
            start_pixel=np.array([u, v]),
            end_pixel=scene.world_to_pixel((end[0], end[1], 0.0)) - 0.5,
            push_start=start,
            push_end=end,
            angle=angle,
            length=length,
            displacement=self.pad(displacement, 0.0),
            rotation=self.pad(rotation, 0.0),
            moved=moved,
            object_displacement=displacement[moved] if moved >= 0 else np.zeros(3),
            object_rotation=float(rotation[moved]) if moved >= 0 else 0.0,
        )
        return self._obs(rgb), 0.0, self._count >= self.pushes, False, info
