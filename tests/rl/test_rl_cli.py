"""The two RL command lines: train_rl.py writes a complete, reproducible run; compare_rl.py compares encoders."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

from embodied.rl import EVAL_SEED_OFFSET, eval_schedule, load_model, load_sb3_policy
from embodied.rl.runner import make_eval_env

ROOT = Path(__file__).resolve().parents[2]
TRAIN_RL = [sys.executable, str(ROOT / "scripts" / "train_rl.py")]


def test_train_rl_cli_writes_everything(tmp_path):
    out = tmp_path / "run"
    cmd = [*TRAIN_RL, "--encoder", "random", "--steps", "256"]
    cmd += ["--n-envs", "2", "--n-steps", "64", "--n-epochs", "1", "--eval-episodes", "2", "--eval-freq", "128"]
    cmd += ["--out", str(out), "--quiet", "--threads", "1", "--features", "keypoints"]  # SubprocVecEnv (the default)
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=240)
    summary = json.loads((out / "run.json").read_text())
    assert summary["steps"] >= 256 and summary["env_steps_per_s"] > 0
    assert summary["eval_timesteps"] == [0, 128, 256] and summary["eval_timesteps"][-1] == summary["steps"]
    for name in ("model.zip", "learning_curve.png", "eval/evaluations.npz"):
        assert (out / name).stat().st_size > 0
    assert list((out / "checkpoints").glob("*.zip")) and list((out / "tb").rglob("events.*"))
    # the evaluation is reproducible from what the run saved: each checkpoint, saved at the same callback step as
    # the evaluation of that step, replays the same seeded held-out episodes to the recorded returns
    recorded = np.load(out / "eval" / "evaluations.npz")["results"]
    assert summary["final_return"] == pytest.approx(float(recorded[-1].mean()))
    for i, step in enumerate(summary["eval_timesteps"][1:], start=1):
        np.testing.assert_allclose(replay(out / "checkpoints" / f"model_{step}_steps.zip"), recorded[i], rtol=1e-5)
    # model.zip is the model after the last update (the last evaluation ran before it, inside the rollout)
    final = load_model(out)
    assert final.num_timesteps == summary["steps"]
    env = gym.make("embodied/Reach-v0", split="heldout")
    obs, info = env.reset(seed=EVAL_SEED_OFFSET)
    action = load_sb3_policy(out)(obs, info)
    np.testing.assert_array_equal(action, final.predict(obs, deterministic=True)[0])
    assert action.shape == env.action_space.shape and np.isfinite(action).all()
    env.close()


def replay(model_zip, episodes=2, seed=0):
    """Per-episode returns of a saved model on the evaluation's seeded held-out episodes."""
    eval_env = make_eval_env("embodied/Reach-v0", {"split": "heldout"})
    eval_env.seed(EVAL_SEED_OFFSET + seed)
    returns, _ = evaluate_policy(
        load_model(model_zip), eval_env, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True
    )
    eval_env.close()
    return returns


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
    import resource
    import time

    out = tmp_path / "X"
    cmd = [*TRAIN_RL, "--algo", "ppo", "--encoder", "random"]
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


@pytest.mark.parametrize("script", ["train_rl", "compare_rl"])
def test_help(script):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--out" in proc.stdout and "--env" in proc.stdout
    if script == "train_rl":  # RLConfig's field docstrings are the help
        assert "--preset" in proc.stdout and "SAC: random steps before learning" in proc.stdout
