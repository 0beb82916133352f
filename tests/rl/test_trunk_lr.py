"""A fine-tuned trunk's own learning rate: ScaledAdam against hand-computed Adam steps, through SB3."""

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

from embodied.rl import SuccessInfo, policy_kwargs
from embodied.rl.config import RLConfig
from embodied.rl.models import config_policy_kwargs, load_model
from embodied.rl.optim import ScaledAdam, set_lr_scale


def test_marked_parameters_step_at_their_scale_of_the_lr():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    set_lr_scale([b], 0.1)
    opt = ScaledAdam([a, b], lr=0.01)
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 0.1]
    for g in opt.param_groups:  # what SB3's _update_learning_rate does before every update
        g["lr"] = 0.02
    grad = torch.tensor([1.0, -2.0, 0.5])
    a.grad, b.grad = grad.clone(), grad.clone()
    opt.step()
    # Adam's first step is lr * g / (|g| + eps) (bias corrections cancel): -lr * sign(g)
    np.testing.assert_allclose(a.detach(), -0.02 * grad.sign(), rtol=1e-6)
    np.testing.assert_allclose(b.detach(), -0.002 * grad.sign(), rtol=1e-6)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.02]  # SB3's lr stays what SB3 set


def test_bad_scale_is_a_clear_error(ckpt):
    for bad in (0, -1.0, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="trunk_lr_scale=.*expected a finite number > 0"):
            policy_kwargs(ckpt, finetune=True, trunk_lr_scale=bad)


def _reach_ppo(ckpt, scale):
    cfg = RLConfig(encoder=ckpt, finetune=True, trunk_lr_scale=scale, features="keypoints", keypoints=4)
    venv = make_vec_env("embodied/Reach-v0", n_envs=2, seed=0, wrapper_class=SuccessInfo)
    pk = config_policy_kwargs(cfg)
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu", policy_kwargs=pk)
    return model, venv


def test_ppo_fine_tunes_the_trunk_at_its_scale_and_reloads(ckpt, tmp_path):
    model, venv = _reach_ppo(ckpt, 0.1)
    opt = model.policy.optimizer
    trunk = {id(p) for p in model.policy.features_extractor.cnn.parameters()}
    assert isinstance(opt, ScaledAdam)
    (slow,) = [g for g in opt.param_groups if g["lr_scale"] == 0.1]
    assert {id(p) for p in slow["params"]} == trunk  # the whole trunk, nothing else
    assert all(g["eps"] == 1e-5 for g in opt.param_groups)  # as SB3 gives PPO's Adam
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    model.learn(64)  # one update: 64 steps / 64 per batch, one epoch
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.policy.named_parameters()}
    lr = model.learning_rate
    for n, d in moved.items():  # one Adam step moves each weight by at most ~its lr
        assert d <= (0.1 if "features_extractor.cnn" in n else 1.0) * lr * 1.01, n
    assert max(d for n, d in moved.items() if "features_extractor.cnn" in n) > 0.05 * lr
    model.save(tmp_path / "model.zip")
    venv.close()
    loaded = load_model(tmp_path / "model.zip")
    groups = loaded.policy.optimizer.param_groups
    assert isinstance(loaded.policy.optimizer, ScaledAdam) and [g["lr_scale"] for g in groups] == [1.0, 0.1]
    compared = 0
    for old, new in zip(opt.param_groups, groups, strict=True):  # Adam's moments come back with their groups
        for p, q in zip(old["params"], new["params"], strict=True):
            if "exp_avg" in opt.state[p]:  # the trunk's fc has none: keypoints do not use it
                torch.testing.assert_close(opt.state[p]["exp_avg"], loaded.policy.optimizer.state[q]["exp_avg"])
                compared += 1
    assert compared > len(trunk) // 2


def test_scale_one_keeps_sb3s_own_adam(ckpt):
    model, venv = _reach_ppo(ckpt, 1.0)
    assert type(model.policy.optimizer) is torch.optim.Adam
    venv.close()


def test_sac_actor_and_critic_both_scale_their_trunks(ckpt):
    venv = make_vec_env("embodied/Reach-v0", n_envs=1, seed=0)
    pk = policy_kwargs(ckpt, finetune=True, trunk_lr_scale=0.25, features="keypoints", keypoints=4)
    model = SAC(
        "MultiInputPolicy", venv, buffer_size=200, learning_starts=16, batch_size=16, device="cpu", policy_kwargs=pk
    )
    for net in (model.actor, model.critic):
        trunk = {id(p) for p in net.features_extractor.cnn.parameters()}
        (slow,) = [g for g in net.optimizer.param_groups if g["lr_scale"] == 0.25]
        assert {id(p) for p in slow["params"]} == trunk
    model.learn(32)
    venv.close()


@pytest.mark.parametrize("finetune", [False, True])
def test_unshared_trunk_gives_the_critic_its_own_copy(ckpt, tmp_path, finetune):
    cfg = RLConfig(encoder=ckpt, finetune=finetune, share_trunk=False, features="keypoints", keypoints=4)
    venv = make_vec_env("embodied/Reach-v0", n_envs=2, seed=0, wrapper_class=SuccessInfo)
    model = PPO(
        "MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu",
        policy_kwargs=config_policy_kwargs(cfg),
    )  # fmt: skip
    pi, vf = model.policy.pi_features_extractor.cnn, model.policy.vf_features_extractor.cnn
    assert pi is not vf
    for a, b in zip(pi.state_dict().values(), vf.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # both start as the checkpoint's trunk
    model.learn(64)
    moved = [not torch.equal(a, b) for a, b in zip(pi.state_dict().values(), vf.state_dict().values(), strict=True)]
    assert any(moved) == finetune  # each copy follows its own loss
    model.save(tmp_path / "model.zip")
    venv.close()
    loaded = load_model(tmp_path / "model.zip")
    assert not loaded.policy.share_features_extractor
    torch.testing.assert_close(loaded.policy.vf_features_extractor.cnn.state_dict(), vf.state_dict())
