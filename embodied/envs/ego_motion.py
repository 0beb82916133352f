"""``embodied/EgoMotion-v0``: egocentric video with odometry in procedural rooms.

The simulated counterpart of KITTI car video with odometry (Jayaraman & Grauman,
ICCV 2015): a camera rig drives through rooms of several scene classes; each
step returns the camera frame and the motor signal actually executed since the
previous frame. The rig is a frictionless cylinder floating at a fixed height
under physics (no gravity, no floor contact): walls and objects stop it; the
floor is only seen, never simulated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from embodied.envs.scenes import SCENE_CLASSES, SCENE_STYLES, Scene, build_scene
from embodied.envs.validate import check_action, check_positive_int, check_split
from embodied.sim import BulletSim, Camera, look_at, mounted_view

RIG_RADIUS = 0.15  # m
RIG_HEIGHT = 0.5  # m
# Eye 5 cm in front of the rig's surface: TinyRenderer can hang with the eye inside a mesh.
EYE_OFFSET = (RIG_RADIUS + 0.05, 0.0, 0.2)  # m, in the rig frame (origin at the rig's centre)
PITCH_LIMIT = math.radians(30.0)
RANGE_RAYS = tuple(math.radians(d) for d in (-35.0, 0.0, 35.0))  # bearing of the range-finder rays
# m above the floor: below the lowest object (plates, 3.5 cm); furniture and objects all stand on the floor
RANGE_HEIGHT = 0.02
RANGE_MAX = 3.0  # m
BLOCKED_DEPTH = 5e-4  # m of penetration that counts as a collision

DISCRETE_ACTIONS = ("forward", "turn_left", "turn_right", "look_up", "look_down")
MOTOR_FIELDS = ("forward_m", "lateral_m", "yaw_rad", "pitch_rad")
# Most objects any room holds: the visible_* infos are padded to it (fixed shapes, so vector envs stack them)
MAX_VISIBLE = max(style.n_objects[1] for style in SCENE_STYLES.values())


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """xyzw quaternion of a rotation by ``yaw`` radians about +z."""
    return (0.0, 0.0, math.sin(0.5 * yaw), math.cos(0.5 * yaw))


def _check_numbers(
    motor_noise: float, motor_noise_floor: float, control_dt: float, step_forward: float, max_speed: float
) -> None:
    """ValueError naming the first of these that is not finite, or negative (noise) / not positive."""
    for name, value in (("motor_noise", motor_noise), ("motor_noise_floor", motor_noise_floor)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value}; expected a finite number >= 0")
    for name, value in (("control_dt", control_dt), ("step_forward", step_forward), ("max_speed", max_speed)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value}; expected a finite number > 0")


def _check_scene_classes(scene_classes: Sequence[str] | None) -> tuple[str, ...]:
    """The scene classes as a tuple (None or empty: all), or ValueError naming the unknown ones."""
    classes = tuple(scene_classes) if scene_classes else SCENE_CLASSES
    unknown = [c for c in classes if c not in SCENE_CLASSES]
    if unknown:
        raise ValueError(f"scene_classes {unknown} unknown; expected a subset of {list(SCENE_CLASSES)}")
    return classes


def _spaces(action_mode: str, size: int, depth: bool) -> tuple[spaces.Space, spaces.Dict]:
    """(action space, observation space) of an ``EgoMotionEnv`` (see its docstring)."""
    if action_mode == "discrete":
        action: spaces.Space = spaces.Discrete(len(DISCRETE_ACTIONS))
    else:
        action = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    obs = {
        "rgb": spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8),
        "motor": spaces.Box(-10.0, 10.0, shape=(len(MOTOR_FIELDS),), dtype=np.float32),
    }
    if depth:
        obs["depth"] = spaces.Box(0.0, 100.0, shape=(size, size, 1), dtype=np.float32)
    return action, spaces.Dict(obs)


class EgoMotionEnv(gym.Env):
    """A camera rig exploring a procedurally generated room.

    Each step returns the camera frame and the motor signal actually executed since the
    previous frame (odometry with sensor noise). Scene classes (``SCENE_CLASSES``) differ by
    room size and layout, furniture, floor and wall textures and the object categories in
    them (``embodied.envs.scenes``).

    ## Action Space

    ``action_mode="discrete"``: ``Discrete(5)``, ``DISCRETE_ACTIONS`` = forward
    (``step_forward`` m), turn_left / turn_right (``turn_angle`` rad), look_up / look_down
    (``look_angle`` rad, pitch kept within +-30 deg). ``"continuous"``: ``Box(-1, 1, (2,),
    float32)``, forward speed and yaw rate, scaled by ``max_speed`` (m/s) and ``max_yaw_rate``
    (rad/s), held for ``control_dt`` s. Walls and objects stop the rig; it never passes through.

    ## Observation Space

    ``Dict(rgb=Box(0, 255, (size, size, 3), uint8), motor=Box(-10, 10, (4,), float32)
    [, depth=Box(0, 100, (size, size, 1), float32)])``: the egocentric frame, the executed
    motion in the rig's frame at the previous pose (``MOTOR_FIELDS``: forward m, lateral m,
    yaw rad, pitch rad; relative noise ``motor_noise`` plus ``motor_noise_floor``; zeros at
    reset) and, with ``depth=True``, the depth image in metres.

    ## Rewards

    0 on every step: the env makes video with odometry, not a task.

    ## Starting State

    A new room per episode: its seed and class drawn from ``np_random`` (the class among
    ``scene_classes``, or ``options["scene_class"]``), its furniture and objects (split
    ``split``) a pure function of the seed; the rig at the room's free start spot, facing the
    room's start yaw, pitch 0.

    ## Episode End

    Never terminates; the registered ids truncate at ``max_episode_steps`` of their preset
    (``envs/ego_room.toml``: 200).

    ## Info

    The same keys and shapes after every reset and step, whatever is in view, so
    ``gymnasium.vector`` can stack them; K = ``MAX_VISIBLE``, the most objects a room holds:

    ====================== ============ =======================================================
    pose                   (4,) float32 x (m), y (m), yaw (rad), pitch (rad) of the rig
    scene_class            str          one of ``SCENE_CLASSES``
    scene_class_id         int          its index in ``SCENE_CLASSES``
    scene_id               int          the room's generator seed
    collided               bool         an obstacle blocked this step's motion
    range                  (3,) float32 metres of free space ahead (right, centre, left), 2 cm
                                        above the floor, at most ``RANGE_MAX`` (for scripted explorers)
    n_visible              int          n: object instances seen in this frame
    visible_instances      (K,) int64   their library uids, -1 after the first n
    visible_categories     list of K str their categories, "" after the first n
    visible_pixels         (K,) int64   pixels each covers in the frame, -1 after the first n
    ====================== ============ =======================================================

    Learners must not need info.

    ## Arguments

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
        renderer: "tiny" or "egl". render_mode: None or "rgb_array" (``render()``: the
            egocentric view beside a top-down overview).
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
        for name, value in (("size", size), ("substeps", substeps), ("render_size", render_size)):
            check_positive_int(name, value)
        if action_mode not in ("discrete", "continuous"):
            raise ValueError(f"action_mode={action_mode!r}; expected 'discrete' or 'continuous'")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; expected None or 'rgb_array'")
        _check_numbers(motor_noise, motor_noise_floor, control_dt, step_forward, max_speed)
        classes = _check_scene_classes(scene_classes)
        self.split = check_split(split)
        self.size, self.action_mode, self.scene_classes = int(size), action_mode, classes
        self.max_speed, self.max_yaw_rate = max_speed, max_yaw_rate
        self.control_dt, self.substeps = control_dt, int(substeps)
        self.motor_noise, self.motor_noise_floor = motor_noise, motor_noise_floor
        self.use_depth, self.render_mode = bool(depth), render_mode

        self.action_space, self.observation_space = _spaces(action_mode, self.size, self.use_depth)

        big = max(self.size, render_size)
        # No gravity: the rig floats at a fixed height and never touches the floor (see _make_rig)
        self.sim = BulletSim(
            timestep=control_dt / substeps,
            gravity=0.0,
            solver_iterations=10,
            renderer=renderer,
            width=big,
            height=big,
        )
        self.camera = Camera(self.size, self.size, fov=fov, near=0.03, far=15.0)
        self.render_camera = Camera(render_size, render_size, fov=fov, near=0.03, far=15.0)
        self.overview_camera = Camera(render_size, render_size, fov=60.0, near=0.1, far=20.0)
        self.scene: Scene | None = None
        self.rig = -1
        self._collided = False
        self._last_pose = (0.0, 0.0, 0.0, 0.0)  # x m, y m, yaw rad, pitch rad
        dt = control_dt
        commands = {  # (speed m/s, yaw rate rad/s, pitch change rad)
            "forward": (step_forward / dt, 0.0, 0.0),
            "turn_left": (0.0, turn_angle / dt, 0.0),
            "turn_right": (0.0, -turn_angle / dt, 0.0),
            "look_up": (0.0, 0.0, look_angle),
            "look_down": (0.0, 0.0, -look_angle),
        }
        self._discrete_commands = tuple(commands[name] for name in DISCRETE_ACTIONS)

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
        self.rig = self._make_rig(x, y, yaw, self.scene.floor)
        self._collided = False
        self._last_pose = (x, y, yaw, 0.0)
        return self._observe(np.zeros(len(MOTOR_FIELDS), np.float32))

    def _make_rig(self, x: float, y: float, yaw: float, floor: int) -> int:
        sim = self.sim
        rig = sim.create_body(
            "cylinder",
            (x, y, RIG_HEIGHT / 2),
            _yaw_quaternion(yaw),
            mass=5.0,
            rgba=(0.95, 0.55, 0.1, 1.0),
            radius=RIG_RADIUS,
            height=RIG_HEIGHT,
        )
        # Frictionless and without restitution: the rig slides along walls instead of bouncing.
        sim.set_dynamics(rig, lateralFriction=0.0, restitution=0.0, linearDamping=0.0, angularDamping=0.0)
        # The floor only carries the view: out of every collision pair and ray test, it would
        # otherwise add a contact manifold to each physics substep and a box test to each low ray.
        sim.disable_collisions(floor)
        return sim.add_body("rig", rig)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self.scene is None:
            raise RuntimeError("call reset() before step()")
        speed, yaw_rate, pitch_delta = self._command(action)
        sim, rig = self.sim, self.rig
        before = self._last_pose
        if speed == 0.0:
            # Turning on the spot: a cylinder spinning about its own axis sweeps no new space,
            # so nothing can block it and physics has nothing to do (2 in 3 explorer steps).
            x, y, yaw = before[0], before[1], math.remainder(before[2] + yaw_rate * self.control_dt, math.tau)
            if yaw_rate != 0.0:
                sim.set_base_pose(rig, (x, y, RIG_HEIGHT / 2), _yaw_quaternion(yaw))
            self._collided = False
        else:
            # One velocity command per action, along the mid-action heading (an arc's chord):
            # per-substep commands would cost more Python than the physics itself.
            heading = before[2] + 0.5 * yaw_rate * self.control_dt
            velocity = (speed * math.cos(heading), speed * math.sin(heading), 0.0)
            sim.set_base_velocity(rig, velocity, (0.0, 0.0, yaw_rate))
            sim.step(self.substeps)
            x, y, yaw, self._collided = self._settle()
        pitch = min(max(before[3] + pitch_delta, -PITCH_LIMIT), PITCH_LIMIT)
        self._last_pose = (x, y, yaw, pitch)
        obs, info = self._observe(self._odometry(before, self._last_pose))
        return obs, 0.0, False, False, info

    def _command(self, action: Any) -> tuple[float, float, float]:
        """(forward speed m/s, yaw rate rad/s, pitch change rad) for an action."""
        a = check_action(self.action_space, action)
        if self.action_mode == "continuous":
            return float(a[0]) * self.max_speed, float(a[1]) * self.max_yaw_rate, 0.0
        return self._discrete_commands[int(a)]

    def _settle(self) -> tuple[float, float, float, bool]:
        """Push the rig out of anything it sank into and stand it upright at its height.

        The solver leaves a rig driven into a wall a few cm deep in it (it is commanded
        into the wall every step); moving it out along the contact normals keeps the
        "never passes through" promise at no extra physics steps. Returns the rig's
        (x m, y m, yaw rad) and whether it was blocked: it sank more than
        ``BLOCKED_DEPTH`` into something. (Contacts within the breaking threshold outlive
        the push-out: a rig resting flush against a wall is not blocked when it turns away.)
        """
        sim, rig = self.sim, self.rig
        (x, y, _), orn = sim.base_pose(rig)
        yaw = p.getEulerFromQuaternion(orn)[2]
        blocked = False
        for c in sim.contacts(rig):
            if c[8] < -BLOCKED_DEPTH:  # penetration depth; normalOnB points from the obstacle to the rig
                blocked = True
                x -= c[7][0] * c[8]
                y -= c[7][1] * c[8]
        # Always reset (no velocity: step() sets it before the next physics step), so the
        # pose is exactly what is returned and the eye view needs no query.
        sim.set_base_pose(rig, (x, y, RIG_HEIGHT / 2), _yaw_quaternion(yaw))
        return x, y, yaw, blocked

    def _pose(self) -> np.ndarray:
        """(x m, y m, yaw rad, pitch rad) of the camera rig, float64."""
        return np.array(self._last_pose, dtype=np.float64)

    def _odometry(self, before: tuple[float, ...], after: tuple[float, ...]) -> np.ndarray:
        """Executed motion in the rig frame at ``before``, with sensor noise: MOTOR_FIELDS, float32."""
        # Python floats: the same IEEE doubles as numpy's, without five small-array round trips per step
        x0, y0, yaw0, pitch0 = before
        x1, y1, yaw1, pitch1 = after
        dx, dy = x1 - x0, y1 - y0
        c, s = math.cos(yaw0), math.sin(yaw0)
        dyaw = (yaw1 - yaw0 + math.pi) % (2 * math.pi) - math.pi
        true = (c * dx + s * dy, -s * dx + c * dy, dyaw, pitch1 - pitch0)
        rel, floor = self.motor_noise, self.motor_noise_floor
        noise = self.np_random.normal(size=4).tolist()
        noisy = [t + n * (rel * abs(t) + floor) for t, n in zip(true, noise, strict=True)]
        return np.array([min(max(v, -10.0), 10.0) for v in noisy], dtype=np.float32)

    # -- sensing -----------------------------------------------------------
    def eye_view(self) -> list[float]:
        """View matrix of the eye camera at the current pose (the rig is kept upright)."""
        x, y, yaw, pitch = self._last_pose
        return mounted_view((x, y, RIG_HEIGHT / 2), _yaw_quaternion(yaw), EYE_OFFSET, pitch)

    def _observe(self, motor: np.ndarray) -> tuple[dict, dict]:
        # Rays before the render: right after physics the collision world is still in cache
        ranges = self._ranges()
        frame = self.camera.render(self.sim, self.eye_view(), depth=self.use_depth, seg=True)
        obs = {"rgb": frame.rgb, "motor": motor}
        if self.use_depth:
            obs["depth"] = frame.depth[..., None]
        return obs, self._info(ranges, frame.seg)

    def _info(self, ranges: np.ndarray, seg: np.ndarray) -> dict:
        """The info dict (see the class docstring): fixed shapes, visible objects padded to ``MAX_VISIBLE``."""
        assert self.scene is not None
        counts = np.bincount(seg.ravel() + 1).tolist()  # index 0 = background (-1)
        n = len(counts)
        visible = [
            (uid, category, counts[body + 1])
            for body, (uid, category) in self.scene.object_bodies.items()
            if body + 1 < n and counts[body + 1]
        ][:MAX_VISIBLE]
        pad = MAX_VISIBLE - len(visible)
        return {
            "pose": np.array(self._last_pose, dtype=np.float32),
            "scene_class": self.scene.scene_class,
            "scene_class_id": self.scene.scene_class_id,
            "scene_id": self.scene.scene_id,
            "collided": self._collided,
            "range": ranges,
            "n_visible": len(visible),
            "visible_instances": np.array([v[0] for v in visible] + [-1] * pad, dtype=np.int64),
            "visible_categories": [v[1] for v in visible] + [""] * pad,
            "visible_pixels": np.array([v[2] for v in visible] + [-1] * pad, dtype=np.int64),
        }

    def _ranges(self) -> np.ndarray:
        """(3,) float32: free distance (m) along ``RANGE_RAYS`` from the rig's rim, just above the floor."""
        x, y, yaw, _ = self._last_pose
        r0, r1 = RIG_RADIUS + 0.01, RIG_RADIUS + 0.01 + RANGE_MAX
        dirs = [(math.cos(yaw + bearing), math.sin(yaw + bearing)) for bearing in RANGE_RAYS]
        starts = [(x + c * r0, y + s * r0, RANGE_HEIGHT) for c, s in dirs]
        ends = [(x + c * r1, y + s * r1, RANGE_HEIGHT) for c, s in dirs]
        hits = self.sim.rays(starts, ends)
        return np.array([h[2] * RANGE_MAX for h in hits], dtype=np.float32)

    def render(self) -> np.ndarray | None:
        """(S, 2S, 3) uint8: the egocentric view beside a top-down overview of the room."""
        if self.render_mode != "rgb_array" or self.scene is None:
            return None
        ego = self.render_camera.render(self.sim, self.eye_view()).rgb
        hx, hy = self.scene.half_size
        height = max(hx, hy) / math.tan(math.radians(30.0)) + 1.0
        top = self.overview_camera.render(self.sim, look_at((0, 0, height), (0, 0, 0), (0, 1, 0))).rgb
        return np.concatenate([ego, top], axis=1)

    def close(self) -> None:
        self.sim.close()
