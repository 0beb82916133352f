"""SB3 glue: the features extractor for every encoder kind, PPO smoke runs, save / reload, the CLIs."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

import embodied  # noqa: F401  (registers the ids)
from embodied.agents.sb3 import (
    EmbodiedExtractor,
    SpatialSoftmax,
    SuccessInfo,
    load_model,
    load_sb3_policy,
    policy_kwargs,
)
from embodied.nn.trunk import Trunk, TrunkConfig
from embodied.train import CHECKPOINT_FORMAT

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"width": 8, "depth": 3, "embed_dim": 32, "norm": "batch"}


def fake_checkpoint(path: Path, image_size: int = 64) -> Path:
    """A checkpoint as scripts/train.py writes it, with a small random trunk."""
    trunk = {**SMALL, "image_size": image_size}
    torch.manual_seed(1)
    net = Trunk(TrunkConfig.from_dict(trunk))
    state = {f"trunk.{k}": v for k, v in net.state_dict().items()}
    ckpt = {"format": CHECKPOINT_FORMAT, "preset": {"name": "fake", "trunk": trunk}, "step": 3, "model": state}
    torch.save(ckpt, path)
    return path


def dict_space(size: int = 64, channels_first: bool = True) -> spaces.Dict:
    shape = (3, size, size) if channels_first else (size, size, 3)
    return spaces.Dict({"rgb": spaces.Box(0, 255, shape, np.uint8), "proprio": spaces.Box(-1.0, 1.0, (2,), np.float32)})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(fake_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"))


@pytest.mark.parametrize("kind", ["random", "nature", "checkpoint"])
@pytest.mark.parametrize("channels_first", [True, False])
def test_extractor_gives_declared_feature_size(kind, channels_first, ckpt):
    encoder = ckpt if kind == "checkpoint" else kind
    kwargs = policy_kwargs(encoder)["features_extractor_kwargs"]
    ext = EmbodiedExtractor(dict_space(channels_first=channels_first), **kwargs)
    expected = {"random": 128, "nature": 512, "checkpoint": 32}[kind] + kwargs["proprio_dim"]
    assert ext.features_dim == expected
    rgb = torch.rand((5, 3, 64, 64) if channels_first else (5, 64, 64, 3))
    out = ext({"rgb": rgb, "proprio": torch.zeros(5, 2)})
    assert out.shape == (5, expected) and torch.isfinite(out).all()


def test_extractor_without_other_keys(ckpt):
    space = spaces.Dict({"rgb": spaces.Box(0, 255, (3, 64, 64), np.uint8)})
    ext = EmbodiedExtractor(space, encoder=ckpt)
    assert ext.features_dim == 32
    assert ext({"rgb": torch.rand(2, 3, 64, 64)}).shape == (2, 32)


def test_spatial_softmax_finds_the_hot_cell():
    """One sharp peak per map: the keypoint is that cell's coordinate on the [-1, 1] grid."""
    head = SpatialSoftmax(2, keypoints=2)
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        head.proj.bias.zero_()
    fmap = torch.zeros(1, 2, 5, 9)
    fmap[0, 0, 1, 6] = 50.0  # row 1 of 5 -> y = -0.5; column 6 of 9 -> x = 0.5
    fmap[0, 1, 4, 0] = 50.0  # y = 1, x = -1
    torch.testing.assert_close(head(fmap), torch.tensor([[0.5, -1.0, -0.5, 1.0]]), atol=1e-4, rtol=0)
    flat = head(torch.zeros(1, 2, 5, 9))  # no evidence anywhere: the centre
    torch.testing.assert_close(flat, torch.zeros(1, 4), atol=1e-6, rtol=0)


@pytest.mark.parametrize("finetune", [False, True])
def test_keypoint_features_train_even_on_a_frozen_trunk(finetune, ckpt):
    kwargs = policy_kwargs(ckpt, features="keypoints", keypoints=6, finetune=finetune)["features_extractor_kwargs"]
    ext = EmbodiedExtractor(dict_space(), **kwargs)
    assert ext.features_dim == 12 + 64
    out = ext({"rgb": torch.rand(3, 3, 64, 64), "proprio": torch.zeros(3, 2)})
    assert out.shape == (3, 76) and out[:, :12].abs().max() <= 1.0
    out.square().sum().backward()
    assert ext.keypoints.proj.weight.grad is not None
    assert all((p.grad is not None) == finetune for p in ext.cnn.layers.parameters())  # fc is not used
    with pytest.raises(ValueError, match="trunk has no layer 'conv9'"):
        EmbodiedExtractor(dict_space(), encoder=ckpt, features="keypoints", layer="conv9")
    with pytest.raises(ValueError, match="features='pooled'; expected one of"):
        EmbodiedExtractor(dict_space(), encoder=ckpt, features="pooled")
    with pytest.raises(ValueError, match="keypoints=0; expected a positive integer"):
        EmbodiedExtractor(dict_space(), encoder=ckpt, features="keypoints", keypoints=0)


def test_image_size_mismatch_is_a_clear_error(tmp_path):
    small = str(fake_checkpoint(tmp_path / "c32.pt", image_size=32))
    with pytest.raises(ValueError, match=r"takes 32x32 images.*are 64x64.*resize=True.*size=32"):
        EmbodiedExtractor(dict_space(64), encoder=small)
    ext = EmbodiedExtractor(dict_space(64), encoder=small, resize=True)
    assert ext({"rgb": torch.rand(2, 3, 64, 64), "proprio": torch.zeros(2, 2)}).shape == (2, 32 + 64)
    with pytest.raises(ValueError, match=r"NatureCNN needs square images of at least 36 px.*resize=True"):
        EmbodiedExtractor(dict_space(32), encoder="nature")
    ext = EmbodiedExtractor(dict_space(32), encoder="nature", resize=True)
    assert ext({"rgb": torch.rand(2, 3, 32, 32), "proprio": torch.zeros(2, 2)}).shape == (2, 512 + 64)
    with pytest.raises(FileNotFoundError, match="neither random nor nature"):
        policy_kwargs(str(tmp_path / "missing.pt"))


