"""Scripted policies by name, for the CLIs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class RandomPolicy:
    """Uniform random actions from the env's action space (the self-supervised default)."""

    def __init__(self, action_space: gym.Space) -> None:
        self.action_space = action_space

    def reset(self, seed: int | None = None) -> None:
        self.action_space.seed(seed)

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:
        return self.action_space.sample()


NAMES = ("explore", "informed", "random")


def make_policy(name: str, env: gym.Env) -> Any:
    """A policy for ``env`` by name: "random", "explore" (ego-motion) or "informed" (tabletop)."""
    from embodied.collect.explore import ExplorePolicy

    factories: dict[str, Any] = {"random": RandomPolicy, "explore": ExplorePolicy}
    try:
        from embodied.collect import tabletop_policies

        factories["informed"] = tabletop_policies.InformedPolicy
    except (ImportError, AttributeError):
        pass
    if name not in factories:
        raise ValueError(f"unknown policy {name!r}; expected one of {sorted(factories)}")
    return factories[name](env.action_space)


__all__ = ["NAMES", "RandomPolicy", "make_policy"]
