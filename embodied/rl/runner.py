"""One RL run, top to bottom: check every input, build the envs and the model, learn, evaluate, summarise.

    from embodied.rl import RLConfig, train
    summary = train(RLConfig(env="reach", encoder="runs/curious", steps=60000, out=Path("runs/rl/curious-0")))

Writes to ``cfg.out``: model.zip (final), checkpoints/, tb/ (TensorBoard), monitor/ (training episodes),
eval/evaluations.npz (held-out instances, the same seeded episodes at every evaluation),
learning_curve.png and run.json (config, env steps/s, final success).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize, VecTransposeImage

from embodied.cli import UserError
from embodied.envs import register_all, resolve
from embodied.envs.registry import PRESETS, EnvPreset, explain_kwargs_error
from embodied.envs.validate import SPLITS
from embodied.rl.callbacks import EVAL_SEED_OFFSET, LossGradients, ProgressBar, SeededEval, eval_schedule
from embodied.rl.config import RLConfig
from embodied.rl.extractor import BUILTIN_ENCODERS, EmbodiedExtractor
from embodied.rl.models import config_policy_kwargs, make_model
from embodied.rl.results import plot_learning_curve, read_evaluations
from embodied.rl.state import STATE_ENCODERS, PrivilegedState
from embodied.rl.wrappers import SuccessInfo

TRAIN_SEED_STRIDE = 1000  # training env seeds: seed x 1000 + env index
REWARD_GAMMA = 0.99  # --norm-reward's return estimate: PPO's and SAC's default discount in SB3
RANDOM_ACTION_EPISODES = 200  # compare_rl's floor: +-0.04 on a success near 0.09
EVAL_ENV_SEED = 0
CHECKPOINTS_PER_RUN = 4


def check_config(cfg: RLConfig) -> tuple[EnvPreset, dict[str, Any], dict[str, Any]]:
    """Every input checked before any work: (env preset, env kwargs, eval env kwargs) or a one-line UserError.

    The env is built once with the kwargs (and once for evaluation), and the policy's feature extractor
    once on its observation space, so bad kwargs, a missing or unreadable encoder, or an image size the
    encoder does not take fail here, not after the env processes have started.
    """
    try:
        preset = resolve(cfg.env)
    except ValueError:
        raise UserError("--env", cfg.env, f"an env preset ({', '.join(sorted(PRESETS))}) or a registered id") from None
    encoder = str(cfg.encoder)
    if encoder not in BUILTIN_ENCODERS + STATE_ENCODERS and not Path(encoder).exists():
        raise UserError(
            "--encoder",
            encoder,
            f"{', '.join(BUILTIN_ENCODERS + STATE_ENCODERS)}, or an existing checkpoint / run directory",
        )
    _check_device(cfg.device)
    env_kwargs = dict(cfg.env_kwargs)
    eval_kwargs = {**env_kwargs, "split": cfg.eval_split} if "split" in preset.kwargs else env_kwargs
    if "split" in preset.kwargs and cfg.eval_split not in SPLITS:
        raise UserError("--eval-split", cfg.eval_split, f"one of {', '.join(SPLITS)}")
    register_all()
    for flag, kwargs in (("--env-kwargs", env_kwargs), ("--eval-split", eval_kwargs)):
        try:
            env = gym.make(preset.id, **kwargs)
        except (ValueError, TypeError) as e:
            raise UserError(explain_kwargs_error(preset, kwargs, e)) from None
        try:
            if flag == "--env-kwargs" and encoder in STATE_ENCODERS:
                PrivilegedState(env, encoder).reset(seed=0)
            elif flag == "--env-kwargs":
                pk = config_policy_kwargs(cfg)["features_extractor_kwargs"]
                EmbodiedExtractor(env.observation_space, **pk)
        except (ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
            raise UserError("--encoder", encoder, f"an encoder for this env ({' '.join(str(e).split())})") from None
        finally:
            env.close()
    if cfg.out is None:
        raise UserError("--out", "(missing)", "a run directory")
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise UserError("--out", cfg.out, "a run directory (it is a file)")
    return preset, env_kwargs, eval_kwargs


def _check_device(device: str) -> None:
    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserError("--device", device, "cpu, cuda, cuda:<index> or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device", device, "cpu (CUDA is not available here)")


def random_action_success(
    env_id: str, eval_kwargs: dict[str, Any], episodes: int = RANDOM_ACTION_EPISODES, seed: int = EVAL_SEED_OFFSET
) -> list[float]:
    """[mean, lo, hi]: the held-out success of uniform random actions (``episodes`` seeded episodes of the
    evaluation env, ``info["success"]`` at each episode's end) with its 95 % Wilson interval: the level a
    policy reaches without learning anything, below which a success threshold means nothing."""
    env = gym.make(env_id, **eval_kwargs)
    env.action_space.seed(seed)
    wins = 0
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done, info = False, {}
        while not done:
            _, _, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
        wins += bool(info.get("success", False))
    env.close()
    return wilson(wins, episodes)


def wilson(successes: int, n: int, z: float = 1.96) -> list[float]:
    """[p, lo, hi]: a success rate and its Wilson score interval (95 % at z = 1.96)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [p, float(max(centre - half, 0.0)), float(min(centre + half, 1.0))]


def make_envs(
    cfg: RLConfig, env_id: str, env_kwargs: dict[str, Any], eval_kwargs: dict[str, Any], out: Path
) -> tuple[VecEnv, VecEnv]:
    """(training envs, evaluation env) of a run; the evaluation env is transposed as SB3 does the training one."""
    vec_cls = SubprocVecEnv if cfg.vec == "subproc" and cfg.n_envs > 1 else DummyVecEnv
    venv = make_vec_env(
        env_id,
        n_envs=cfg.n_envs,
        seed=cfg.seed * TRAIN_SEED_STRIDE,
        vec_env_cls=vec_cls,
        env_kwargs=env_kwargs,
        monitor_dir=str(out / "monitor"),
        wrapper_class=env_wrapper(cfg.encoder),
    )
    if cfg.norm_reward:  # Monitor (inside) logs the raw rewards; only the learner sees scaled ones
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=REWARD_GAMMA)
    return venv, make_eval_env(env_id, eval_kwargs, cfg.encoder, cfg.norm_reward)


