"""The contract every registered environment keeps (DESIGN.md, "Environment")."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import embodied
from embodied.envs import ENV_IDS

ROLLOUT = """
import hashlib, json, sys
import gymnasium as gym, numpy as np
import embodied
env = gym.make(sys.argv[1])
env.action_space.seed(int(sys.argv[2]))
h = hashlib.sha256()
obs, _ = env.reset(seed=int(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    for k in sorted(obs):
        h.update(np.ascontiguousarray(obs[k]).tobytes())
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    h.update(np.float64(r).tobytes())
    if term or trunc:
        obs, _ = env.reset()
print(h.hexdigest())
"""


def rollout_hash(env: gym.Env, seed: int, steps: int) -> str:
    """Same hashing as ROLLOUT, in this process."""
    env.action_space.seed(seed)
    h = hashlib.sha256()
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        for k in sorted(obs):
            h.update(np.ascontiguousarray(obs[k]).tobytes())
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        h.update(np.float64(r).tobytes())
        if term or trunc:
            obs, _ = env.reset()
    return h.hexdigest()


def assert_info_storable(env_id: str, info: dict, prefix: str = "") -> None:
    """Every info value is one the dataset writer stores: a scalar that JSON keeps as it is
    (finite), a numeric or bool array, a list of str, or a dict of those."""
    for key, value in info.items():
        where = f"{env_id}: info[{prefix + key!r}] = {value!r}"
        if isinstance(value, dict):
            assert_info_storable(env_id, value, prefix + key + "/")
        elif isinstance(value, np.ndarray):
            assert value.dtype.kind in "biuf", f"{where}: an array of dtype {value.dtype}"
        elif isinstance(value, list):
            assert all(isinstance(v, str) for v in value), f"{where}: a list, not of str"
        else:
            assert isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)), (
                f"{where}: a {type(value)}"
            )
            plain = value.item() if isinstance(value, np.generic) else value
            try:
                text = json.dumps(plain, allow_nan=False)
            except ValueError:
                raise AssertionError(f"{where}: not finite") from None
            assert json.loads(text) == plain and type(json.loads(text)) is type(plain), f"{where}: changes through JSON"


def test_info_check_can_fail():
    assert_info_storable("ok", {"a": 1, "b": np.float32(0.5), "c": ["x"], "d": np.zeros(2), "e": {"f": "g"}})
    for bad in ({"a": float("nan")}, {"a": object()}, {"a": [1, 2]}, {"a": np.array(["x"])}, {"a": {"b": None}}):
        with pytest.raises(AssertionError):
            assert_info_storable("bad", bad)


def test_ids_registered_on_import():
    assert "embodied/EgoMotion-v0" in ENV_IDS
    for env_id in ENV_IDS:
        assert env_id in gym.registry
    assert embodied.__version__


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_checkers_pass(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # any checker warning fails the test
        check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_replay_is_bit_identical_across_processes(env_id):
    out = [
        subprocess.run([sys.executable, "-c", ROLLOUT, env_id, "5", "6"], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
        for _ in range(2)
    ]
    assert out[0] == out[1]
    env = gym.make(env_id)
    assert rollout_hash(env, 5, 6) == out[0]
    assert rollout_hash(env, 6, 6) != out[0], "a different seed must give a different rollout"
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_episode_depends_only_on_its_seed(env_id):
    """The collector runs episode i from seed S+i on any worker, after any history."""
    used = gym.make(env_id)
    rollout_hash(used, 1, 4)
    rollout_hash(used, 2, 3)
    fresh = gym.make(env_id)
    assert rollout_hash(used, 11, 5) == rollout_hash(fresh, 11, 5)
    used.close()
    fresh.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_are_typed_finite_and_fresh(env_id):
    env = gym.make(env_id)
    space = env.observation_space
    obs, info = env.reset(seed=0)
    env.action_space.seed(0)
    previous = None
    for _ in range(4):
        assert_info_storable(env_id, info)
        assert space.contains(obs), f"{env_id}: observation outside its space"
        for key, value in obs.items():
            assert value.dtype == space[key].dtype
            if value.dtype.kind == "f":
                assert np.all(np.isfinite(value)), f"{env_id}: non-finite {key}"
        if previous is not None:
            for key in obs:
                assert not np.shares_memory(obs[key], previous[key]), f"{env_id}: {key} shares memory between steps"
        previous = obs
        snapshot = {k: v.copy() for k, v in obs.items()}
        obs, _, term, trunc, info = env.step(env.action_space.sample())
        for key in snapshot:  # stepping must not write into arrays already handed out
            np.testing.assert_array_equal(previous[key], snapshot[key])
        if term or trunc:
            assert_info_storable(env_id, info)
            obs, info = env.reset()
    assert_info_storable(env_id, info)
    env.close()


# Vector envs (Async, Sync, SB3 SubprocVecEnv) and their stacked infos: tests/envs/test_vector_envs.py


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_record_video(env_id, tmp_path):
    env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=4)
    env = gym.wrappers.RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda i: True, disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        done = term or trunc
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 1000
