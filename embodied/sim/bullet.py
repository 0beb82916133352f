"""BulletSim: one private PyBullet physics client per environment.

Never touches PyBullet's shared default client, so any number of simulators live
in one process (vector envs, tests) without "Not connected to physics server".

As in panda-gym's ``pybullet.py``, the environments talk to the physics client only
through this wrapper's named methods (bodies, poses, looks, rays, contacts); ``sim.p``,
the raw client, is for the simulator layer (``embodied.sim``).
"""

from __future__ import annotations

import functools
import os
import pkgutil
import shutil
import warnings
from collections.abc import Sequence
from typing import Any

import pybullet as p
import pybullet_data

RENDERERS = ("tiny", "egl")


class _ClientProxy:
    """``proxy.fn(...)`` calls ``pybullet.fn(..., physicsClientId=client)``.

    Bound partials are cached, so a hot-path call costs one dict lookup more
    than calling pybullet directly.
    """

    def __init__(self, client: int) -> None:
        self._client = client
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        fn = getattr(p, name)
        if callable(fn) and name not in ("connect", "disconnect"):
            bound = functools.partial(fn, physicsClientId=self._client)
            self._cache[name] = bound
            self.__dict__[name] = bound
            return bound
        return fn


def _nvidia_present() -> bool:
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


