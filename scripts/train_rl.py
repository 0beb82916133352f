#!/usr/bin/env python
"""Train an SB3 agent (PPO or SAC) on a pixel task with a learned, random or NatureCNN image encoder.

python scripts/train_rl.py --env reach --algo ppo --encoder runs/curious --steps 100000 --seed 0 --out runs/rl/curious-0
python scripts/train_rl.py --env reach --algo ppo --encoder random --steps 20000 --seed 0 --out runs/rl/random-0
python scripts/train_rl.py --env reach --algo sac --encoder nature --steps 20000 --seed 0 --out runs/rl/nature-0

Writes to --out: model.zip (final), checkpoints/, tb/ (TensorBoard), monitor/ (training episodes),
eval/evaluations.npz (held-out instances, the same seeded episodes at every evaluation),
learning_curve.png and run.json (config, env steps/s, final success).
Roll the result out to video: ``embodied.agents.sb3.load_sb3_policy(out / "model.zip")``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback, EvalCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecTransposeImage  # noqa: E402
from tqdm import tqdm  # noqa: E402

from embodied.agents.sb3 import (  # noqa: E402
    ALGOS,
    BUILTIN_ENCODERS,
    FEATURES,
    EmbodiedExtractor,
    SuccessInfo,
    algo_class,
    policy_kwargs,
)
from embodied.cli import (  # noqa: E402
    ArgumentParser,
    UserError,
    catch_user_errors,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    run,
)
from embodied.envs import register_all, resolve  # noqa: E402
from embodied.envs.registry import PRESETS, explain_kwargs_error  # noqa: E402
from embodied.envs.validate import SPLITS  # noqa: E402

EVAL_SEED_OFFSET = 1_000_003  # eval episodes never share seeds with training episodes


class SeededEval(EvalCallback):
    """EvalCallback that replays the same seeded episodes at every evaluation (one at step 0 too)
    and keeps count of the wall time it spends, so env steps/s can leave it out."""

    def __init__(self, *args: Any, eval_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seed = eval_seed
        self.eval_seconds = 0.0

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.evaluate_now()

    def evaluate_now(self) -> None:
        """One evaluation at the current step, whatever ``eval_freq`` says."""
        if self.evaluations_timesteps and self.evaluations_timesteps[-1] == self.num_timesteps:
            return
        n_calls = self.n_calls
        self.n_calls = 0
        try:
            self._on_step()
        finally:
            self.n_calls = n_calls

    def _on_step(self) -> bool:
        due = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        if not due:
            return True
        self.eval_env.seed(self.eval_seed)
        t0 = time.perf_counter()
        keep_going = super()._on_step()
        self.eval_seconds += time.perf_counter() - t0
        return keep_going


class ProgressBar(BaseCallback):
    """A tqdm bar over env steps (SB3's own needs rich)."""

    def __init__(self, total: int, disable: bool = False) -> None:
        super().__init__()
        self.total, self.disable = total, disable
        self.bar: Any = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, unit="step", desc="train_rl", disable=self.disable, dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def eval_schedule(steps: int, eval_freq: int | None, eval_episodes: int | None) -> tuple[int, int]:
    """(env steps between evaluations, episodes per evaluation); both scale with ``steps``.

    Defaults: ten evaluations over the run, but none closer than 2000 steps (so a short run evaluates at
    its start and end only), and 20 held-out episodes, fewer for short runs (one per 1000 steps, at
    least 2): ``--steps 256`` is a smoke run of seconds, ``--steps 20000`` evaluates 10 x 20 episodes.
    """
    freq = eval_freq or max(steps // 10, 2000)
    episodes = eval_episodes or min(20, max(2, steps // 1000))
    return freq, episodes


def parse_kv(items: list[str]) -> dict[str, Any]:
    """["size=64", "categories=['cup']"] -> {"size": 64, "categories": ["cup"]} (JSON values where they parse)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError("--env-kwargs", item, "key=value, e.g. size=64")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw.replace("'", '"'))
        except json.JSONDecodeError:
            out[key] = raw
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--env", default="reach", help="env preset name (envs/*.toml) or registered id")
    ap.add_argument("--algo", default="ppo", choices=ALGOS)
    ap.add_argument("--encoder", default="random", help="checkpoint / run dir, 'random' or 'nature'")
    ap.add_argument("--finetune", action="store_true", help="train the trunk's weights too (default: frozen)")
    ap.add_argument("--resize", action="store_true", help="resize env images to the encoder's input size")
    ap.add_argument(
        "--features",
        default="keypoints",
        choices=FEATURES,
        help="what a trunk gives the policy: learned spatial-softmax keypoints on its last conv map (positions "
        "survive; the default) or its pooled embedding; NatureCNN ignores this",
    )
    ap.add_argument("--keypoints", type=positive_int, default=32, help="keypoints for --features keypoints")
    ap.add_argument("--steps", type=positive_int, default=20000, help="total env steps")
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="run directory")
    ap.add_argument("--n-envs", type=positive_int, default=4, help="parallel training envs")
    ap.add_argument("--vec", default="subproc", choices=("subproc", "dummy"), help="SubprocVecEnv or in-process")
    ap.add_argument("--env-kwargs", nargs="*", default=[], help="preset overrides, key=value")
    ap.add_argument(
        "--eval-freq",
        type=positive_int,
        default=None,
        help="env steps between evaluations (default: steps/10, at least 2000; always one at the start and the end)",
    )
    ap.add_argument(
        "--eval-episodes",
        type=positive_int,
        default=None,
        help="held-out episodes per evaluation (default: one per 1000 steps, 2..20)",
    )
    ap.add_argument("--eval-split", default="heldout", help="object split of the evaluation env")
    ap.add_argument(
        "--checkpoint-freq", type=positive_int, default=None, help="env steps between checkpoints (default steps/4)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--threads",
        type=nonnegative_int,
        default=None,
        help="torch threads in the learner (default: 1 on a CPU, where more spin against the env processes: "
        "measured 6x less CPU time for the --steps 256 smoke run; 0: torch's default)",
    )
    ap.add_argument("--lr", type=positive_float, default=3e-4)
    ap.add_argument(
        "--n-steps",
        type=positive_int,
        default=None,
        help="PPO: steps per env per rollout (default: 128, fewer when --steps / --n-envs is smaller)",
    )
    ap.add_argument("--batch-size", type=positive_int, default=None, help="PPO 128 / SAC 128 by default")
    ap.add_argument("--n-epochs", type=positive_int, default=4, help="PPO: epochs per rollout")
    ap.add_argument("--ent-coef", type=nonnegative_float, default=0.0, help="PPO entropy bonus")
    ap.add_argument(
        "--buffer-size", type=positive_int, default=20000, help="SAC replay buffer (64 px: ~25 kB per transition)"
    )
    ap.add_argument("--learning-starts", type=nonnegative_int, default=500, help="SAC: random steps before learning")
    ap.add_argument("--quiet", action="store_true", help="no SB3 progress output, no progress bar")
    return ap


def make_model(args: argparse.Namespace, venv: Any, out: Path) -> Any:
    pk = policy_kwargs(
        args.encoder,
        finetune=args.finetune,
        resize=args.resize,
        seed=args.seed,
        features=args.features,
        keypoints=args.keypoints,
    )
    common = dict(
        policy_kwargs=pk,
        learning_rate=args.lr,
        seed=args.seed,
        device=args.device,
        tensorboard_log=str(out / "tb"),
        verbose=0 if args.quiet else 1,
    )
    if args.algo == "ppo":
        n_steps = args.n_steps or min(128, max(8, args.steps // venv.num_envs))
        batch = args.batch_size or 128
        return algo_class("ppo")(
            "MultiInputPolicy",
            venv,
            n_steps=n_steps,
            batch_size=min(batch, n_steps * venv.num_envs),
            n_epochs=args.n_epochs,
            ent_coef=args.ent_coef,
            **common,
        )
    return algo_class("sac")(
        "MultiInputPolicy",
        venv,
        buffer_size=args.buffer_size,
        batch_size=args.batch_size or 128,
        learning_starts=args.learning_starts,
        train_freq=1,
        gradient_steps=1,
        **common,
    )


def read_evaluations(run_dir: Path) -> dict[str, np.ndarray]:
    """timesteps (E,), success (E,) fraction and return (E,) mean over episodes, from eval/evaluations.npz."""
    data = np.load(Path(run_dir) / "eval" / "evaluations.npz")
    out = {"timesteps": data["timesteps"], "return": data["results"].mean(axis=1)}
    out["success"] = data["successes"].mean(axis=1) if "successes" in data else np.full(len(out["return"]), np.nan)
    return out


def plot_learning_curve(run_dir: Path, title: str) -> Path:
    """learning_curve.png: held-out success and return against env steps, training episode returns behind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from stable_baselines3.common.monitor import load_results

    ev = read_evaluations(run_dir)
    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_s.plot(ev["timesteps"], ev["success"], "o-", label="held-out eval")
    ax_s.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title="success")
    try:
        mon = load_results(str(run_dir / "monitor"))
        if len(mon):
            steps = np.cumsum(mon["l"].to_numpy())
            ret = mon["r"].rolling(20, min_periods=1).mean().to_numpy()
            ax_r.plot(steps, ret, color="0.6", lw=1, label="train episodes (mean of 20)")
    except Exception:  # noqa: BLE001 - no monitor files: plot the evaluation only
        pass
    ax_r.plot(ev["timesteps"], ev["return"], "o-", label="held-out eval")
    ax_r.set(xlabel="env steps", ylabel="episode return", title="return")
    ax_r.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(run_dir) / "learning_curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def check_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Every input checked before any work: (preset, env kwargs, eval env kwargs) or a one-line UserError.

    The env is built once with the kwargs (and once for evaluation), and the policy's feature extractor
    once on its observation space, so bad kwargs, a missing or unreadable encoder, or an image size the
    encoder does not take fail here, not after the env processes have started.
    """
    import gymnasium as gym

    try:
        preset = resolve(args.env)
    except ValueError:
        raise UserError("--env", args.env, f"an env preset ({', '.join(sorted(PRESETS))}) or a registered id") from None
    encoder = str(args.encoder)
    if encoder not in BUILTIN_ENCODERS and not Path(encoder).exists():
        raise UserError(
            "--encoder", encoder, f"{' or '.join(BUILTIN_ENCODERS)}, or an existing checkpoint / run directory"
        )
    if args.device != "auto":
        try:
            dev = torch.device(args.device)
        except (RuntimeError, TypeError, ValueError):
            raise UserError("--device", args.device, "cpu, cuda, cuda:<index> or auto") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device", args.device, "cpu (CUDA is not available here)")
    env_kwargs = parse_kv(args.env_kwargs)
    eval_kwargs = {**env_kwargs, "split": args.eval_split} if "split" in preset.kwargs else env_kwargs
    if "split" in preset.kwargs and args.eval_split not in SPLITS:
        raise UserError("--eval-split", args.eval_split, f"one of {', '.join(SPLITS)}")
    register_all()
    for flag, kwargs in (("--env-kwargs", env_kwargs), ("--eval-split", eval_kwargs)):
        try:
            env = gym.make(preset.id, **kwargs)
        except (ValueError, TypeError) as e:
            raise UserError(explain_kwargs_error(preset, kwargs, e)) from None
        try:
            if flag == "--env-kwargs":
                pk = policy_kwargs(
                    encoder,
                    finetune=args.finetune,
                    resize=args.resize,
                    seed=args.seed,
                    features=args.features,
                    keypoints=args.keypoints,
                )["features_extractor_kwargs"]
                EmbodiedExtractor(env.observation_space, **pk)
        except (ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
            raise UserError("--encoder", encoder, f"an encoder for this env ({' '.join(str(e).split())})") from None
        finally:
            env.close()
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", args.out, "a run directory (it is a file)")
    return preset, env_kwargs, eval_kwargs


@catch_user_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    threads = args.threads if args.threads is not None else (1 if args.device == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    preset, env_kwargs, eval_kwargs = check_args(args)
    eval_every, eval_episodes = eval_schedule(args.steps, args.eval_freq, args.eval_episodes)
    out: Path = args.out
    (out / "eval").mkdir(parents=True, exist_ok=True)

    vec_cls = SubprocVecEnv if args.vec == "subproc" and args.n_envs > 1 else DummyVecEnv
    venv = make_vec_env(
        preset.id,
        n_envs=args.n_envs,
        seed=args.seed * 1000,
        vec_env_cls=vec_cls,
        env_kwargs=env_kwargs,
        monitor_dir=str(out / "monitor"),
        wrapper_class=SuccessInfo,
    )
    # transposed like the training env (SB3 wraps that one itself), so both feed the policy alike
    eval_env = VecTransposeImage(
        make_vec_env(preset.id, n_envs=1, seed=0, env_kwargs=eval_kwargs, wrapper_class=SuccessInfo)
    )
    try:
        model = make_model(args, venv, out)
        ckpt_every = args.checkpoint_freq or max(args.steps // 4, args.n_envs)
        evaluator = SeededEval(
            eval_env,
            n_eval_episodes=eval_episodes,
            eval_freq=max(eval_every // args.n_envs, 1),
            log_path=str(out / "eval"),
            best_model_save_path=None,
            deterministic=True,
            verbose=0,
            eval_seed=EVAL_SEED_OFFSET + args.seed,
        )
        checkpoints = CheckpointCallback(max(ckpt_every // args.n_envs, 1), str(out / "checkpoints"), "model")
        t0 = time.perf_counter()
        bar = ProgressBar(args.steps, disable=args.quiet)
        callbacks = CallbackList([evaluator, checkpoints, bar])
        model.learn(args.steps, callback=callbacks, tb_log_name="run", progress_bar=False)
        wall = time.perf_counter() - t0
        train_seconds = wall - evaluator.eval_seconds
        evaluator.evaluate_now()  # the final point, at exactly the last step
        model.save(out / "model.zip")
    finally:
        venv.close()
        eval_env.close()

    ev = read_evaluations(out)
    label = f"{args.algo} / {args.encoder}{' (finetune)' if args.finetune else ''} / seed {args.seed} / {preset.name}"
    plot_learning_curve(out, label)
    summary = {
        "env": preset.id,
        "preset": preset.name,
        "algo": args.algo,
        "encoder": args.encoder,
        "finetune": args.finetune,
        "seed": args.seed,
        "steps": int(model.num_timesteps),
        "n_envs": args.n_envs,
        "wall_s": round(wall, 2),
        "eval_s": round(evaluator.eval_seconds, 2),
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "env_steps_per_s": round(model.num_timesteps / max(train_seconds, 1e-9), 1),
        "final_success": float(ev["success"][-1]),
        "final_return": float(ev["return"][-1]),
        "eval_timesteps": ev["timesteps"].tolist(),
        "eval_success": ev["success"].tolist(),
        "eval_return": ev["return"].tolist(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2))
    print(
        f"{label}: {summary['steps']} steps, {summary['env_steps_per_s']} env steps/s (training, eval excluded), "
        f"final held-out success {summary['final_success']:.2f}, return {summary['final_return']:.1f} -> {out}"
    )
    return summary


if __name__ == "__main__":
    run(main)