def test_mismatch_reported_before_sb3_builds_anything(tmp_path):
    """Through PPO itself, the message is ours, not a shape error from inside SB3."""
    small = str(fake_checkpoint(tmp_path / "c32.pt", image_size=32))
    venv = make_vec_env("embodied/Reach-v0", n_envs=1, seed=0)
    with pytest.raises(ValueError, match="train_rl.py --resize"):
        PPO("MultiInputPolicy", venv, policy_kwargs=policy_kwargs(small), device="cpu")
    venv.close()


def _ppo(encoder, finetune=False, n_envs=2, features="embed"):
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


@pytest.mark.parametrize("kind", ["random", "nature", "checkpoint"])
def test_ppo_smoke_run_each_encoder(kind, ckpt):
    model, venv = _ppo(ckpt if kind == "checkpoint" else kind)
    model.learn(256)
    assert model.num_timesteps >= 256
    venv.close()


@pytest.mark.parametrize("finetune", [False, True])
def test_trunk_frozen_unless_finetuned(finetune, ckpt):
    model, venv = _ppo(ckpt, finetune=finetune)
    trunk = model.policy.features_extractor.cnn
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    model.learn(128)
    after = trunk.state_dict()
    changed = any(not torch.equal(before[k], after[k]) for k in before)
    assert changed == finetune
    # batch-norm statistics stay fixed either way
    assert all(torch.equal(before[k], after[k]) for k in before if "running" in k)
    venv.close()


@pytest.mark.parametrize("features", ["embed", "keypoints"])
def test_saved_model_reloads_without_its_checkpoint_and_acts(features, tmp_path):
    path = fake_checkpoint(tmp_path / "checkpoint.pt")
    model, venv = _ppo(str(path), features=features)
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


def test_render_cli_rolls_out_a_trained_model(tmp_path):
    import imageio.v2 as imageio

    model, venv = _ppo("random", features="keypoints")
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
    venv.close()
    assert isinstance(load_model(tmp_path / "sac.zip"), SAC)


def test_train_rl_cli_writes_everything(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_rl.py"), "--encoder", "random", "--steps", "256"]
    cmd += ["--n-envs", "2", "--n-steps", "64", "--n-epochs", "1", "--eval-episodes", "2", "--eval-freq", "128"]
    cmd += ["--out", str(out), "--quiet", "--threads", "1", "--features", "keypoints"]  # SubprocVecEnv (the default)
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=240)
    summary = json.loads((out / "run.json").read_text())
    assert summary["steps"] >= 256 and summary["env_steps_per_s"] > 0
    assert summary["eval_timesteps"][0] == 0 and summary["eval_timesteps"][-1] == summary["steps"]
    for name in ("model.zip", "learning_curve.png", "eval/evaluations.npz"):
        assert (out / name).stat().st_size > 0
    assert list((out / "checkpoints").glob("*.zip")) and list((out / "tb").rglob("events.*"))
    assert load_sb3_policy(out) is not None


@pytest.mark.slow
def test_compare_rl_cli(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "compare_rl.py"), "--encoders", "random", "nature"]
    cmd += ["--seeds", "0", "1", "--steps", "128", "--out", str(tmp_path), "--"]
    cmd += ["--vec", "dummy", "--n-envs", "2", "--n-steps", "32", "--n-epochs", "1", "--eval-episodes", "2"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["encoders"]) == {"random", "nature"}
    assert (tmp_path / "comparison.png").stat().st_size > 0
    assert "steps to threshold" in (tmp_path / "summary.md").read_text()


def test_train_rl_smoke_run_with_the_defaults(tmp_path):
    """The README's smoke command, defaults only: seconds, a progress bar, an evaluation at the start and end."""
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("train_rl_cli", ROOT / "scripts" / "train_rl.py")
    train_rl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_rl)
    eval_schedule = train_rl.eval_schedule

    import resource

    out = tmp_path / "X"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_rl.py"), "--algo", "ppo", "--encoder", "random"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--steps", "256", "--out", str(out)], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # the script and its env processes
    assert proc.returncode == 0, proc.stderr[-2000:]
    # CPU seconds bound the wall time on an idle 2-core machine (measured ~7 s CPU, ~10 s wall) and, unlike
    # the wall time, do not grow when other jobs share the cores
    assert cpu <= 30.0, f"the --steps 256 smoke run used {cpu:.1f} CPU s ({wall:.1f} s wall); expected <= 30 s"
    assert "train_rl: 100%" in proc.stderr and "256/256" in proc.stderr, "no progress bar"
    summary = json.loads((out / "run.json").read_text())
    assert summary["eval_timesteps"] == [0, summary["steps"]] and summary["steps"] >= 256
    assert summary["eval_episodes"] == 2
    # the defaults scale with --steps: a long run evaluates ten times, with 20 episodes
    assert eval_schedule(20000, None, None) == (2000, 20)
    assert eval_schedule(256, None, None) == (2000, 2)
    assert eval_schedule(256, 64, 5) == (64, 5)
