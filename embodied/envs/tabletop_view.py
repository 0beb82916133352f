"""The head camera's pixel <-> world geometry of the tabletop world (a mixin of ``Tabletop``).

Image u (columns) grows with world +y and image v (rows) with world +x for every head camera
(see ``embodied.envs.tabletop``); these methods map pixels to table points and back with the
episode's camera.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from embodied.sim import look_at

if TYPE_CHECKING:
    from embodied.envs.tabletop_world import Placed
    from embodied.sim import BulletSim

HEAD_EYE = (0.85, 0.0, 0.58)  # m; outside every mesh (TinyRenderer can hang with the eye inside one)
HEAD_TARGET = (0.55, 0.0, 0.0)
HEAD_FOV = 40.0  # degrees, vertical
HEAD_ELEVATION = (math.radians(45.0), math.radians(75.0))  # head camera elevation (default 62.7 deg)
HEAD_DISTANCE = (0.62, 0.9)  # m from the aim point (default 0.65 m)
HEAD_TARGET_RANGE = ((0.50, 0.60), (-0.04, 0.04))  # m, the aim point's x and y on the table
REACH = ((0.15, 0.95), (-0.5, 0.5))  # m; a randomised camera's pixels off the table map into this box
RAY_LENGTH = 10.0  # m, pixel rays of a randomised camera (the default camera's are 3 m)


class HeadView:
    """Where the head camera stands and what each of its pixels sees.

    The host (``Tabletop``) provides ``sim``, ``placed``, ``size``, ``randomize``, ``_focal``
    (px) and ``_ray_length`` (m); :meth:`set_head_camera` sets the rest.
    """

    sim: BulletSim
    placed: list[Placed]
    size: int
    randomize: bool
    _focal: float
    _ray_length: float
    _background: np.ndarray | None

    def set_head_camera(self, eye: Sequence[float], target: Sequence[float]) -> None:
        """Point the head camera from ``eye`` at ``target`` (m); every pixel <-> world mapping follows."""
        self.eye = tuple(float(c) for c in eye)
        self.target = tuple(float(c) for c in target)
        self.view = look_at(self.eye, self.target)
        # camera-to-world rotation (columns: camera x, y, z axes in the world) for pixel rays
        v = np.asarray(self.view, dtype=np.float64).reshape(4, 4).T  # world -> camera, row-major
        self._cam_rot = v[:3, :3].T
        self._eye = np.asarray(self.eye, dtype=np.float64)
        self._background = None

    def draw_head_camera(
        self,
        rng: np.random.Generator,
        elevation: tuple[float, float] = HEAD_ELEVATION,
        distance: tuple[float, float] = HEAD_DISTANCE,
        target: tuple[tuple[float, float], tuple[float, float]] = HEAD_TARGET_RANGE,
    ) -> None:
        """A random head camera: aim point on the table in ``target`` (x, y ranges, m), then
        elevation (rad) and distance (m) uniform in their ranges, facing -x (image u = world +y)."""
        tx, ty = rng.uniform(target[0][0], target[0][1]), rng.uniform(target[1][0], target[1][1])
        el = rng.uniform(*elevation)
        d = rng.uniform(*distance)
        aim = np.array([tx, ty, 0.0])
        self.set_head_camera(aim + d * np.array([math.cos(el), 0.0, math.sin(el)]), aim)

    def pixel_ray(self, u: float, v: float) -> np.ndarray:
        """Unit world direction (3,) of the ray through the centre of pixel (u, v) (column, row)."""
        c = self.size / 2.0
        d_cam = np.array([(u + 0.5 - c) / self._focal, -(v + 0.5 - c) / self._focal, -1.0])
        d = self._cam_rot @ d_cam
        return d / np.linalg.norm(d)

    def pixel_to_world(self, u: float, v: float) -> tuple[np.ndarray, int]:
        """The first surface seen at pixel (u, v): world point (3,) m and index in ``placed`` (-1: table).

        With ``randomize``, table points (and pixels that see the wall or the sky) are clamped into
        ``REACH`` (x, y), so an action never sends the arm out of its reach.
        """
        d = self.pixel_ray(u, v)
        hit = self.sim.ray(self._eye.tolist(), (self._eye + self._ray_length * d).tolist())
        if hit[0] < 0:  # past the table's edge: intersect the table plane
            if not self.randomize:
                return self._eye + d * (-self._eye[2] / d[2]), -1
            # a randomised camera can see the wall or above the horizon: keep the point in reach
            point = self._eye + d * (-self._eye[2] / d[2]) if d[2] < -1e-3 else self._eye + self._ray_length * d
            x = min(max(point[0], REACH[0][0]), REACH[0][1])
            y = min(max(point[1], REACH[1][0]), REACH[1][1])
            return np.array([x, y, 0.0]), -1
        slot = next((i for i, o in enumerate(self.placed) if o.body == hit[0]), -1)
        point = np.asarray(hit[3], dtype=np.float64)
        if self.randomize and slot < 0:  # the table, seen further out than the arm reaches
            point[0] = min(max(point[0], REACH[0][0]), REACH[0][1])
            point[1] = min(max(point[1], REACH[1][0]), REACH[1][1])
        return point, slot

    def pixel_on_plane(self, u: float, v: float, z: float = 0.0) -> np.ndarray | None:
        """World point (3,) where the ray through pixel (u, v) meets the plane at height ``z`` (m); None if never."""
        d = self.pixel_ray(u, v)
        if d[2] > -1e-6 or self._eye[2] <= z:
            return None
        return self._eye + d * ((z - self._eye[2]) / d[2])

    def image_direction_on_table(self, u: float, v: float, angle: float, z: float = 0.0) -> tuple[float, float]:
        """World (x, y) unit vector of the table-plane direction that image direction ``angle`` (rad,
        counter-clockwise from u, v pointing down) shows at pixel (u, v), with the current camera."""
        a = self.pixel_on_plane(u, v, z)
        b = self.pixel_on_plane(u + 2.0 * math.cos(angle), v - 2.0 * math.sin(angle), z)
        if a is None or b is None or math.hypot(b[0] - a[0], b[1] - a[1]) < 1e-9:
            return -math.sin(angle), math.cos(angle)  # seen from straight above
        n = math.hypot(b[0] - a[0], b[1] - a[1])
        return (b[0] - a[0]) / n, (b[1] - a[1]) / n

    def world_to_pixel(self, point: Sequence[float]) -> np.ndarray:
        """(u, v) float pixel coordinates of a world point (pixel centres at integer + 0.5)."""
        rel = self._cam_rot.T @ (np.asarray(point, dtype=np.float64) - self._eye)
        c = self.size / 2.0
        return np.array([c + self._focal * rel[0] / -rel[2], c - self._focal * rel[1] / -rel[2]])