def env_wrapper(encoder: str) -> Callable[[gym.Env], gym.Env]:
    """What every env of a run is wrapped in: SuccessInfo, then PrivilegedState for a state encoder."""
    if str(encoder) in STATE_ENCODERS:
        return lambda env: PrivilegedState(SuccessInfo(env), str(encoder))
    return SuccessInfo


def make_eval_env(
    env_id: str, eval_kwargs: dict[str, Any], encoder: str = "random", norm_reward: bool = False
) -> VecEnv:
    """The one-env evaluation VecEnv, channel-first images like the policy's training input.

    With ``norm_reward`` it holds a VecNormalize that changes nothing (SB3's evaluation syncs the training
    envs' statistics into a wrapper at the same place in the chain); it reports raw rewards.
    """
    inner = make_vec_env(
        env_id, n_envs=1, seed=EVAL_ENV_SEED, env_kwargs=eval_kwargs, wrapper_class=env_wrapper(encoder)
    )
    if norm_reward:
        inner = VecNormalize(inner, training=False, norm_obs=False, norm_reward=False)
    return inner if str(encoder) in STATE_ENCODERS else VecTransposeImage(inner)


def make_evaluator(cfg: RLConfig, eval_env: VecEnv, out: Path) -> SeededEval:
    """The held-out evaluation of ``cfg``: the same seeded episodes every time, at step 0 and every eval_freq."""
    eval_every, eval_episodes = eval_schedule(cfg.steps, cfg.eval_freq, cfg.eval_episodes)
    return SeededEval(
        eval_env,
        n_eval_episodes=eval_episodes,
        eval_freq=max(eval_every // cfg.n_envs, 1),
        log_path=str(out / "eval"),
        best_model_save_path=None,
        deterministic=True,
        verbose=0,
        eval_seed=EVAL_SEED_OFFSET + cfg.seed,
    )


def learn(cfg: RLConfig, model: BaseAlgorithm, evaluator: SeededEval, out: Path) -> float:
    """``model.learn`` for ``cfg.steps`` with evaluation, checkpoints and a progress bar; the wall seconds."""
    ckpt_every = cfg.checkpoint_freq or max(cfg.steps // CHECKPOINTS_PER_RUN, cfg.n_envs)
    checkpoints = CheckpointCallback(max(ckpt_every // cfg.n_envs, 1), str(out / "checkpoints"), "model")
    t0 = time.perf_counter()
    bar = ProgressBar(cfg.steps, disable=cfg.quiet)
    callbacks = [evaluator, checkpoints, bar]
    if cfg.algo == "ppo" and cfg.encoder not in STATE_ENCODERS:
        callbacks.append(LossGradients())  # which loss term trains the image pathway: TensorBoard grad/*
    model.learn(cfg.steps, callback=CallbackList(callbacks), tb_log_name="run", progress_bar=False)
    return time.perf_counter() - t0


def run_label(cfg: RLConfig, preset_name: str) -> str:
    """``ppo / random / seed 0 / reach``: the run in a line (plot titles, the final message)."""
    return f"{cfg.algo} / {cfg.encoder}{' (finetune)' if cfg.finetune else ''} / seed {cfg.seed} / {preset_name}"


def summarise(
    cfg: RLConfig, preset: EnvPreset, steps: int, wall: float, train_seconds: float, eval_seconds: float
) -> dict[str, Any]:
    """run.json's content: the run, its speed with evaluation time left out, and its held-out curve.

    wall: seconds of ``model.learn``; train_seconds: those less its evaluations; eval_seconds: all evaluations.
    """
    ev = read_evaluations(cfg.out)  # type: ignore[arg-type]
    eval_every, eval_episodes = eval_schedule(cfg.steps, cfg.eval_freq, cfg.eval_episodes)
    return {
        "env": preset.id,
        "preset": preset.name,
        "algo": cfg.algo,
        "encoder": cfg.encoder,
        "finetune": cfg.finetune,
        "seed": cfg.seed,
        "steps": int(steps),
        "n_envs": cfg.n_envs,
        "wall_s": round(wall, 2),
        "eval_s": round(eval_seconds, 2),
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "env_steps_per_s": round(steps / max(train_seconds, 1e-9), 1),
        "final_success": float(ev["success"][-1]),
        "final_return": float(ev["return"][-1]),
        "final_closest": _finite(ev["closest"][-1]),
        "final_wrong": _finite(ev["wrong"][-1]),
        "eval_timesteps": ev["timesteps"].tolist(),
        "eval_success": ev["success"].tolist(),
        "eval_return": ev["return"].tolist(),
        "args": cfg.to_dict(),
    }


def _finite(value: float) -> float | None:
    """``value``, or None where the env does not report it (NaN is not JSON)."""
    return float(value) if np.isfinite(value) else None


def train(cfg: RLConfig) -> dict[str, Any]:
    """One run of ``cfg`` (checked first: a bad input is a UserError before any work); returns run.json's dict."""
    threads = cfg.threads if cfg.threads is not None else (1 if cfg.device == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    preset, env_kwargs, eval_kwargs = check_config(cfg)
    out = Path(cfg.out)  # type: ignore[arg-type]
    (out / "eval").mkdir(parents=True, exist_ok=True)
    venv, eval_env = make_envs(cfg, preset.id, env_kwargs, eval_kwargs, out)
    try:
        model = make_model(cfg, venv, out)
        evaluator = make_evaluator(cfg, eval_env, out)
        wall = learn(cfg, model, evaluator, out)
        train_seconds = wall - evaluator.eval_seconds
        evaluator.evaluate_now()  # the final point, at exactly the last step
        model.save(out / "model.zip")
    finally:
        venv.close()
        eval_env.close()
    plot_learning_curve(out, run_label(cfg, preset.name))
    summary = summarise(cfg, preset, model.num_timesteps, wall, train_seconds, evaluator.eval_seconds)
    (out / "run.json").write_text(json.dumps(summary, indent=2))
    return summary


__all__ = ["check_config", "make_envs", "make_eval_env", "make_evaluator", "run_label", "summarise", "train"]
