"""``embodied/Look-v0``: several views of one object instance from a camera orbiting it.

The Curious Robot's identity task needs views of the same object; here the camera orbits the
object (cheaper than lifting and turning it with the arm, and the same supervision). The
spaces, rewards and infos are documented on :class:`LookEnv` (``help(env.unwrapped)``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pybullet as p
from gymnasium import spaces

from embodied.envs.scenes import SCENE_CLASSES, build_scene
from embodied.envs.tabletop import (
    HEAD_EYE,
    HEAD_FOV,
    LIGHT_RANGE,
    VIDEO_EYE,
    VIDEO_TARGET,
    WALL_Z,
    Placed,
    TabletopEnv,
)
from embodied.sim import BulletSim, Camera, look_at, objects

ELEVATION = (math.radians(20.0), math.radians(60.0))
DISTANCE = (0.28, 0.4)  # m from the object's centre: always outside any library object
CENTER_BOX = ((0.5, 0.6), (-0.05, 0.05))  # m, where the object is dropped (x, y)
# randomised views (randomize=True)
RANDOM_ELEVATION = (math.radians(10.0), math.radians(70.0))
FILL = (0.25, 1.0)  # target share of the frame side spanned by the projected bounding box (the mask spans less)
# overhead views (overhead_share > 0): near the straight-down, small views of the RL tasks' camera
OVERHEAD_ELEVATION = (math.radians(75.0), math.radians(89.0))  # 90 would leave look_at without an up direction
OVERHEAD_FILL = (0.15, 0.35)  # bounding-box span; ReachObject's masks span 0.11-0.23 (5-95 %), median 0.19
MIN_GAP = 0.06  # m kept between the camera and the object's bounding sphere
WALL_BEHIND = 0.9  # m from the object to the back wall (table views)
ROOM_SEEDS = 10**8  # room seeds are drawn in [0, ROOM_SEEDS): far below the evaluation's (1e9 and up)
ROOM_FAR = 10.0  # m, far plane in rooms (up to 6.5 m across)
ROOM_WORLD_ROOMS = 64  # rooms built in the rooms' world before it is reset (renders never depend on it)


def _camera_to_world(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 4) pose of an OpenGL camera at ``eye`` looking at ``target`` with world z up."""
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -fwd, eye
    return pose


def _span(eye: np.ndarray, target: np.ndarray, corners: np.ndarray, fov: float) -> float:
    """Share of the frame side spanned by the projection of ``corners`` (N, 3) seen from ``eye``."""
    pose = _camera_to_world(eye, target)
    rel = (corners - eye) @ pose[:3, :3]  # camera frame: x right, y up, -z forward
    depth = np.maximum(-rel[:, 2], 1e-6)
    x, y = rel[:, 0] / depth, rel[:, 1] / depth
    return float(max(np.ptp(x), np.ptp(y)) / (2.0 * math.tan(math.radians(fov) / 2.0)))


