"""``embodied/Look-v0``: several views of one object instance from a camera orbiting it.

The Curious Robot's identity task needs views of the same object; here the
camera orbits the object (cheaper than lifting and turning it with the arm, and
the same supervision). Reset settles one object on the table and returns view 0,
seen from the head camera's side; each step moves the camera and returns the
next view; the episode ends after ``views`` observations (``views - 1`` steps).

Action: Discrete(views): the azimuth bin of the next view, ``2 pi * bin / views``
counter-clockwise (seen from above) from view 0's azimuth. Elevation (``ELEVATION``
range) and distance (``DISTANCE`` range) are drawn per view from the env's seed.

Observation: Dict(rgb=(H, W, 3) uint8, view=(3,) float32: azimuth relative to
view 0 (rad, in [0, 2 pi)), elevation (rad), distance (m) of the camera).
Reward: 0.

Info (the same keys and shapes after reset and every step): the tabletop info
(``TabletopEnv``, K = 1) plus::

    instance       int              library uid of the object; category str; category_id int
    view_index     int              0 at reset, then 1, 2, ...
    camera_pose    (4, 4) float64   camera-to-object transform (object frame at its AABB
                                    centre, axes of the world; OpenGL camera: looks along
                                    -z, y up)
    relative_pose  (4, 4) float64   this camera in view 0's camera frame
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from embodied.envs.tabletop import HEAD_EYE, TabletopEnv
from embodied.sim import look_at

ELEVATION = (math.radians(20.0), math.radians(60.0))
DISTANCE = (0.28, 0.4)  # m from the object's centre: always outside any library object
CENTER_BOX = ((0.5, 0.6), (-0.05, 0.05))  # m, where the object is dropped (x, y)


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


class LookEnv(TabletopEnv):
    """Orbit views of one object (see the module docstring). ``views``: observations per episode (K)."""

    default_n_objects: Any = 1
    workspace = CENTER_BOX  # near the table's middle, so every orbit view sees table below the object

    def __init__(self, *, views: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 2:
            raise ValueError(f"views={views!r}; expected an integer >= 2")
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

    def _on_reset(self) -> None:
        lo, hi = self.sim.p.getAABB(self.scene.placed[0].body)
        self._center = (np.asarray(lo) + np.asarray(hi)) / 2.0
        self._base_azimuth = math.atan2(HEAD_EYE[1] - self._center[1], HEAD_EYE[0] - self._center[0])
        self._index = 0
        self._first = np.eye(4)
        self._pending = self._draw_view(0)

    def _draw_view(self, azimuth_bin: int) -> np.ndarray:
        az = 2.0 * math.pi * azimuth_bin / self.views
        el = float(self.np_random.uniform(*ELEVATION))
        dist = float(self.np_random.uniform(*DISTANCE))
        return np.array([az, el, dist])

    def _view_render(self, view: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        az, el, dist = view
        a = self._base_azimuth + az
        eye = self._center + dist * np.array([math.cos(el) * math.cos(a), math.cos(el) * math.sin(a), math.sin(el)])
        scene = self.scene
        scene.arm.set_visible(False)
        scene._show_table(True)  # seen from anywhere, the table's edge can be in view: draw it
        frame = scene.camera.render(self.sim, look_at(eye, self._center), seg=True)
        assert frame.seg is not None
        mask = np.where(frame.seg == scene.placed[0].body, 0, -1).astype(np.int16)
        return frame.rgb, mask, _camera_to_world(eye, self._center)

    def _look(self) -> tuple[dict, dict]:
        view = self._pending
        rgb, mask, pose = self._view_render(view)
        if self._index == 0:
            self._first = pose
        obj_pose = pose.copy()
        obj_pose[:3, 3] -= self._center
        info = self._info(mask)
        info.update(self.target_of(0))
        info.update(
            view_index=self._index,
            camera_pose=obj_pose,
            relative_pose=np.linalg.inv(self._first) @ pose,
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
