"""``embodied/Poke-v0``: press a fingertip into an object and read the force profile.

Action: MultiDiscrete([size, size]) = the poke point (u, v) in observation pixels.
The closed gripper goes down to just above the surface seen at (u, v), then
presses down at ``POKE_SPEED`` until the normal force reaches ``stop_force`` or the
tips are ``depth_limit`` below the surface, and holds there. The tactile reading
is the total contact normal force on the finger links, sampled every
``SAMPLE_EVERY`` physics steps: ``samples`` values over a fixed time, whatever
the object. Soft objects (low library contact stiffness) give slow ramps and low
peaks; hard ones jump to the stop force.

Observation: Dict(rgb=(H, W, 3) uint8 (after the poke, arm out of view),
force=(samples,) float32 N (zeros at reset), force_fit=(2,) float32: the least-squares
line through the profile, slope (N/s) and intercept (N)).
Reward: 0.

Scenes vary (``randomize=True``, the default; ``randomize=False`` gives the plain scenes of
before, bit for bit): per episode, from the env's ``np_random``, the table's and a back
wall's texture (a 64-texture training-only pool, never the evaluation's) and tint (0.45-1.0
per channel), the light direction (uniform in [-1, 1] x [-1, 1] x [0.3, 1.5], the evaluation's
range) and the head camera: elevation 30-75 deg, distance 0.62-1.0 m, aim point x 0.50-0.60 m,
y -0.04-0.04 m, always facing the robot (image u = world +y, so the angle conventions hold);
pixel actions are mapped through the episode's camera. The camera keeps the workspace in view
for the pixel actions; the evaluation's close-up and low views come from ``Look-v0``. See
``embodied.envs.tabletop``.

Info: after reset, the tabletop info (``TabletopEnv``: fixed shapes, objects padded to
K = ``n_objects`` max); after a step, also (the same keys and shapes every step)::

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
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from embodied.envs.tabletop import TabletopEnv, as_vector, check_pixel
from embodied.sim.arm import FINGER_LINKS, HOME
from embodied.sim.tactile import ForceRecorder, line_fit

SAMPLE_EVERY = 2  # physics steps per force sample
APPROACH_GAP = 0.005  # m above the surface where pressing starts
POKE_SPEED = 0.08  # m/s
CLEARANCE = 0.03  # m above the tallest object for the approach
DESCEND_SPEED = 0.8  # m/s
TOUCH_FORCE = 1.0  # N ends the approach early (touched something on the way)
MAX_FORCE = 1.0e4  # N, observation bound


class PokeEnv(TabletopEnv):
    """Poke objects on a table (see the module docstring).

    Args (besides ``TabletopEnv``'s): samples: force profile length; stop_force: N;
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
        for name, value in (("samples", samples), ("pokes", pokes)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < (2 if name == "samples" else 1)
            ):
                raise ValueError(
                    f"{name}={value!r}; expected a positive integer" + (" >= 2" if name == "samples" else "")
                )
        for name, value in (("stop_force", stop_force), ("depth_limit", depth_limit)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r}; expected a positive finite number")
        self.samples, self.pokes = int(samples), int(pokes)
        self.stop_force, self.depth_limit = float(stop_force), float(depth_limit)
        self.action_space = spaces.MultiDiscrete([self.size, self.size])
        self.observation_space = spaces.Dict(
            {
                "rgb": self.rgb_space,
                "force": spaces.Box(0.0, MAX_FORCE, shape=(self.samples,), dtype=np.float32),
                "force_fit": spaces.Box(-1.0e7, 1.0e7, shape=(2,), dtype=np.float32),
            }
        )
        self._force = np.zeros(self.samples, np.float32)
        self._fit = np.zeros(2, np.float32)
        self._count = 0

    def _on_reset(self) -> None:
        self._force = np.zeros(self.samples, np.float32)
        self._fit = np.zeros(2, np.float32)
        self._count = 0

    def _obs(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        return {"rgb": rgb, "force": self._force.copy(), "force_fit": self._fit.copy()}

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
        touched = lambda i: sum(c[9] for c in arm.finger_contacts()) > TOUCH_FORCE  # noqa: E731
        arm.move(above, start, max(2, round((above[2] - start[2]) / DESCEND_SPEED / dt)), opening=0.0, on_step=touched)
        here = arm.tcp()
        begin = (x, y, min(start[2], float(here[2])))
        rec = ForceRecorder(scene.sim, arm.body, FINGER_LINKS, self.samples, SAMPLE_EVERY, stop_force=self.stop_force)
        total = self.samples * SAMPLE_EVERY
        press = max(2, round((begin[2] - bottom[2]) / POKE_SPEED / dt))
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

        self._force = np.clip(rec.profile, 0.0, MAX_FORCE).astype(np.float32)
        self._fit = line_fit(self._force, dt * SAMPLE_EVERY)
        self._count += 1
        rgb, mask = scene.observe()
        info = self._info(mask)
        info.update(self.target_of(slot))
        info.update(
            force_profile=self._force.copy(),
            fit=self._fit.copy(),
            peak_force=float(self._force.max()),
            depth=depth,
            poke_pixel=np.array([u, v], np.int64),
            poke_world=np.array([x, y, surface]),
            softness=scene.placed[slot].spec.softness if slot >= 0 else -1.0,
        )
        return self._obs(rgb), 0.0, self._count >= self.pokes, False, info
