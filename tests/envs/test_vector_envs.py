"""Every registered env in vector envs: AsyncVectorEnv, SyncVectorEnv and SB3's SubprocVecEnv.

Gymnasium's vector info merge stacks each info key into one array shaped by the first
sub-env's value, so a value whose shape (or kind: int vs float) changes with the scene
crashes it, or silently truncates. Each id is stepped ``STEPS`` steps with ``len(SEEDS)``
sub-envs (one seed each, random actions, episodes auto-reset) in each kind of vector env:

* every info value keeps one (shape, dtype kind) per key, across seeds, steps and episodes;
* SyncVectorEnv's stacked infos hold exactly what each sub-env returned;
* AsyncVectorEnv gives the same observations, rewards and stacked infos as SyncVectorEnv;
* SB3's SubprocVecEnv steps them and its per-env infos have the same shapes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

from embodied.envs import ENV_IDS

SEEDS = (0, 1, 2, 3)
STEPS = 50
SB3_KEYS = {"terminal_observation", "TimeLimit.truncated"}  # added by SB3, not by the envs


class Recorder(gym.Wrapper):
    """Keeps the info of the last reset or step (what the vector env had to stack)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.last_info: dict[str, Any] = {}

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.last_info = info
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        out = self.env.step(action)
        self.last_info = out[4]
        return out


def signature(value: Any) -> tuple:
    """(shape, dtype kind) of an info value; the kind of a list is its elements'."""
    a = np.asarray(value)
    return a.shape, a.dtype.kind


def check_signatures(seen: dict[str, tuple], info: dict[str, Any], where: str) -> None:
    for key, value in info.items():
        if key in SB3_KEYS:
            continue
        sig = signature(value)
        assert seen.setdefault(key, sig) == sig, (
            f"{where}: info[{key!r}] is {sig}, earlier {seen[key]}: its shape or kind depends on the scene"
        )


def same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and (np.array_equal(a, b, equal_nan=a.dtype.kind == "f") or bool(np.all(a == b)))


def check_stacked(stacked: dict[str, Any], subs: list[dict[str, Any]], where: str) -> None:
    """The vector env's merged infos hold each sub-env's value, and masks say who had the key."""
    n = len(subs)
    for key, value in stacked.items():
        if key.startswith("_"):
            continue
        assert isinstance(value, np.ndarray) and value.shape[0] == n, f"{where}: stacked {key!r} is not ({n}, ...)"
        for i in range(n):
            assert bool(stacked[f"_{key}"][i]) == (key in subs[i]), f"{where}: mask of {key!r} wrong for env {i}"
    for i, info in enumerate(subs):
        for key, value in info.items():
            assert key in stacked, f"{where}: info {key!r} of env {i} missing from the stacked infos"
            assert same(stacked[key][i], value), f"{where}: stacked {key!r}[{i}] differs from what env {i} returned"


def equal_infos(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if sorted(a) != sorted(b):
        return False
    return all(
        len(a[k]) == len(b[k]) and all(same(x, y) for x, y in zip(a[k], b[k], strict=True))
        if isinstance(a[k], np.ndarray) and a[k].dtype == object
        else same(a[k], b[k])
        for k in a
    )


def make_fns(env_id: str) -> list:
    return [lambda: Recorder(gym.make(env_id))] * len(SEEDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_envs_step_and_stack_infos(env_id):
    seen: dict[str, tuple] = {}
    rng = np.random.default_rng(0)
    sync = gym.vector.SyncVectorEnv(make_fns(env_id))
    asyn = gym.vector.AsyncVectorEnv(make_fns(env_id))
    try:
        obs_s, info_s = sync.reset(seed=list(SEEDS))
        obs_a, info_a = asyn.reset(seed=list(SEEDS))
        sync.action_space.seed(int(rng.integers(1 << 30)))
        actions = [sync.action_space.sample() for _ in range(STEPS)]
        ends = 0
        for t in range(STEPS + 1):
            where = f"{env_id} step {t}"
            subs = [e.last_info for e in sync.envs]
            for i, info in enumerate(subs):
                check_signatures(seen, info, f"{where} env {i}")
            check_stacked(info_s, subs, f"{where} (SyncVectorEnv)")
            assert all(same(obs_a[k], obs_s[k]) for k in obs_s), f"{where}: Async and Sync observations differ"
            assert equal_infos(info_a, info_s), f"{where}: Async and Sync stacked infos differ"
            if t == STEPS:
                break
            obs_s, r_s, term_s, trunc_s, info_s = sync.step(actions[t])
            obs_a, r_a, term_a, trunc_a, info_a = asyn.step(actions[t])
            assert same(r_a, r_s) and same(term_a, term_s) and same(trunc_a, trunc_s), where
            assert r_s.shape == (len(SEEDS),) and np.all(np.isfinite(r_s))
            ends += int(np.sum(term_s | trunc_s))
        assert obs_s["rgb"].shape[0] == len(SEEDS)
        assert len({obs_s["rgb"][i].tobytes() for i in range(len(SEEDS))}) > 1, "sub-envs must get different seeds"
    finally:
        sync.close()
        asyn.close()

    sb3 = SubprocVecEnv(make_fns(env_id), start_method="fork")
    try:
        sb3.seed(SEEDS[0])  # sub-env i gets seed SEEDS[0] + i
        obs = sb3.reset()
        for k in obs:
            assert obs[k].shape[0] == len(SEEDS)
        for t in range(STEPS):
            obs, rewards, dones, infos = sb3.step(np.stack([actions[t][i] for i in range(len(SEEDS))]))
            assert rewards.shape == (len(SEEDS),) and np.all(np.isfinite(rewards))
            for i, info in enumerate(infos):
                check_signatures(seen, info, f"{env_id} SubprocVecEnv step {t} env {i}")
            for i in np.flatnonzero(dones):
                assert set(infos[i]["terminal_observation"]) == set(obs)
    finally:
        sb3.close()