class LookEnv(TabletopEnv):
    """Orbit views of one object.

    Reset settles one object on the table (or stands it in a room, below) and returns view 0,
    seen from the head camera's side; each step moves the camera and returns the next view.

    ## Action Space

    ``Discrete(views)``: the azimuth bin of the next view, ``2 pi * bin / views``
    counter-clockwise (seen from above) from view 0's azimuth. Elevation and distance are drawn
    per view from the env's seed (see Starting State). A non-integer or out-of-range bin is a
    ``ValueError``.

    ## Observation Space

    ``Dict(rgb=(H, W, 3) uint8, view=(3,) float32)``: ``view`` is the azimuth relative to view 0
    (rad, in [0, 2 pi)), the elevation (rad) and the distance (m) of the camera.

    ## Rewards

    Always 0: Look collects views, it poses no task.

    ## Starting State

    With ``randomize=False`` the object is dropped in ``CENTER_BOX`` on the plain table and every
    view's elevation and distance are uniform in ``ELEVATION`` and ``DISTANCE`` (the views of
    before, bit for bit). With ``randomize=True`` (the default) each episode is, with
    probability ``room_share`` (0.5), inside an ego-motion room
    (``embodied.envs.scenes.build_scene``, split "train", room seed drawn from ``np_random`` in
    ``[0, ROOM_SEEDS)``, far below the evaluation's room seeds, class uniform): the object
    (static) stands on the floor at the room's free start spot among its furniture, a random
    azimuth first; otherwise on the table. Rooms are built in a second PyBullet world of the
    env, so the tabletop is never rebuilt for them. Per view, all from ``np_random``:

    * elevation uniform in ``RANDOM_ELEVATION`` (10-70 deg; the evaluation's views span 10-65);
    * distance: a target ``f`` uniform in ``FILL`` (0.25-1.0, the share of the frame side the
      projection of the object's bounding box spans), solved for from that projection; the
      mask then spans 0.19-0.68 of the frame side (5-95 % quantiles, median 0.42; measured), so
      about half the views are ``centric``-like (0.40-0.70) and the rest ``context``-like
      (smaller); in a room the camera moves in when furniture would stand between it and the
      object; ``info["fill"]`` is the span measured from the mask;
    * with probability ``overhead_share`` (0 by default) the view is from nearly straight above and
      small instead, as the RL tasks' fixed camera sees objects: elevation uniform in
      ``OVERHEAD_ELEVATION`` (75-89 deg) and ``f`` in ``OVERHEAD_FILL`` (0.15-0.35);
    * light direction uniform in ``LIGHT_RANGE`` ([-1, 1] x [-1, 1] x [0.3, 1.5]);
    * on the table: the table's and the back wall's textures (training-only pool) and tints,
      the wall standing ``WALL_BEHIND`` m behind the object, facing the camera (as in the
      evaluation's ``centric`` set).

    ## Episode End

    Terminated after ``views`` observations (``views - 1`` steps); never truncated by the env.

    ## Info

    The same keys and shapes after reset and every step: the tabletop info (``TabletopEnv``,
    K = 1) plus::

        instance       int              library uid of the object; category str; category_id int
        view_index     int              0 at reset, then 1, 2, ...
        camera_pose    (4, 4) float64   camera-to-object transform (object frame at its AABB
                                        centre, axes of the world; OpenGL camera: looks along
                                        -z, y up)
        relative_pose  (4, 4) float64   this camera in view 0's camera frame
        fill           float            share of the frame side the object's mask spans (0: unseen)
        scene_class    int              the room's class index (``SCENE_CLASSES``), -1 on the table
        scene_id       int              the room's seed, -1 on the table

    ``camera_eye`` / ``camera_target`` / ``light_direction`` are this view's.

    ## Arguments

    ``views``: observations per episode (K, >= 2). ``room_share``: the share of randomised
    episodes taken inside an ego-motion room (0: always on the table). ``overhead_share``: the share
    of randomised views taken from nearly overhead (0: none, and the views of before bit for bit). The rest as
    ``TabletopEnv`` (``randomize``, ``size``, ...).
    """

    default_n_objects: Any = 1
    workspace = CENTER_BOX  # near the table's middle, so every orbit view sees table below the object

    def __init__(self, *, views: int = 8, room_share: float = 0.5, overhead_share: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 2:
            raise ValueError(f"views={views!r}; expected an integer >= 2")
        if not (isinstance(room_share, (int, float)) and 0.0 <= room_share <= 1.0):
            raise ValueError(f"room_share={room_share!r}; expected a share in [0, 1]")
        self.room_share = float(room_share)
        if isinstance(overhead_share, bool) or not (
            isinstance(overhead_share, (int, float)) and 0.0 <= overhead_share <= 1.0
        ):
            raise ValueError(f"overhead_share={overhead_share!r}; expected a share in [0, 1]")
        self.overhead_share = float(overhead_share)
        self.room_camera = Camera(self.size, self.size, fov=HEAD_FOV, near=0.02, far=ROOM_FAR)
        self._room: Any = None  # the Scene of a room episode, None on the table
        self.room_sim: BulletSim | None = None  # the rooms' world, made at the first room episode
        self._room_object: Placed | None = None
        self._rooms_built = 0
        self._corners = np.zeros((8, 3))
        self._eye = np.zeros(3)
        if self.n_objects != (1, 1):
            raise ValueError(f"n_objects={list(self.n_objects)}; Look-v0 shows one object, expected 1")
        self.views = int(views)
        self.action_space = spaces.Discrete(self.views)
        self.observation_space = spaces.Dict(
            {"rgb": self.rgb_space, "view": spaces.Box(-10.0, 10.0, shape=(3,), dtype=np.float32)}
        )
        self._index = 0
        self._center = np.zeros(3)
        self._base_azimuth = 0.0
        self._first = np.eye(4)

    def _new_scene(self) -> None:
        self._room = None
        if self.randomize and self.np_random.random() < self.room_share:
            self._room_scene()
        else:
            super()._new_scene()

    def _restyle(self) -> None:
        """Table episodes: the table's and wall's looks are drawn per view; no head-camera backdrop."""

    def _room_scene(self) -> None:
        """Build an ego-motion room in the env's second world and stand one object (static) on its
        floor at the start spot (the tabletop world stays as it is: no rebuild after a room)."""
        rng = self.np_random
        scene_id = int(rng.integers(ROOM_SEEDS))
        scene_class = SCENE_CLASSES[int(rng.integers(len(SCENE_CLASSES)))]
        spec = self.pool[int(rng.integers(len(self.pool)))]
        yaw = float(rng.uniform(-math.pi, math.pi))
        if self.room_sim is None:
            big = max(self.size, self.scene.video_camera.width)
            self.room_sim = BulletSim(renderer=self.sim.renderer, width=big, height=big)
        world = self.room_sim
        if self._rooms_built % ROOM_WORLD_ROOMS == 0:
            world.reset_world()  # frees the rooms' textures now and then
        else:  # remove the last room but keep this world's shapes (loading them is half a room's cost)
            for body in world.body_ids():
                world.remove(body)
            world.bodies.clear()
        self._rooms_built += 1
        self._room = build_scene(world, scene_id, scene_class, "train")
        x, y, _ = self._room.start
        orn = p.getQuaternionFromEuler((0.0, 0.0, yaw))
        body = objects.spawn(world, spec, (x, y, spec.extents[2] / 2.0), orn, static=True, name="look_object")
        self._room_object = Placed(spec, body)

    @property
    def _world(self) -> BulletSim:
        """The world of this episode: the tabletop's, or the room's."""
        return self.sim if self._room is None or self.room_sim is None else self.room_sim

    @property
    def _object(self) -> Placed:
        if self._room is None:
            return self.scene.placed[0]
        assert self._room_object is not None
        return self._room_object

    def _info(self, mask: np.ndarray) -> dict[str, Any]:
        if self._room is None:
            return super()._info(mask)
        # the tabletop info's keys and shapes (K = 1), read from the room's world
        spec, body = self._object.spec, self._object.body
        pos, orn = self._world.base_pose(body)
        lo, hi = self._world.aabb(body)
        top = ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2])
        return {
            "n_objects": 1,
            "instances": np.array([spec.uid], dtype=np.int64),
            "categories": [spec.category],
            "category_ids": np.array([spec.category_id], dtype=np.int64),
            "mask": mask,
            "object_pixels": (self.scene.world_to_pixel(top) - 0.5).astype(np.float32)[None],
            "poses": np.array([[*pos, *orn]], dtype=np.float64),
            "camera_eye": np.array(self.scene.eye, dtype=np.float64),
            "camera_target": np.array(self.scene.target, dtype=np.float64),
            "light_direction": np.array(self.room_camera.light_direction, dtype=np.float64),
            "invalid": False,
        }

    def _on_reset(self) -> None:
        lo, hi = self._world.aabb(self._object.body)
        self._center = (np.asarray(lo) + np.asarray(hi)) / 2.0
        if self._room is not None:
            self._base_azimuth = float(self.np_random.uniform(-math.pi, math.pi))
        else:
            self._base_azimuth = math.atan2(HEAD_EYE[1] - self._center[1], HEAD_EYE[0] - self._center[0])
        self._corners = np.array([[(lo, hi)[i >> k & 1][k] for k in range(3)] for i in range(8)], dtype=np.float64)
        self._index = 0
        self._first = np.eye(4)
        self._pending = self._draw_view(0)

    def _draw_view(self, azimuth_bin: int) -> np.ndarray:
        az = 2.0 * math.pi * azimuth_bin / self.views
        if not self.randomize:
            el = float(self.np_random.uniform(*ELEVATION))
            dist = float(self.np_random.uniform(*DISTANCE))
            return np.array([az, el, dist])
        rng = self.np_random
        # drawn only when asked for, so that overhead_share=0 keeps the views of before bit for bit
        overhead = self.overhead_share > 0 and rng.random() < self.overhead_share
        el = float(rng.uniform(*(OVERHEAD_ELEVATION if overhead else RANDOM_ELEVATION)))
        fill = float(rng.uniform(*(OVERHEAD_FILL if overhead else FILL)))
        direction = self._direction(az, el)
        radius = float(np.linalg.norm(self._corners[7] - self._corners[0]) / 2.0)
        dist = radius / (fill * math.tan(math.radians(HEAD_FOV) / 2.0))  # the bounding sphere spans ``fill``
        for _ in range(2):  # span ~ 1 / distance: rescale to the box's projected span
            span = _span(self._center + dist * direction, self._center, self._corners, HEAD_FOV)
            dist *= span / fill
        dist = max(dist, radius + MIN_GAP)
        if self._room is not None:  # furniture or a wall between the object and the camera: move in
            near = radius + 0.01  # from the bounding sphere out: a ray starting inside the object misses it
            hit = self._world.ray(
                (self._center + near * direction).tolist(), (self._center + dist * direction).tolist()
            )
            if hit[0] >= 0 and hit[0] != self._object.body:
                dist = max(radius + MIN_GAP, 0.85 * (near + hit[2] * (dist - near)))
        if self._room is None:  # the table and the wall look different in every view
            self.scene.restyle(rng)
            back = self._center[:2] - WALL_BEHIND * direction[:2] / max(np.linalg.norm(direction[:2]), 1e-9)
            orn = p.getQuaternionFromEuler((0.0, 0.0, self._base_azimuth + az))
            self.sim.set_base_pose(self.scene.wall, (back[0], back[1], WALL_Z), orn)
        else:
            self.room_camera.light_direction = tuple(float(c) for c in rng.uniform(*LIGHT_RANGE))
        return np.array([az, el, dist])

    def _direction(self, az: float, el: float) -> np.ndarray:
        a = self._base_azimuth + az
        return np.array([math.cos(el) * math.cos(a), math.cos(el) * math.sin(a), math.sin(el)])

    def _view_render(self, view: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        az, el, dist = view
        eye = self._center + dist * self._direction(az, el)
        self._eye = eye
        scene = self.scene
        if self._room is None:
            scene.arm.set_visible(False)
            scene._show_table(True)  # seen from anywhere, the table's edge can be in view: draw it
            camera = scene.camera
        else:
            camera = self.room_camera
        frame = camera.render(self._world, look_at(eye, self._center), seg=True)
        assert frame.seg is not None
        mask = np.where(frame.seg == self._object.body, 0, -1).astype(np.int16)
        return frame.rgb, mask, _camera_to_world(eye, self._center)

    def _look(self) -> tuple[dict, dict]:
        view = self._pending
        rgb, mask, pose = self._view_render(view)
        if self._index == 0:
            self._first = pose
        obj_pose = pose.copy()
        obj_pose[:3, 3] -= self._center
        info = self._info(mask)
        spec = self._object.spec
        info.update(instance=spec.uid, category=spec.category, category_id=spec.category_id)
        ys, xs = np.nonzero(mask == 0)
        camera = self.scene.camera if self._room is None else self.room_camera
        info.update(
            view_index=self._index,
            camera_pose=obj_pose,
            relative_pose=np.linalg.inv(self._first) @ pose,
            camera_eye=self._eye.copy(),
            camera_target=self._center.copy(),
            light_direction=np.array(camera.light_direction, dtype=np.float64),
            fill=float(max(np.ptp(xs) + 1, np.ptp(ys) + 1) / self.size) if len(xs) else 0.0,
            scene_class=self._room.scene_class_id if self._room is not None else -1,
            scene_id=int(self._room.scene_id) if self._room is not None else -1,
        )
        return {"rgb": rgb, "view": view.astype(np.float32)}, info

    def _observe_reset(self) -> tuple[dict, dict]:
        return self._look()

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        self._require_reset()
        if isinstance(action, (float, np.floating)) and not float(action).is_integer():
            raise ValueError(f"action={action!r}; expected an integer view bin in [0, {self.views})")
        try:
            k = int(np.asarray(action).reshape(()))
        except (TypeError, ValueError):
            raise ValueError(f"action={action!r}; expected an integer view bin in [0, {self.views})") from None
        if not 0 <= k < self.views:
            raise ValueError(f"action={action!r}; expected an integer view bin in [0, {self.views})")
        self._index += 1
        self._pending = self._draw_view(k)
        obs, info = self._look()
        return obs, 0.0, self._index >= self.views - 1, False, info

    def render(self) -> np.ndarray | None:
        """(S, S, 3) uint8 third-person frame; in a room, from over the object's shoulder."""
        if self.render_mode != "rgb_array" or self._room is None:
            return super().render()
        offset = np.asarray(VIDEO_EYE) - np.asarray(VIDEO_TARGET)
        eye = self._center + 0.8 * offset
        return self.scene.video_camera.render(self._world, look_at(eye, self._center)).rgb

    def close(self) -> None:
        if self.room_sim is not None:
            self.room_sim.close()
        super().close()
