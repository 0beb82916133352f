"""Privileged-state policies: the RL ceiling of a pixel task, and the probe of what its RL can learn.

A pixel policy has to find things in the image; a state policy is handed them as numbers from the
env's ``info`` (which a learner must never need). Two encoders for ``train_rl.py`` / ``compare_rl.py``:

- ``"state"``: everything the image shows, as symbols. Reach: the target's position. ReachObject:
  every object's position and category (one-hot over the env's categories) and the goal one-hot,
  so the policy still has to find which object the goal names (the binding a pixel policy needs
  on top of recognising the objects).
- ``"goal-state"``: the goal object's position only: what perfect recognition *and* binding give.

Both append the observation's ``proprio`` (the fingertip and the last action), as the pixel policy
has it. Positions are divided by the fingertip's range (0.22 m), so everything lies in [-1, 1].
Only envs whose ``info`` has ``fingertip`` and ``target`` (Reach, ReachObject) take them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from embodied.envs.reach import FINGER_RANGE

STATE_ENCODERS = ("state", "goal-state")


def state_vector(obs: dict[str, np.ndarray], info: dict[str, Any], mode: str) -> np.ndarray:
    """(D,) float32 privileged state of one step, from its Dict observation and info (see the module doc).

    ReachObject's "state": proprio (4), the objects (n, 2) / 0.22 m, their category one-hots (n, K)
    and the goal one-hot (K): D = 4 + n (2 + K) + K. "goal-state", and Reach's "state": proprio (4)
    and the target (2) / 0.22 m: D = 6.
    """
    if mode not in STATE_ENCODERS:
        raise ValueError(f"mode={mode!r}; expected one of {STATE_ENCODERS}")
    parts = [np.asarray(obs["proprio"], np.float32)]
    if mode == "goal-state" or "objects" not in info:
        parts.append(np.asarray(info["target"], np.float32) / FINGER_RANGE)
    else:
        goal = np.asarray(obs["goal"], np.float32)
        onehots = np.eye(len(goal), dtype=np.float32)[np.asarray(info["category_index"])]
        parts += [np.asarray(info["objects"], np.float32).ravel() / FINGER_RANGE, onehots.ravel(), goal]
    return np.concatenate(parts).astype(np.float32)


class PrivilegedState(gym.Wrapper):
    """The env's Dict observation replaced by :func:`state_vector` (a flat Box in [-1, 1])."""

    def __init__(self, env: gym.Env, mode: str) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or "proprio" not in space.spaces:
            raise ValueError(f"encoder {mode!r} needs a Dict observation with 'proprio'; got {space}")
        self.mode = mode
        dim = spaces.flatdim(space["proprio"]) + 2
        if mode == "state" and "goal" in space.spaces:
            n, k = int(env.unwrapped.n_objects), spaces.flatdim(space["goal"])  # type: ignore[attr-defined]
            dim += n * (2 + k) + k - 2
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(dim,), dtype=np.float32)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        return self._vector(obs, info), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._vector(obs, info), reward, terminated, truncated, info

    def _vector(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        try:
            return state_vector(obs, info, self.mode)
        except KeyError as e:
            raise ValueError(
                f"encoder {self.mode!r} needs an env whose info has fingertip and target (reach, reach_object); "
                f"this one has no {e}"
            ) from None


__all__ = ["STATE_ENCODERS", "PrivilegedState", "state_vector"]
