"""A persistent random walk for the ego-motion env: how a person films a room.

Keeps doing one thing for a while (mostly driving forward, sometimes turning or
glancing up / down), turns away before it hits something, and never reads
anything a learner could not also have, except the env's range finder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

FORWARD, LEFT, RIGHT, UP, DOWN = range(5)


class ExplorePolicy:
    """Persistent, collision-avoiding random exploration.

    Args:
        action_space: the env's (Discrete(5) or Box(2,)) action space.
        clearance: metres of free space ahead below which it turns away.
        mean_run: mean number of steps one chosen motion persists.
    """

    def __init__(self, action_space: spaces.Space, clearance: float = 0.7, mean_run: float = 6.0) -> None:
        if not (isinstance(action_space, spaces.Discrete) and action_space.n >= 5) and not (
            isinstance(action_space, spaces.Box) and action_space.shape == (2,)
        ):
            raise ValueError(f"action_space={action_space}; expected Discrete(5) or Box(shape=(2,))")
        self.action_space = action_space
        self.clearance = clearance
        self.mean_run = mean_run
        self.rng = np.random.default_rng()
        self._current, self._left, self._pitch, self._escape = FORWARD, 0, 0, 0

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._current, self._left, self._pitch, self._escape = FORWARD, 0, 0, 0

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:
        ranges = np.asarray(info["range"], dtype=np.float64)
        right, centre, left = ranges
        stuck = bool(info.get("collided", False)) and self._current == FORWARD and self._escape == 0
        if min(right, centre, left) < self.clearance or stuck:
            if self._escape == 0:  # commit to one side, the more open one, until the way ahead is clear
                self._escape = LEFT if left >= right else RIGHT
                self._left = 0
            action = self._escape
        else:
            self._escape = 0
            if self._left <= 0:
                self._current = self._draw()
                self._left = 1 + int(self.rng.geometric(1.0 / self.mean_run))
            self._left -= 1
            action = self._current
            if action in (UP, DOWN):  # glance, then come back towards level
                limit = 2
                if (action == UP and self._pitch >= limit) or (action == DOWN and self._pitch <= -limit):
                    action = DOWN if action == UP else UP
            self._pitch += {UP: 1, DOWN: -1}.get(action, 0)
        return self._to_space(action)

    def _draw(self) -> int:
        return int(self.rng.choice(5, p=[0.6, 0.15, 0.15, 0.05, 0.05]))

    def _to_space(self, action: int) -> Any:
        if isinstance(self.action_space, spaces.Discrete):
            return int(action)
        # Continuous: smooth speed / yaw-rate commands with a little jitter.
        speed = 0.8 + self.rng.normal(0.0, 0.1) if action == FORWARD else 0.0  # turn on the spot
        turn = {LEFT: 0.8, RIGHT: -0.8}.get(action, 0.0) + self.rng.normal(0.0, 0.1)
        return np.clip(np.array([speed, turn]), -1.0, 1.0).astype(np.float32)
