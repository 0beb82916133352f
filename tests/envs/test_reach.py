import gymnasium as gym
import numpy as np
import pytest

from embodied.envs import make, resolve
from embodied.envs.reach import ReachEnv
from embodied.sim import objects


@pytest.fixture
def env():
    e = ReachEnv()
    yield e
    e.close()


def test_preset_registers_reach():
    preset = resolve("reach")
    assert preset.id == "embodied/Reach-v0"
    e = make("reach")
    assert e.spec.max_episode_steps == 50
    assert e.observation_space["rgb"].shape == (64, 64, 3)
    e.close()


def test_oracle_reaches_and_terminates(env):
    obs, info = env.reset(seed=3)
    assert not info["success"]
    for _ in range(50):
        delta = (info["target"] - info["fingertip"]) / env.step_size
        action = np.clip(delta, -1.0, 1.0).astype(np.float32)
        obs, reward, term, trunc, info = env.step(action)
        assert np.allclose(obs["proprio"][2:], action)
        np.testing.assert_allclose(obs["proprio"][:2] * 0.22, info["fingertip"], atol=1e-6)
        if term:
            break
    assert term and info["success"] and info["distance"] <= env.success_radius
    assert reward > 0  # the success bonus outweighs the distance penalty at <= 4 cm


def test_observation_shows_fingertip_and_target(env):
    obs, info = env.reset(seed=1)
    rgb = obs["rgb"].astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    assert red.sum() >= 3, "the fingertip must be visible"
    moved, *_ = env.step(np.array([1.0, 0.0], np.float32))
    assert not np.array_equal(moved["rgb"], obs["rgb"]), "moving the fingertip must change the image"
    np.testing.assert_allclose(obs["proprio"], [*(info["fingertip"] / 0.22), 0.0, 0.0], atol=1e-6)
    assert env.observation_space["proprio"].shape == (4,)  # the hand and the last action: no target


def test_heldout_split_uses_heldout_instances():
    e = ReachEnv(split="heldout")
    held = {s.uid for s in objects.instances("heldout")}
    for seed in range(5):
        _, info = e.reset(seed=seed)
        assert info["target_instance"] in held
    e.close()


@pytest.mark.parametrize("bad", [np.array([np.nan, 0.0]), np.array([2.0, 0.0]), np.zeros(3), "left"])
def test_bad_actions_are_value_errors(env, bad):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action="):
        env.step(bad)


@pytest.mark.parametrize(
    "kwargs", [{"size": 0}, {"split": "test"}, {"step_size": -1.0}, {"categories": ["spoon"]}, {"render_mode": "human"}]
)
def test_bad_arguments_are_value_errors(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"^{name}="):  # one line naming the bad value
        ReachEnv(**kwargs)


def test_render_frame():
    e = gym.make("embodied/Reach-v0", render_mode="rgb_array", render_size=96)
    e.reset(seed=0)
    frame = e.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    e.close()
