"""BulletSim: one private PyBullet physics client per environment.

Never touches PyBullet's shared default client, so any number of simulators live
in one process (vector envs, tests) without "Not connected to physics server".
"""

from __future__ import annotations

import functools
import os
import pkgutil
import shutil
import warnings
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
