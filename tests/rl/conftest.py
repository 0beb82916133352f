"""Shared pieces of the RL tests: a small fake checkpoint, a Dict observation space, a tiny PPO on Reach."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import embodied  # noqa: F401  (registers the ids)
from embodied.nn.trunk import Trunk, TrunkConfig
from embodied.rl import SuccessInfo, policy_kwargs

try:  # where the checkpoint format lives (embodied.checkpoint; embodied.train before it)
    from embodied.checkpoint import CHECKPOINT_FORMAT
except ImportError:
    from embodied.train import CHECKPOINT_FORMAT

SMALL = {"width": 8, "depth": 3, "embed_dim": 32, "norm": "batch"}


def write_checkpoint(path, image_size=64):
    """A checkpoint as scripts/train.py writes it, with a small random trunk."""
    trunk = {**SMALL, "image_size": image_size}
    torch.manual_seed(1)
    net = Trunk(TrunkConfig.from_dict(trunk))
    state = {f"trunk.{k}": v for k, v in net.state_dict().items()}
    ckpt = {"format": CHECKPOINT_FORMAT, "preset": {"name": "fake", "trunk": trunk}, "step": 3, "model": state}
    torch.save(ckpt, path)
    return path


def make_dict_space(size=64, channels_first=True):
    shape = (3, size, size) if channels_first else (size, size, 3)
    return spaces.Dict({"rgb": spaces.Box(0, 255, shape, np.uint8), "proprio": spaces.Box(-1.0, 1.0, (2,), np.float32)})


def make_ppo(encoder, finetune=False, n_envs=2, features="embed"):
    venv = make_vec_env("embodied/Reach-v0", n_envs=n_envs, seed=0, wrapper_class=SuccessInfo)
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=policy_kwargs(encoder, finetune=finetune, features=features),
    )
    return model, venv


@pytest.fixture
def fake_checkpoint():
    """``fake_checkpoint(path, image_size=64) -> path``."""
    return write_checkpoint


@pytest.fixture
def dict_space():
    """``dict_space(size=64, channels_first=True)``: rgb plus a 2-d proprio Box."""
    return make_dict_space


@pytest.fixture
def ppo():
    """``ppo(encoder, finetune=False, n_envs=2, features="embed") -> (model, venv)``: a tiny PPO on Reach."""
    return make_ppo


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"))
