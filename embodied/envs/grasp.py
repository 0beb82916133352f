"""``embodied/Grasp-v0``: planar top-down grasps chosen in the head camera's image.

The Curious Robot's grasp task on the shared tabletop (``embodied.envs.tabletop``); the
spaces, rewards and infos are documented on :class:`GraspEnv` (``help(env.unwrapped)``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from embodied.envs.tabletop import CLEARANCE, TabletopEnv, as_vector, check_pixel, number
from embodied.envs.validate import check_positive_int
from embodied.sim.arm import HOME, LANDED_FORCE, closing_yaw

N_ANGLES = 18
ANGLE_STEP = math.pi / N_ANGLES  # 10 degrees
GRASP_DEPTH = 0.035  # m below the surface seen at the pixel
MIN_Z = 0.02  # m; lowest TCP height (the closing fingertips dip ~1.5 cm below the TCP)
LIFT = 0.15  # m the TCP rises above the grasp height
LIFT_SPEED = 1.0  # m/s
CLOSE_S = 0.1  # s to close the fingers
SQUEEZE_S = 0.03  # s of closed fingers before lifting
SHAKE = 0.03  # m, lateral shake stroke (out and back)
SHAKE_S = 0.04  # s per shake stroke
HOLD_S = 0.06  # s held still before the success check


def angle_of_bin(k: int) -> float:
    """Closing direction of bin ``k`` in radians (image frame, counter-clockwise from u)."""
    return k * ANGLE_STEP


def gripper_yaw(angle: float) -> float:
    """World gripper yaw that closes the fingers along image angle ``angle``.

    Image u is world +y and image up (-v) is world -x, so the closing axis is
    (-sin a, cos a) in the world: yaw a + 90 deg, folded into [-90, 90) deg (the
    axis has no sign) to keep the wrist joint near zero.
    """
    return closing_yaw(angle + math.pi / 2)


class GraspEnv(TabletopEnv):
    """Grasp attempts on a table of library objects.

    The gripper is placed above the surface seen at the chosen pixel, descends (a
    force-guarded move: it stops on contact), closes, lifts and shakes; the grasp succeeded
    when an object is still held above ``success_height`` afterwards.

    ## Action Space

    ``MultiDiscrete([size, size, 18])`` = (u, v, angle bin): the grasp point in observation
    pixels (u = column, v = row) and the finger-closing direction ``10 deg * bin`` in the
    table plane, counter-clockwise from the image's u axis as seen from above (bin 0: the
    fingers close along image rows; bin 9: along columns).

    ## Observation Space

    ``Dict(rgb=Box(0, 255, (size, size, 3), uint8), grasp=Box(-10, 10, (5,), float32))``:
    the head camera's image (the arm not drawn) and the last attempt's x, y, z (m), gripper
    yaw (rad) and success (0/1); ``grasp`` is zeros before the first attempt. The observation
    after the last attempt shows the outcome (the held object in the air).

    ## Rewards

    1.0 for a successful grasp, else 0.0.

    ## Starting State

    One to three library objects (``n_objects``) dropped at random places and yaws in the
    workspace and settled; the arm waits out of view. With ``randomize=True`` (the default)
    every episode also draws, from ``np_random``, the table's and a back wall's texture (a
    64-texture training-only pool, never the evaluation's) and tint (0.45-1.0 per channel), the
    light direction (uniform in [-1, 1] x [-1, 1] x [0.3, 1.5], the evaluation's range) and the
    head camera: elevation 45-75 deg, distance 0.62-0.9 m, aim point x 0.50-0.60 m, y
    -0.04-0.04 m, always facing the robot (image u = world +y, so the angle convention holds);
    pixel actions map through the episode's camera, which keeps the workspace in view (the
    evaluation's close-up and low views come from ``Look-v0``). ``randomize=False``: the plain
    scenes of before, bit for bit.

    ## Episode End

    Terminated after ``attempts`` grasps (default 1: a contextual bandit); in between, the
    object is dropped back and the scene settles. Terminated at once after a physics blow-up.
    The env never truncates; the registered id's TimeLimit does, at ``max_episode_steps`` of
    ``envs/grasp.toml``.

    ## Info

    After reset, the tabletop info (:class:`~embodied.envs.tabletop.TabletopEnv`: fixed
    shapes, objects padded to K = ``n_objects`` max); after a step, also (the same keys and
    shapes every step)::

        success       bool          an object is held above success_height after the shake
        pixel         (2,) int64    (u, v) grasp pixel
        world         (3,) float64  grasp point (m)
        angle         float         closing direction (rad, image frame); angle_bin int 0..17
        instance      int           library uid of the object under the grasp point (or the
                                    one lifted), -1 for none; category str ("" for none);
                                    category_id int (-1 for none)
        lift_height   float         m, lowest point of the highest object after the shake
        attempt       int           attempts so far this episode

    After a physics blow-up the step's info is only ``invalid`` (True) and ``success`` (False).

    ## Arguments

    ``TabletopEnv``'s, and: attempts: grasps per episode; success_height: m above the table
    the object's lowest point must be after the shake; shake: shake before the check.
    """

    def __init__(self, *, attempts: int = 1, success_height: float = 0.08, shake: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        attempts = check_positive_int("attempts", attempts)
        if not (math.isfinite(success_height) and 0 < success_height < LIFT - 0.03):
            raise ValueError(f"success_height={success_height!r}; expected metres in (0, {LIFT - 0.03})")
        self.attempts, self.success_height, self.shake = int(attempts), float(success_height), bool(shake)
        self.action_space = spaces.MultiDiscrete([self.size, self.size, N_ANGLES])
        self.observe_vectors(grasp=spaces.Box(-10.0, 10.0, shape=(5,), dtype=np.float32))
        self._attempt = 0

    def _on_reset(self) -> None:
        self._attempt = 0

    def decode(self, action: Any) -> tuple[int, int, int]:
        """(u, v, bin) of an action, or a one-line ValueError naming the bad value."""
        a = as_vector(action, 3, f"(u, v, angle_bin) with u, v in [0, {self.size}) and angle_bin in 0..17")
        u = check_pixel("u", a[0], self.size)
        v = check_pixel("v", a[1], self.size)
        if a[2] != int(a[2]) or not 0 <= a[2] < N_ANGLES:
            raise ValueError(f"angle_bin={number(a[2])}; expected an integer in 0..{N_ANGLES - 1}")
        return u, v, int(a[2])

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        self._require_reset()
        u, v, k = self.decode(action)
        scene, arm = self.scene, self.scene.arm
        point, slot = scene.pixel_to_world(u, v)
        angle = angle_of_bin(k)
        yaw = gripper_yaw(angle)
        x, y = float(point[0]), float(point[1])
        z = max(float(point[2]) - GRASP_DEPTH, MIN_Z)
        tallest = scene.tallest_near(x, y)  # the approach only needs to clear what the open gripper spans
        z_pre = max(tallest + CLEARANCE, z + 0.05)

        arm.teleport((x, y, z_pre), yaw, opening=1.0)
        # landed on something: close where the fingers stopped; otherwise at the target (the motors
        # catch up with their ~1 cm lag while the fingers close)
        landed = arm.descend_until((x, y, z_pre), (x, y, z), LANDED_FORCE, yaw=yaw)
        z_reached = float(arm.tcp()[2]) if landed else z
        arm.hold((x, y, z_reached), arm.steps_in(CLOSE_S), yaw=yaw, opening=1.0, end_opening=0.0)
        arm.hold((x, y, z_reached), arm.steps_in(SQUEEZE_S), yaw=yaw, opening=0.0)
        top = (x, y, z_reached + LIFT)
        arm.move((x, y, z_reached), top, arm.steps_for(LIFT, LIFT_SPEED), yaw=yaw, opening=0.0)
        if self.shake:
            c, s = math.cos(yaw + math.pi / 2), math.sin(yaw + math.pi / 2)  # across the fingers: slips show
            side = (x + SHAKE * c, y + SHAKE * s, top[2])
            n = arm.steps_in(SHAKE_S)
            arm.move(top, side, n, yaw=yaw, opening=0.0)
            arm.move(side, top, n, yaw=yaw, opening=0.0)
        arm.hold(top, arm.steps_in(HOLD_S), yaw=yaw, opening=0.0)
        if not scene.valid():
            return self._invalid()

        lifted, height = -1, 0.0
        for i, o in enumerate(scene.placed):
            bottom = scene.sim.aabb(o.body)[0][2]
            if bottom > height:
                lifted, height = i, float(bottom)
        success = height > self.success_height and bool(arm.finger_contacts(scene.placed[lifted].body))
        self._attempt += 1
        self.vectors["grasp"] = np.array([x, y, z, yaw, float(success)], np.float32)
        terminated = self._attempt >= self.attempts
        if not terminated:  # let go, step back, let the scene come to rest for the next attempt
            arm.hold(top, arm.steps_in(CLOSE_S), yaw=yaw, opening=0.0, end_opening=1.0)
            arm.reset(HOME)
            scene.settle()
            if not scene.valid():
                return self._invalid()
        rgb, mask = scene.observe()
        info = self._info(mask)
        info.update(self.target_of(slot if slot >= 0 or not success else lifted))
        info.update(
            success=bool(success),
            pixel=np.array([u, v], np.int64),
            world=np.array([x, y, z]),
            angle=angle,
            angle_bin=k,
            lift_height=height,
            attempt=self._attempt,
        )
        return self._obs(rgb), float(success), terminated, False, info