class BulletSim:
    """A headless PyBullet world.

    Args:
        timestep: physics step in seconds.
        gravity: z gravity in m/s^2.
        renderer: "tiny" (CPU TinyRenderer) or "egl" (GPU; falls back to "tiny" with a warning).
        width, height: the largest image this sim renders; the EGL plugin allocates
            its framebuffer at this size (bullet3 issue 1545).
        solver_iterations: constraint solver iterations (fewer is faster).
    """

    def __init__(
        self,
        *,
        timestep: float = 1.0 / 240.0,
        gravity: float = -9.81,
        renderer: str = "tiny",
        width: int = 64,
        height: int = 64,
        solver_iterations: int = 50,
    ) -> None:
        if renderer not in RENDERERS:
            raise ValueError(f"renderer={renderer!r}; expected one of {RENDERERS}")
        if timestep <= 0:
            raise ValueError(f"timestep={timestep}; expected a positive number of seconds")
        self.timestep = float(timestep)
        self.gravity = float(gravity)
        self.solver_iterations = int(solver_iterations)
        self.renderer = "tiny"
        self._egl_plugin = -1
        options = f"--width={int(width)} --height={int(height)}" if renderer == "egl" else ""
        self.client: int = p.connect(p.DIRECT, options=options)
        if self.client < 0:
            raise RuntimeError("pybullet could not open a DIRECT physics client")
        self.p = _ClientProxy(self.client)
        self.bodies: dict[str, int] = {}
        # Per-world memo for shapes / textures created in this client; emptied by reset_world.
        self.cache: dict[object, int] = {}
        if renderer == "egl":
            self._load_egl()
        self._configure()

    # -- setup -------------------------------------------------------------
    def _configure(self) -> None:
        self.p.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.p.setGravity(0.0, 0.0, self.gravity)
        self.p.setPhysicsEngineParameter(
            fixedTimeStep=self.timestep, numSolverIterations=self.solver_iterations, deterministicOverlappingPairs=1
        )

    def _load_egl(self) -> None:
        if not _nvidia_present():
            warnings.warn("renderer='egl' asked but no NVIDIA GPU found; using TinyRenderer", stacklevel=3)
            return
        loader = pkgutil.get_loader("eglRenderer")
        plugin = -1
        if loader is not None:
            plugin = self.p.loadPlugin(loader.get_filename(), "_eglRendererPlugin")
        if plugin < 0:
            warnings.warn("the EGL renderer plugin failed to load; using TinyRenderer", stacklevel=3)
            return
        self._egl_plugin = plugin
        self.renderer = "egl"

    @property
    def renderer_flag(self) -> int:
        """The ``renderer=`` argument for ``getCameraImage``."""
        return p.ER_BULLET_HARDWARE_OPENGL if self.renderer == "egl" else p.ER_TINY_RENDERER

    # -- world -------------------------------------------------------------
    def reset_world(self) -> None:
        """Remove every body and rebuild an empty world.

        Rebuilding is deterministic, unlike saveState/restoreState across episodes
        (bullet3 issues 2442, 2982).
        """
        self.p.resetSimulation()
        self.bodies.clear()
        self.cache.clear()
        self._configure()

    def add_body(self, name: str, body_id: int) -> int:
        """Record ``body_id`` under ``name``; names are unique within a world."""
        if name in self.bodies:
            raise ValueError(f"body name {name!r} already used in this world")
        if body_id < 0:
            raise RuntimeError(f"pybullet failed to create body {name!r}")
        self.bodies[name] = body_id
        return body_id

    def remove_body(self, name: str) -> None:
        self.p.removeBody(self.bodies.pop(name))

    # -- bodies: create, remove, dynamics ----------------------------------
    def create_body(
        self,
        shape: str,
        position: Sequence[float],
        orientation: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
        *,
        mass: float = 0.0,
        rgba: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        collision: bool = True,
        visual_size: dict[str, Any] | None = None,
        **size: Any,
    ) -> int:
        """A one-link body of primitive ``shape`` ("box", "sphere", "cylinder") at ``position`` (m) /
        ``orientation`` (xyzw quaternion); returns its body id (not recorded under a name).

        ``size``: the shape's size keywords (``halfExtents`` m; ``radius`` m; ``radius`` and
        ``height`` m). ``visual_size`` draws the body at another size than it collides with;
        ``collision=False`` makes it visual only (no contacts, invisible to rays). ``mass`` 0:
        static. The collision shape is created before the visual one, as before this helper.
        """
        geom = {"box": p.GEOM_BOX, "sphere": p.GEOM_SPHERE, "cylinder": p.GEOM_CYLINDER}[shape]
        col = self.p.createCollisionShape(geom, **size) if collision else -1
        vis_size = dict(size if visual_size is None else visual_size)
        if shape == "cylinder":  # a visual cylinder's height is its "length" in pybullet
            vis_size["length"] = vis_size.pop("height")
        vis = self.p.createVisualShape(geom, rgbaColor=tuple(rgba), **vis_size)
        return self.p.createMultiBody(mass, col, vis, tuple(position), tuple(orientation))

    def body_ids(self) -> list[int]:
        """Ids of every body in this world, named or not."""
        return [self.p.getBodyUniqueId(i) for i in range(self.p.getNumBodies())]

    def remove(self, body: int) -> None:
        """Remove body ``body`` (an id; see :meth:`remove_body` for a named one)."""
        self.p.removeBody(body)

    def set_dynamics(self, body: int, link: int = -1, **dynamics: Any) -> None:
        """pybullet ``changeDynamics`` keywords (``lateralFriction``, ``restitution``, ...) of a link."""
        self.p.changeDynamics(body, link, **dynamics)

    def disable_collisions(self, body: int, link: int = -1) -> None:
        """Take a link out of every collision pair and ray test (it is still drawn)."""
        self.p.setCollisionFilterGroupMask(body, link, 0, 0)

    # -- poses and velocities ----------------------------------------------
    def base_pose(self, body: int) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
        """(position m, xyzw quaternion) of ``body``'s base."""
        return self.p.getBasePositionAndOrientation(body)

    def set_base_pose(self, body: int, position: Sequence[float], orientation: Sequence[float]) -> None:
        """Teleport ``body``'s base to ``position`` (m) / ``orientation`` (xyzw quaternion)."""
        self.p.resetBasePositionAndOrientation(body, position, orientation)

    def base_velocity(self, body: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(linear m/s, angular rad/s) velocity of ``body``'s base."""
        return self.p.getBaseVelocity(body)

    def set_base_velocity(self, body: int, linear: Sequence[float], angular: Sequence[float]) -> None:
        self.p.resetBaseVelocity(body, linear, angular)

    def aabb(self, body: int, link: int = -1) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(lowest corner, highest corner) m of a link's world axis-aligned bounding box."""
        return self.p.getAABB(body, link)

    # -- looks -------------------------------------------------------------
    def load_texture(self, path: str) -> int:
        """Load an image file as a texture of this world; returns its id."""
        return self.p.loadTexture(path)

    def visual_shapes(self, body: int) -> list[tuple]:
        """pybullet's visual shape data of ``body``: one tuple per link (index 1 link, index 7 rgba)."""
        return self.p.getVisualShapeData(body)

    def set_color(self, body: int, rgba: Sequence[float], link: int = -1, texture: int | None = None) -> None:
        """Tint a link ``rgba`` (alpha 0 hides it from renders), and give it ``texture`` when one is named."""
        if texture is None:
            self.p.changeVisualShape(body, link, rgbaColor=rgba)
        else:
            self.p.changeVisualShape(body, link, textureUniqueId=texture, rgbaColor=rgba)

    # -- sensing -----------------------------------------------------------
    def ray(self, start: Sequence[float], end: Sequence[float]) -> tuple:
        """The first hit on the segment ``start`` -> ``end`` (m): (body id or -1, link, hit
        fraction, position, normal), pybullet's ``rayTest`` row."""
        return self.p.rayTest(start, end)[0]

    def rays(self, starts: Sequence[Sequence[float]], ends: Sequence[Sequence[float]]) -> list[tuple]:
        """:meth:`ray` for many segments at once (``rayTestBatch``)."""
        return self.p.rayTestBatch(starts, ends)

    def contacts(self, body: int, other: int | None = None, link: int | None = None) -> list[tuple]:
        """pybullet contact points of ``body`` (its ``link`` only, when given) with ``other`` (any, when None).

        Row fields: 7 normal on ``other``, 8 penetration depth (m, negative inside), 9 normal force (N).
        """
        kwargs: dict[str, int] = {"bodyA": body}
        if other is not None:
            kwargs["bodyB"] = other
        if link is not None:
            kwargs["linkIndexA"] = link
        return self.p.getContactPoints(**kwargs)

    def step(self, n: int = 1) -> None:
        """Advance physics by ``n`` fixed timesteps."""
        step = self.p.stepSimulation
        for _ in range(n):
            step()

    def save_state(self) -> int:
        """Snapshot the world in memory; returns an id for :meth:`restore_state`."""
        return self.p.saveState()

    def restore_state(self, state_id: int) -> None:
        self.p.restoreState(stateId=state_id)

    # -- lifetime ----------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.client >= 0 and p.isConnected(physicsClientId=self.client)

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        if self.client >= 0:
            try:
                if p.isConnected(physicsClientId=self.client):
                    p.disconnect(physicsClientId=self.client)
            finally:
                self.client = -1
                self.bodies.clear()

    def __enter__(self) -> BulletSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn pybullet down
            pass
