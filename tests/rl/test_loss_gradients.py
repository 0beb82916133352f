"""PPO's loss-term gradients on the image pathway: scale with vf_coef, leave the run as it was."""

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from embodied.rl import SuccessInfo, policy_kwargs
from embodied.rl.callbacks import LossGradients


def _run(ckpt, vf_coef=0.5, callback=True, finetune=True):
    venv = make_vec_env("embodied/Reach-v0", n_envs=2, seed=0, wrapper_class=SuccessInfo)
    model = PPO(
        "MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu", vf_coef=vf_coef,
        policy_kwargs=policy_kwargs(ckpt, finetune=finetune, features="keypoints", keypoints=4),
    )  # fmt: skip
    cb = LossGradients(n=32)
    model.learn(64, callback=cb if callback else None)
    venv.close()
    return model, cb


def test_value_term_scales_with_vf_coef_and_policy_term_does_not(ckpt):
    _, a = _run(ckpt, vf_coef=0.5)
    _, b = _run(ckpt, vf_coef=1.0)
    # the same first rollout (same seed), so only vf_coef differs in the logged gradients
    assert b.last["value_trunk"] == pytest.approx(2 * a.last["value_trunk"], rel=1e-5)
    assert b.last["value_head"] == pytest.approx(2 * a.last["value_head"], rel=1e-5)
    assert b.last["policy_trunk"] == pytest.approx(a.last["policy_trunk"], rel=1e-5)
    assert a.last["policy_trunk"] > 0 and 0 < a.last["value_share_trunk"] < 1


def test_a_rollout_shorter_than_the_slice_is_read_whole(ckpt):
    venv = make_vec_env("embodied/Reach-v0", n_envs=2, seed=0, wrapper_class=SuccessInfo)
    model = PPO(
        "MultiInputPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu",
        policy_kwargs=policy_kwargs(ckpt, features="keypoints", keypoints=4),
    )  # fmt: skip
    cb = LossGradients(n=128)  # 16 samples per rollout
    model.learn(16, callback=cb)
    venv.close()
    assert cb.last["value_head"] > 0


def test_frozen_trunk_logs_only_the_head(ckpt):
    _, cb = _run(ckpt, finetune=False)
    assert "value_trunk" not in cb.last and cb.last["value_head"] > 0


def test_logging_leaves_the_run_bit_identical(ckpt):
    with_cb, _ = _run(ckpt)
    without, _ = _run(ckpt, callback=False)
    for (k, a), b in zip(with_cb.policy.state_dict().items(), without.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
