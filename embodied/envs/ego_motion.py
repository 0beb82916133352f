"""``embodied/EgoMotion-v0``: egocentric video with odometry in procedural rooms.

The simulated counterpart of KITTI car video with odometry (Jayaraman & Grauman,
ICCV 2015): a wheeled camera rig drives through rooms of several scene classes;
each step returns the camera frame and the motor signal actually executed since
the previous frame.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from embodied.envs.scenes import SCENE_CLASSES, Scene, build_scene
from embodied.envs.validate import check_action, check_positive_int, check_split
from embodied.sim import BulletSim, Camera, look_at

RIG_RADIUS = 0.15  # m
RIG_HEIGHT = 0.5  # m
# Eye 5 cm in front of the rig's surface: TinyRenderer can hang with the eye inside a mesh.
EYE_OFFSET = (RIG_RADIUS + 0.05, 0.0, 0.2)  # m, in the rig frame (origin at the rig's centre)
PITCH_LIMIT = math.radians(30.0)
RANGE_RAYS = tuple(math.radians(d) for d in (-35.0, 0.0, 35.0))  # bearing of the range-finder rays
RANGE_HEIGHTS = (0.01, 0.3)  # m above the floor
RANGE_MAX = 3.0  # m

DISCRETE_ACTIONS = ("forward", "turn_left", "turn_right", "look_up", "look_down")
MOTOR_FIELDS = ("forward_m", "lateral_m", "yaw_rad", "pitch_rad")


class EgoMotionEnv(gym.Env):
    """A camera rig exploring a procedurally generated room.

    Args:
        size: observation width = height in pixels.
        action_mode: "discrete" (``DISCRETE_ACTIONS``) or "continuous"
            (Box [-1, 1]^2: forward speed and yaw rate, scaled by ``max_speed``, ``max_yaw_rate``).
        step_forward: metres per "forward" action; turn_angle / look_angle: radians per action.
        control_dt: seconds of simulated time per step; substeps: physics steps per action.
        motor_noise: relative std of the odometry noise (plus ``motor_noise_floor`` absolute).
        depth: also observe a (H, W, 1) float32 depth image in metres.
        scene_classes: restrict scenes to these classes (default: all of ``SCENE_CLASSES``).
        split: "train" or "heldout" object instances populate the rooms.
        fov: vertical field of view in degrees. render_size: pixels of each ``render()`` panel.
        renderer: "tiny" or "egl".

    Observation: Dict(rgb=(H, W, 3) uint8, motor=(4,) float32 ``MOTOR_FIELDS`` [, depth]).
    Info: pose (x, y, yaw, pitch), scene_class, scene_class_id, scene_id, collided,
    range (3,) metres of free space ahead (right, centre, left) (for scripted explorers), and the visible
    object instances / categories with their pixel counts. Learners must not need info.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        *,
        size: int = 64,
        action_mode: str = "discrete",
        step_forward: float = 0.2,
        turn_angle: float = math.radians(15.0),
        look_angle: float = math.radians(10.0),
        max_speed: float = 1.0,
        max_yaw_rate: float = math.radians(75.0),
        control_dt: float = 0.2,
        substeps: int = 3,
        motor_noise: float = 0.02,
        motor_noise_floor: float = 0.002,
        depth: bool = False,
        scene_classes: list[str] | tuple[str, ...] | None = None,
        split: str = "train",
        fov: float = 70.0,
        render_size: int = 256,
        renderer: str = "tiny",
        render_mode: str | None = None,
    ) -> None:
        check_positive_int("size", size)
        check_positive_int("substeps", substeps)
        check_positive_int("render_size", render_size)
        if action_mode not in ("discrete", "continuous"):
            raise ValueError(f"action_mode={action_mode!r}; expected 'discrete' or 'continuous'")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; expected None or 'rgb_array'")
        for name, value in (("motor_noise", motor_noise), ("motor_noise_floor", motor_noise_floor)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value}; expected a finite number >= 0")
        for name, value in (("control_dt", control_dt), ("step_forward", step_forward), ("max_speed", max_speed)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value}; expected a finite number > 0")
        classes = tuple(scene_classes) if scene_classes else SCENE_CLASSES
        unknown = [c for c in classes if c not in SCENE_CLASSES]
        if unknown:
            raise ValueError(f"scene_classes {unknown} unknown; expected a subset of {list(SCENE_CLASSES)}")
        self.split = check_split(split)
        self.size, self.action_mode, self.scene_classes = int(size), action_mode, classes
        self.step_forward, self.turn_angle, self.look_angle = step_forward, turn_angle, look_angle
        self.max_speed, self.max_yaw_rate = max_speed, max_yaw_rate
        self.control_dt, self.substeps = control_dt, int(substeps)
        self.motor_noise, self.motor_noise_floor = motor_noise, motor_noise_floor
        self.use_depth, self.render_mode = bool(depth), render_mode

        if action_mode == "discrete":
            self.action_space: spaces.Space = spaces.Discrete(len(DISCRETE_ACTIONS))
        else:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        obs = {
            "rgb": spaces.Box(0, 255, shape=(self.size, self.size, 3), dtype=np.uint8),
            "motor": spaces.Box(-10.0, 10.0, shape=(len(MOTOR_FIELDS),), dtype=np.float32),
        }
        if self.use_depth:
            obs["depth"] = spaces.Box(0.0, 100.0, shape=(self.size, self.size, 1), dtype=np.float32)
        self.observation_space = spaces.Dict(obs)

        big = max(self.size, render_size)
        self.sim = BulletSim(
            timestep=control_dt / substeps, solver_iterations=10, renderer=renderer, width=big, height=big
        )
        self.camera = Camera(self.size, self.size, fov=fov, near=0.03, far=15.0)
        self.render_camera = Camera(render_size, render_size, fov=fov, near=0.03, far=15.0)
        self.overview_camera = Camera(render_size, render_size, fov=60.0, near=0.1, far=20.0)
        self.scene: Scene | None = None
        self.rig = -1
        self.pitch = 0.0
        self._collided = False

    # -- episode -----------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Build a new room (a pure function of the draw from ``np_random``) and place the rig."""
        super().reset(seed=seed)
        scene_id = int(self.np_random.integers(2**31 - 1))
        scene_class = self.scene_classes[int(self.np_random.integers(len(self.scene_classes)))]
        if options and "scene_class" in options:
            scene_class = options["scene_class"]
            if scene_class not in self.scene_classes:
                raise ValueError(f"options['scene_class']={scene_class!r}; expected one of {self.scene_classes}")
        # Rebuilding from scratch (not restoring a snapshot) makes each episode depend on its seed only.
        self.sim.reset_world()
        self.scene = build_scene(self.sim, scene_id, scene_class, self.split)
        x, y, yaw = self.scene.start
        self.rig = self._make_rig(x, y, yaw)
        self.pitch = 0.0
        self._collided = False
        pose = self._pose()
        self._last_pose = pose
        return self._observe(np.zeros(len(MOTOR_FIELDS), np.float32), pose)

    def _make_rig(self, x: float, y: float, yaw: float) -> int:
        sim = self.sim
        col = sim.p.createCollisionShape(p.GEOM_CYLINDER, radius=RIG_RADIUS, height=RIG_HEIGHT)
        vis = sim.p.createVisualShape(
            p.GEOM_CYLINDER, radius=RIG_RADIUS, length=RIG_HEIGHT, rgbaColor=(0.95, 0.55, 0.1, 1.0)
        )
        rig = sim.p.createMultiBody(5.0, col, vis, (x, y, RIG_HEIGHT / 2), p.getQuaternionFromEuler((0.0, 0.0, yaw)))
        # Frictionless and without restitution: the rig slides along walls instead of bouncing.
        sim.p.changeDynamics(rig, -1, lateralFriction=0.0, restitution=0.0, linearDamping=0.0, angularDamping=0.0)
        return sim.add_body("rig", rig)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self.scene is None:
            raise RuntimeError("call reset() before step()")
        speed, yaw_rate, pitch_delta = self._command(action)
        sim, rig = self.sim, self.rig
        # One velocity command per action, along the mid-action heading (an arc's chord):
        # per-substep commands would cost more Python than the physics itself.
        heading = self._last_pose[2] + 0.5 * yaw_rate * self.control_dt
        sim.p.resetBaseVelocity(rig, (speed * math.cos(heading), speed * math.sin(heading), 0.0), (0.0, 0.0, yaw_rate))
        sim.step(self.substeps)
        self._collided = self._settle()
        self.pitch = float(np.clip(self.pitch + pitch_delta, -PITCH_LIMIT, PITCH_LIMIT))
        pose = self._pose()
        motor = self._odometry(self._last_pose, pose)
        self._last_pose = pose
        obs, info = self._observe(motor, pose)
        return obs, 0.0, False, False, info

    def _command(self, action: Any) -> tuple[float, float, float]:
        """(forward speed m/s, yaw rate rad/s, pitch change rad) for an action."""
        a = check_action(self.action_space, action)
        if self.action_mode == "continuous":
            return float(a[0]) * self.max_speed, float(a[1]) * self.max_yaw_rate, 0.0
        name = DISCRETE_ACTIONS[int(a)]
        dt = self.control_dt
        return {
            "forward": (self.step_forward / dt, 0.0, 0.0),
            "turn_left": (0.0, self.turn_angle / dt, 0.0),
            "turn_right": (0.0, -self.turn_angle / dt, 0.0),
            "look_up": (0.0, 0.0, self.look_angle),
            "look_down": (0.0, 0.0, -self.look_angle),
        }[name]

    def _settle(self) -> bool:
        """Stop the rig, push it out of anything it sank into, keep it upright on the floor.

        The solver leaves a rig driven into a wall a few cm deep in it (it is commanded
        into the wall every step); moving it out along the contact normals keeps the
        "never passes through" promise at no extra physics steps. Returns whether the
        rig touched anything but the floor (body 0).
        """
        sim, rig = self.sim, self.rig
        pos, orn = sim.p.getBasePositionAndOrientation(rig)
        roll, pitch, yaw = p.getEulerFromQuaternion(orn)
        dx = dy = 0.0
        touched = False
        for c in sim.p.getContactPoints(bodyA=rig):
            if c[2] == 0:
                continue
            touched = True
            if c[8] < 0:  # penetration depth; normalOnB points from the obstacle to the rig
                dx -= c[7][0] * c[8]
                dy -= c[7][1] * c[8]
        if touched or abs(roll) > 1e-3 or abs(pitch) > 1e-3 or abs(pos[2] - RIG_HEIGHT / 2) > 1e-2:
            sim.p.resetBasePositionAndOrientation(
                rig, (pos[0] + dx, pos[1] + dy, RIG_HEIGHT / 2), p.getQuaternionFromEuler((0.0, 0.0, yaw))
            )
        sim.p.resetBaseVelocity(rig, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        return touched

    def _pose(self) -> np.ndarray:
        """(x m, y m, yaw rad, pitch rad) of the camera rig."""
        pos, orn = self.sim.p.getBasePositionAndOrientation(self.rig)
        return np.array([pos[0], pos[1], p.getEulerFromQuaternion(orn)[2], self.pitch], dtype=np.float64)

    def _odometry(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Executed motion in the rig frame at ``before``, with sensor noise: MOTOR_FIELDS, float32."""
        # Python floats: the same IEEE doubles as numpy's, without five small-array round trips per step
        x0, y0, yaw0, pitch0 = before.tolist()
        x1, y1, yaw1, pitch1 = after.tolist()
        dx, dy = x1 - x0, y1 - y0
        c, s = math.cos(yaw0), math.sin(yaw0)
        dyaw = (yaw1 - yaw0 + math.pi) % (2 * math.pi) - math.pi
        true = (c * dx + s * dy, -s * dx + c * dy, dyaw, pitch1 - pitch0)
        rel, floor = self.motor_noise, self.motor_noise_floor
        noise = self.np_random.normal(size=4).tolist()
        noisy = [t + n * (rel * abs(t) + floor) for t, n in zip(true, noise, strict=True)]
        return np.array([min(max(v, -10.0), 10.0) for v in noisy], dtype=np.float32)

    # -- sensing -----------------------------------------------------------
    def _eye_view(self, camera: Camera) -> list[float]:
        return camera.attached_view(self.sim, self.rig, offset=EYE_OFFSET, pitch=self.pitch)

    def _observe(self, motor: np.ndarray, pose: np.ndarray) -> tuple[dict, dict]:
        frame = self.camera.render(self.sim, self._eye_view(self.camera), depth=self.use_depth, seg=True)
        obs = {"rgb": frame.rgb, "motor": motor}
        if self.use_depth:
            obs["depth"] = frame.depth[..., None]
        return obs, self._info(pose, frame.seg)

    def _info(self, pose: np.ndarray, seg: np.ndarray) -> dict:
        assert self.scene is not None
        counts = np.bincount(seg.ravel() + 1)  # index 0 = background (-1)
        visible = [
            (label, int(counts[body + 1]))
            for body, label in self.scene.object_bodies.items()
            if body + 1 < len(counts) and counts[body + 1] > 0
        ]
        return {
            "pose": pose.astype(np.float32),
            "scene_class": self.scene.scene_class,
            "scene_class_id": self.scene.scene_class_id,
            "scene_id": self.scene.scene_id,
            "collided": self._collided,
            "range": self._ranges(pose),
            "visible_instances": np.array([v[0][0] for v in visible], dtype=np.int64),
            "visible_categories": [v[0][1] for v in visible],
            "visible_pixels": np.array([v[1] for v in visible], dtype=np.int64),
        }

    def _ranges(self, pose: np.ndarray) -> np.ndarray:
        """Free distance (m) along ``RANGE_RAYS`` from the rig's rim: the nearer of a ray
        just above the floor (plates, toys) and one at table height."""
        x, y, yaw = float(pose[0]), float(pose[1]), float(pose[2])
        r0, r1 = RIG_RADIUS + 0.01, RIG_RADIUS + 0.01 + RANGE_MAX
        dirs = [(math.cos(yaw + bearing), math.sin(yaw + bearing)) for bearing in RANGE_RAYS]
        starts = [(x + c * r0, y + s * r0, z) for z in RANGE_HEIGHTS for c, s in dirs]
        ends = [(x + c * r1, y + s * r1, z) for z in RANGE_HEIGHTS for c, s in dirs]
        hits = np.array([h[2] for h in self.sim.p.rayTestBatch(starts, ends)], dtype=np.float32)
        return hits.reshape(len(RANGE_HEIGHTS), -1).min(0) * RANGE_MAX

    def render(self) -> np.ndarray | None:
        """(S, 2S, 3) uint8: the egocentric view beside a top-down overview of the room."""
        if self.render_mode != "rgb_array" or self.scene is None:
            return None
        ego = self.render_camera.render(self.sim, self._eye_view(self.render_camera)).rgb
        hx, hy = self.scene.half_size
        height = max(hx, hy) / math.tan(math.radians(30.0)) + 1.0
        top = self.overview_camera.render(self.sim, look_at((0, 0, height), (0, 0, 0), (0, 1, 0))).rgb
        return np.concatenate([ego, top], axis=1)

    def close(self) -> None:
        self.sim.close()
