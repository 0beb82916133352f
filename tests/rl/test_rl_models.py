"""SB3 models with our extractor: PPO and SAC learn, save, reload without their checkpoint, and act."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from embodied.rl import load_model, load_sb3_policy, policy_kwargs

ROOT = Path(__file__).resolve().parents[2]


def _weights(model):
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


def _changed(before, model):
    """Names of the policy tensors that learning changed."""
    return {k for k, v in model.policy.state_dict().items() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("kind", ["random", "nature", "checkpoint"])
def test_ppo_smoke_run_each_encoder(kind, ckpt, ppo):
    """256 steps are 2 rollouts of 2 x 64: the policy and value heads are updated (a frozen trunk is not)."""
    model, venv = ppo(ckpt if kind == "checkpoint" else kind)
    before = _weights(model)
    model.learn(256)
    assert model.num_timesteps == 256
    changed = _changed(before, model)
    assert any(k.startswith("action_net.") for k in changed) and any(k.startswith("value_net.") for k in changed)
    trunk_changed = any(k.startswith("features_extractor.cnn.") for k in changed)
    assert trunk_changed == (kind == "nature")  # NatureCNN always trains; trunks are frozen by default
    venv.close()


@pytest.mark.parametrize("features", ["embed", "keypoints"])
def test_saved_model_reloads_without_its_checkpoint_and_acts(features, tmp_path, fake_checkpoint, ppo):
    path = fake_checkpoint(tmp_path / "checkpoint.pt")
    model, venv = ppo(str(path), features=features)
    model.learn(128)
    model.save(tmp_path / "model.zip")
    venv.close()
    path.unlink()  # the trunk's weights travel inside model.zip
    env = gym.make("embodied/Reach-v0")
    obs, info = env.reset(seed=4)
    policy = load_sb3_policy(tmp_path / "model.zip")
    action = policy(obs, info)
    assert env.action_space.contains(np.clip(action, -1, 1).astype(np.float32)) and action.shape == (2,)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, expected, atol=1e-6)
    for _ in range(3):
        obs, _, term, trunc, info = env.step(np.clip(policy(obs, info), -1, 1))
    env.close()


def test_render_cli_rolls_out_a_trained_model(tmp_path, ppo):
    import imageio.v2 as imageio

    model, venv = ppo("random", features="keypoints")
    model.learn(64)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "model.zip")
    venv.close()
    out = tmp_path / "reach.gif"
    cmd = [sys.executable, str(ROOT / "scripts" / "render.py"), "--env", "reach", "--model", str(tmp_path / "run")]
    subprocess.run([*cmd, "--steps", "5", "--size", "64", "--out", str(out)], check=True, capture_output=True)
    frames = imageio.mimread(out)
    assert len(frames) >= 6 and frames[0].shape[1] >= 64  # the reset frame and one per step (+ resets)


def test_sac_smoke_and_reload(tmp_path):
    venv = make_vec_env("embodied/Reach-v0", n_envs=1, seed=0)
    model = SAC(
        "MultiInputPolicy",
        venv,
        buffer_size=500,
        batch_size=32,
        learning_starts=32,
        seed=0,
        device="cpu",
        policy_kwargs=policy_kwargs("nature", nature_dim=64),
    )
    model.learn(64)
    model.save(tmp_path / "sac.zip")
    obs = venv.reset()
    venv.close()
    loaded = load_model(tmp_path / "sac.zip")
    assert isinstance(loaded, SAC)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_norm_reward_scales_the_learners_rewards_only(tmp_path):
    """--norm-reward: the training envs give reward / sqrt(running return variance + eps) (SB3 VecNormalize,
    observations untouched), the raw reward stays readable, the evaluation env's rewards are raw, and a
    short run (whose evaluation syncs the statistics) completes."""
    from stable_baselines3.common.vec_env import VecNormalize

    from embodied.rl import RLConfig, train
    from embodied.rl.runner import make_envs

    cfg = RLConfig(env="reach", n_envs=2, vec="dummy", norm_reward=True, out=tmp_path)
    venv, eval_env = make_envs(cfg, "embodied/Reach-v0", {}, {}, tmp_path)
    try:
        assert isinstance(venv, VecNormalize) and not venv.norm_obs and venv.norm_reward
        assert isinstance(eval_env.venv, VecNormalize) and not eval_env.venv.norm_reward
        venv.seed(0)
        venv.reset()
        for _ in range(30):
            _, scaled, _, _ = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
            raw = venv.get_original_reward()
            want = np.clip(raw / np.sqrt(venv.ret_rms.var + venv.epsilon), -venv.clip_reward, venv.clip_reward)
            np.testing.assert_allclose(scaled, want, rtol=1e-5)
        assert venv.ret_rms.count > 30 and np.abs(raw).max() > 0
    finally:
        venv.close()
        eval_env.close()
    run = RLConfig(env="reach", steps=128, n_envs=2, vec="dummy", n_steps=32, batch_size=32, n_epochs=1,
                   eval_episodes=2, norm_reward=True, quiet=True, out=tmp_path / "run")  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert train(run)["steps"] >= 128
    finally:
        torch.set_num_threads(threads)
