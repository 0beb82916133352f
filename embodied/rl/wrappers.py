"""Gymnasium wrappers the SB3 side needs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class SuccessInfo(gym.Wrapper):
    """Copies ``info["success"]`` to ``info["is_success"]``, the key SB3's evaluation and logger read."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "success" in info:
            info["is_success"] = bool(info["success"])
        return obs, reward, terminated, truncated, info


__all__ = ["SuccessInfo"]
