"""Turning one Gymnasium episode into arrays.

An episode of T steps is stored as (robomimic-like, one HDF5 group per episode):

    obs/<key>         (T+1, ...)  observations, reset observation first
    actions           (T, ...)
    rewards           (T,) float32
    terminated, truncated (T,) bool
    infos/<key>       (T, ...)    info after each step; ragged values as variable-length rows,
                                  strings as UTF-8; nested dicts flattened with "/"
    reset_info/<key>  (...)       the info returned by reset()
    attrs             seed, index, length, return, invalid, and outcome/<key>: the scalar
                      entries of the last info (success, instance, category, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def flatten(info: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> one level with "a/b" keys; values untouched."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        elif not name.startswith("_"):  # gymnasium's vector-env masks ("_key") are not data
            out[name] = value
    return out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating, np.str_))


@dataclass
class Episode:
    """An in-memory episode, filled step by step by :class:`EpisodeRecorder`."""

    seed: int
    index: int
    obs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    reset_info: dict[str, Any] = field(default_factory=dict)
    invalid: bool = False

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def frames(self) -> int:
        """Observations stored (T + 1)."""
        return self.length + 1

    def outcome(self) -> dict[str, Any]:
        """Scalar entries of the last info (or of the reset info for an empty episode)."""
        last = flatten(self.infos[-1] if self.infos else self.reset_info)
        return {k: v for k, v in last.items() if _is_scalar(v)}


class EpisodeRecorder:
    """Collects one episode: ``start(obs, info)``, then ``add(action, obs, reward, term, trunc, info)``."""

    def __init__(self, seed: int, index: int) -> None:
        self.episode = Episode(seed=seed, index=index)

    def start(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        for key, value in obs.items():
            self.episode.obs[key] = [np.array(value, copy=True)]
        self.episode.reset_info = flatten(info)

    def add(
        self,
        action: Any,
        obs: dict[str, np.ndarray],
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        ep = self.episode
        ep.actions.append(np.array(action, copy=True))
        for key, value in obs.items():
            ep.obs[key].append(np.array(value, copy=True))
        ep.rewards.append(float(reward))
        ep.terminated.append(bool(terminated))
        ep.truncated.append(bool(truncated))
        ep.infos.append(flatten(info))
        if info.get("invalid", False):
            ep.invalid = True


def stack_column(values: list[Any]) -> tuple[str, np.ndarray | list]:
    """How to store a column of per-step values.

    Returns ("array", (T, ...) array) when every value has the same shape and a
    numeric / bool dtype, ("str", list[str]) for strings, ("ragged", list of 1-d
    arrays) for numeric sequences of varying length, ("strlist", list[list[str]])
    for lists of strings, and ("skip", []) for anything else.
    """
    if all(isinstance(v, (str, np.str_)) for v in values):
        return "str", [str(v) for v in values]
    if all(isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v) for v in values) and any(values):
        return "strlist", [list(v) for v in values]
    try:
        arrays = [np.asarray(v) for v in values]
    except (ValueError, TypeError):
        return "skip", []
    if any(a.dtype.kind not in "biuf" for a in arrays):
        return "skip", []
    if len({a.shape for a in arrays}) == 1:
        return "array", np.stack(arrays)
    if all(a.ndim == 1 for a in arrays):
        dtype = np.result_type(*arrays)
        return "ragged", [a.astype(dtype) for a in arrays]
    return "skip", []
