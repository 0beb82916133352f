"""``embodied/Poke-v0``: press a fingertip into an object and read the force profile.

The Curious Robot's poke task on the shared tabletop (``embodied.envs.tabletop``); the
spaces, rewards and infos are documented on :class:`PokeEnv` (``help(env.unwrapped)``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from embodied.envs.tabletop import CLEARANCE, TabletopEnv, as_vector, check_pixel
from embodied.envs.validate import check_positive_int
from embodied.sim.arm import FINGER_LINKS, HOME
from embodied.sim.tactile import ForceRecorder, line_fit

SAMPLE_EVERY = 2  # physics steps per force sample
APPROACH_GAP = 0.005  # m above the surface where pressing starts
POKE_SPEED = 0.08  # m/s
TOUCH_FORCE = 1.0  # N ends the approach early (touched something on the way)
MAX_FORCE = 1.0e4  # N, observation bound


class PokeEnv(TabletopEnv):
    """Poke objects on a table and read the tactile force profile.

    The closed gripper goes down to just above the surface seen at the chosen pixel (a
    guarded move: it stops on a touch), then presses down at ``POKE_SPEED`` until the normal
    force reaches ``stop_force`` or the tips are ``depth_limit`` below the surface, and holds
    there. The tactile reading is the total contact normal force on the finger links, sampled
    every ``SAMPLE_EVERY`` physics steps: ``samples`` values over a fixed time, whatever the
    object. Soft objects (low library contact stiffness) give slow ramps and low peaks; hard
    ones jump to the stop force.

    ## Action Space

    ``MultiDiscrete([size, size])`` = the poke point (u, v) in observation pixels
    (u = column, v = row).

    ## Observation Space

    ``Dict(rgb=Box(0, 255, (size, size, 3), uint8), force=Box(0, 1e4, (samples,), float32),
    force_fit=Box(-1e7, 1e7, (2,), float32))``: the image after the poke (the arm out of
    view), the force profile (N) and its least-squares line, slope (N/s) and intercept (N);
    ``force`` and ``force_fit`` are zeros at reset.

    ## Rewards

    0 on every step: the task is to gather (image, force profile) pairs.

    ## Starting State

    One library object (``n_objects``) dropped at a random place and yaw in the workspace and
    settled; the arm waits out of view. With ``randomize=True`` (the default) every episode
    also draws, from ``np_random``, the table's and a back wall's texture (a 64-texture
    training-only pool, never the evaluation's) and tint (0.45-1.0 per channel), the light
    direction (uniform in [-1, 1] x [-1, 1] x [0.3, 1.5], the evaluation's range) and the head
    camera: elevation 30-75 deg, distance 0.62-1.0 m, aim point x 0.50-0.60 m, y -0.04-0.04 m,
    always facing the robot (image u = world +y); pixel actions map through the episode's
    camera, which keeps the workspace in view (the evaluation's close-up and low views come
    from ``Look-v0``). ``randomize=False``: the plain scenes of before, bit for bit.

    ## Episode End

    Terminated after ``pokes`` pokes (default 1), or at once after a physics blow-up. The
    env never truncates; the registered id's TimeLimit does, at ``max_episode_steps`` of
    ``envs/poke.toml``.

    ## Info

    After reset, the tabletop info (:class:`~embodied.envs.tabletop.TabletopEnv`: fixed
    shapes, objects padded to K = ``n_objects`` max); after a step, also (the same keys and
    shapes every step)::

        force_profile  (samples,) float32  N, the tactile reading (= obs["force"])
        fit            (2,) float32        slope (N/s), intercept (N) of its line fit
        peak_force     float               N
        depth          float               m pressed below the surface
        poke_pixel     (2,) int64          (u, v)
        poke_world     (3,) float64        m, the surface point poked
        instance       int                 library uid of the poked object (-1: the table);
                                           category str (""), category_id int (-1)
        softness       float               library softness of the poked object (-1.0: the table)

    After a physics blow-up the step's info is only ``invalid`` (True) and ``success`` (False).

    ## Arguments

    ``TabletopEnv``'s, and: samples: force profile length (>= 2); stop_force: N;
    depth_limit: m below the surface; pokes: pokes per episode.
    """

    default_n_objects: Any = 1
    # pokes land on the object from any of these views (informed policy: 120 of 120 episodes)
    head_elevation = (math.radians(30.0), math.radians(75.0))
    head_distance = (0.62, 1.0)

    def __init__(
        self,
        *,
        samples: int = 32,
        stop_force: float = 40.0,
        depth_limit: float = 0.02,
        pokes: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if check_positive_int("samples", samples) < 2:
            raise ValueError(f"samples={samples!r}; expected a positive integer >= 2")
        check_positive_int("pokes", pokes)
        for name, value in (("stop_force", stop_force), ("depth_limit", depth_limit)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r}; expected a positive finite number")
        self.samples, self.pokes = int(samples), int(pokes)
        self.stop_force, self.depth_limit = float(stop_force), float(depth_limit)
        self.action_space = spaces.MultiDiscrete([self.size, self.size])
        self.observe_vectors(
            force=spaces.Box(0.0, MAX_FORCE, shape=(self.samples,), dtype=np.float32),
            force_fit=spaces.Box(-1.0e7, 1.0e7, shape=(2,), dtype=np.float32),
        )
        self._count = 0

    def _on_reset(self) -> None:
        self._count = 0

    def decode(self, action: Any) -> tuple[int, int]:
        """(u, v) of an action, or a one-line ValueError naming the bad value."""
        a = as_vector(action, 2, f"(u, v) with u, v integers in [0, {self.size})")
        return check_pixel("u", a[0], self.size), check_pixel("v", a[1], self.size)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        self._require_reset()
        u, v = self.decode(action)
        scene, arm = self.scene, self.scene.arm
        point, slot = scene.pixel_to_world(u, v)
        x, y, surface = (float(c) for c in point)
        dip = arm.closed_dip  # the TCP rides this far above the closed tips
        tallest = scene.tallest_near(x, y)
        above = (x, y, max(tallest, surface) + CLEARANCE + dip)
        start = (x, y, surface + APPROACH_GAP + dip)
        bottom = (x, y, surface - self.depth_limit + dip)
        dt = scene.sim.timestep

        arm.teleport(above, 0.0, opening=0.0)
        arm.descend_until(above, start, TOUCH_FORCE, opening=0.0)
        here = arm.tcp()
        begin = (x, y, min(start[2], float(here[2])))
        rec = ForceRecorder(scene.sim, arm.body, FINGER_LINKS, self.samples, SAMPLE_EVERY, stop_force=self.stop_force)
        total = self.samples * SAMPLE_EVERY
        press = arm.steps_for(begin[2] - bottom[2], POKE_SPEED)
        n = arm.move(begin, bottom, min(press, total), opening=0.0, on_step=rec)
        # stopped by force, or the depth limit came first: hold the pose reached until the profile is full
        held = np.array(begin) + (np.array(bottom) - begin) * (n / min(press, total))
        if not rec.full:
            rec.stop_force = math.inf
            arm.hold(held, total - rec.steps, opening=0.0, on_step=rec)
        depth = max(0.0, surface + dip - float(held[2]))
        arm.reset(HOME)
        scene.settle(max_seconds=0.5)
        if not scene.valid():
            return self._invalid()

        force = self.vectors["force"] = np.clip(rec.profile, 0.0, MAX_FORCE).astype(np.float32)
        fit = self.vectors["force_fit"] = line_fit(force, dt * SAMPLE_EVERY)
        self._count += 1
        rgb, mask = scene.observe()
        info = self._info(mask)
        info.update(self.target_of(slot))
        info.update(
            force_profile=force.copy(),
            fit=fit.copy(),
            peak_force=float(force.max()),
            depth=depth,
            poke_pixel=np.array([u, v], np.int64),
            poke_world=np.array([x, y, surface]),
            softness=scene.placed[slot].spec.softness if slot >= 0 else -1.0,
        )
        return self._obs(rgb), 0.0, self._count >= self.pokes, False, info
