"""Pinhole cameras on top of ``getCameraImage``: fixed or attached to a body."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pybullet as p

from embodied.sim.bullet import BulletSim


@dataclass
class Frame:
    """One rendered view.

    rgb: (H, W, 3) uint8. depth: (H, W) float32 metres along the optical axis, or None.
    seg: (H, W) int32 body unique ids (-1 = background), or None.
    """

    rgb: np.ndarray
    depth: np.ndarray | None = None
    seg: np.ndarray | None = None


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> list[float]:
    """Column-major 4x4 OpenGL view matrix (as pybullet wants it) looking from eye to target."""
    return list(p.computeViewMatrix(tuple(map(float, eye)), tuple(map(float, target)), tuple(map(float, up))))


@dataclass
class Camera:
    """A pinhole camera rendering ``width`` x ``height`` pixels.

    fov: vertical field of view in degrees; near/far: clip planes in metres.
    """

    width: int = 64
    height: int = 64
    fov: float = 60.0
    near: float = 0.02
    far: float = 20.0
    shadows: bool = False
    light_direction: tuple[float, float, float] = (0.4, 0.3, 1.0)
    _proj: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"camera {name}={v!r}; expected a positive integer number of pixels")
        if not 0.0 < self.fov < 180.0:
            raise ValueError(f"camera fov={self.fov}; expected degrees in (0, 180)")
        if not 0.0 < self.near < self.far:
            raise ValueError(f"camera near={self.near}, far={self.far}; expected 0 < near < far")
        self._proj = p.computeProjectionMatrixFOV(self.fov, self.width / self.height, self.near, self.far)

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) K matrix in pixels (square pixels, principal point at the centre)."""
        fy = 0.5 * self.height / math.tan(math.radians(self.fov) / 2.0)
        return np.array([[fy, 0.0, self.width / 2.0], [0.0, fy, self.height / 2.0], [0.0, 0.0, 1.0]])

    @property
    def projection(self) -> list[float]:
        return self._proj

    def depth_to_metres(self, zbuf: np.ndarray) -> np.ndarray:
        """Non-linear OpenGL depth buffer in [0, 1] -> (H, W) float32 metres."""
        n, f = self.near, self.far
        return (f * n / (f - (f - n) * zbuf)).astype(np.float32)

    def render(self, sim: BulletSim, view: list[float], *, depth: bool = False, seg: bool = False) -> Frame:
        """Render the world of ``sim`` from ``view`` (a :func:`look_at` matrix)."""
        flags = 0 if seg else p.ER_NO_SEGMENTATION_MASK
        _, _, rgba, zbuf, mask = p.getCameraImage(
            self.width,
            self.height,
            view,
            self._proj,
            shadow=int(self.shadows),
            lightDirection=self.light_direction,
            renderer=sim.renderer_flag,
            flags=flags,
            physicsClientId=sim.client,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)
        return Frame(
            # cv2 drops alpha with SIMD; numpy's strided copy of the same bytes takes ~15x longer
            rgb=cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB),
            depth=self.depth_to_metres(np.asarray(zbuf).reshape(self.height, self.width)) if depth else None,
            seg=np.asarray(mask, dtype=np.int32).reshape(self.height, self.width) if seg else None,
        )

    def attached_view(
        self,
        sim: BulletSim,
        body: int,
        link: int = -1,
        offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
        pitch: float = 0.0,
    ) -> list[float]:
        """View matrix of a camera riding on ``body`` (egocentric).

        offset: eye position in the body/link frame (metres); keep it outside the
        body's meshes, TinyRenderer can hang with the eye inside geometry.
        pitch: radians, positive looks up; the camera looks along the frame's +x.
        """
        if link < 0:
            pos, orn = sim.p.getBasePositionAndOrientation(body)
        else:
            pos, orn = sim.p.getLinkState(body, link)[4:6]
        return mounted_view(pos, orn, offset, pitch)


def mounted_view(
    pos: Sequence[float],
    orn: Sequence[float],
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
    pitch: float = 0.0,
) -> list[float]:
    """View matrix of a camera mounted at ``offset`` (m) on a frame at ``pos`` (m) / ``orn``
    (xyzw quaternion), looking along the frame's +x tilted up by ``pitch`` (rad)."""
    # Plain floats: numpy's overhead on 3-vectors costs more than the maths here (per-frame path).
    r = p.getMatrixFromQuaternion(orn)  # row-major 3x3
    ox, oy, oz = offset
    eye = [pos[i] + r[3 * i] * ox + r[3 * i + 1] * oy + r[3 * i + 2] * oz for i in range(3)]
    cp, sp = math.cos(pitch), math.sin(pitch)
    target = [eye[i] + r[3 * i] * cp + r[3 * i + 2] * sp for i in range(3)]
    up = (r[2], r[5], r[8])
    return list(p.computeViewMatrix(eye, target, up))


def instance_mask(seg: np.ndarray, body_to_instance: dict[int, int]) -> np.ndarray:
    """Map a (H, W) body-id segmentation to instance ids (-1 where no instance)."""
    out = np.full(seg.shape, -1, dtype=np.int32)
    for body, inst in body_to_instance.items():
        out[seg == body] = inst
    return out
