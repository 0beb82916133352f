"""Scripted policies for the tabletop envs (Grasp, Push, Poke, Look).

Interface: ``Policy(action_space)``, ``reset(seed)``, ``policy(obs, info) -> action``.
All randomness comes from the policy's own ``np.random.Generator`` (seeded in
``reset``), never from the env or the action space, so a collector can replay
episode i from its seed on any worker.

- ``UniformPolicy``: uniform random actions (the self-supervised default; a
  random grasp on the table succeeds a few % of the time).
- ``InformedPolicy``: aims at objects using ground truth the env exposes in
  ``info`` (``object_pixels``: each object's top centre in pixels; ``mask``:
  object index per pixel), so that positives are not rare: grasps near an
  object's top centre at a random angle, pokes on the object's pixels, pushes
  that start just outside an object and go through its centre, and orbit views
  that visit every azimuth bin in a random order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

GRASP_JITTER = 2.5  # px std of the grasp point around an object's top centre


class UniformPolicy:
    """Uniform random actions from a Box / Discrete / MultiDiscrete action space."""

    def __init__(self, action_space: spaces.Space) -> None:
        if not isinstance(action_space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete)):
            raise ValueError(f"action_space={action_space}; expected a Box, Discrete or MultiDiscrete space")
        self.action_space = action_space
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            return int(space.start + self.rng.integers(space.n))
        if isinstance(space, spaces.MultiDiscrete):
            return self.rng.integers(space.nvec).astype(space.dtype)
        return self.rng.uniform(space.low, space.high).astype(space.dtype)


class InformedPolicy(UniformPolicy):
    """Aims at objects (see the module docstring); falls back to uniform actions when none is visible."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._order: list[int] = []

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:
        space = self.action_space
        if isinstance(space, spaces.Discrete):  # Look: every azimuth bin once, random order
            if not getattr(self, "_order", None) or info.get("view_index", 0) == 0:
                self._order = [int(k) for k in self.rng.permutation(np.arange(1, space.n))]
            return self._order.pop(0) if self._order else super().__call__(obs, info)
        centres = np.asarray(info.get("object_pixels", np.zeros((0, 2))), dtype=np.float64).reshape(-1, 2)
        centres = centres[: int(info.get("n_objects", len(centres)))]  # rows past n_objects are padding
        mask = info.get("mask")
        if len(centres) == 0 or mask is None:
            return super().__call__(obs, info)
        size = mask.shape[1]
        j = int(self.rng.integers(len(centres)))
        if isinstance(space, spaces.MultiDiscrete) and len(space.nvec) == 3:  # Grasp
            uv = np.clip(np.round(centres[j] + self.rng.normal(0.0, GRASP_JITTER, 2)), 0, size - 1)
            return np.array([uv[0], uv[1], self.rng.integers(space.nvec[2])], dtype=space.dtype)
        if isinstance(space, spaces.MultiDiscrete) and len(space.nvec) == 2:  # Poke: a pixel of the object
            vs, us = np.nonzero(mask == j)
            if len(us) == 0:
                uv = np.clip(np.round(centres[j]), 0, size - 1)
                return uv.astype(space.dtype)
            i = int(self.rng.integers(len(us)))
            return np.array([us[i], vs[i]], dtype=space.dtype)
        if isinstance(space, spaces.Box) and space.shape == (4,):  # Push: start outside, through the centre
            vs, us = np.nonzero(mask == j)
            radius = 0.5 * max(np.ptp(us), np.ptp(vs)) + 4.0 if len(us) else 10.0  # px
            angle = float(self.rng.uniform(-math.pi, math.pi))
            direction = np.array([math.cos(angle), -math.sin(angle)])  # image: u right, v down
            start = centres[j] - radius * direction
            uv = np.clip(start / ((size - 1) / 2.0) - 1.0, -1.0, 1.0)
            return np.array([uv[0], uv[1], angle / math.pi, self.rng.uniform(-0.5, 1.0)], dtype=np.float32)
        return super().__call__(obs, info)


RandomPolicy = UniformPolicy

__all__ = ["InformedPolicy", "RandomPolicy", "UniformPolicy"]
