#!/usr/bin/env python
"""Compare image encoders for RL: several seeds per encoder on one task, one figure, one table.

python scripts/compare_rl.py --env reach --encoders curious=runs/curious equivariant=runs/equivariant random nature \\
    --seeds 0 1 2 --steps 100000 --out runs/compare_rl --jobs 2

Each (encoder, seed) is one ``scripts/train_rl.py`` run in ``--out/<label>/seed<S>`` (finished runs,
those with a run.json, are reused, so a killed comparison resumes). Then it writes:

- comparison.png: held-out success and return against env steps, mean +- std over seeds per encoder;
- summary.md / summary.json: final success, env steps/s, and steps-to-threshold per encoder, where the
  threshold is the ``random`` trunk's final mean success (or ``--threshold``); the goal is that a learned
  trunk gets there in at most half of random's steps.

Extra arguments after ``--`` go to every train_rl.py run (e.g. ``-- --n-envs 2 --eval-episodes 10``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_rl import build_parser, read_evaluations  # noqa: E402

from embodied.agents.sb3 import BUILTIN_ENCODERS  # noqa: E402
from embodied.cli import (  # noqa: E402
    ArgumentParser,
    UserError,
    catch_user_errors,
    nonnegative_int,
    positive_int,
    probability,
    run,
)
from embodied.envs.registry import PRESETS, resolve  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "train_rl.py"


def parse_encoders(items: list[str]) -> dict[str, str]:
    """["random", "curious=runs/curious"] -> {"random": "random", "curious": "runs/curious"}."""
    out: dict[str, str] = {}
    for item in items:
        label, _, enc = item.partition("=")
        if not label or label in out:
            raise UserError("--encoders", item, "label=checkpoint with a new, non-empty label")
        out[label] = enc or label
    return out


def check_args(args: argparse.Namespace, encoders: dict[str, str], extra: list[str]) -> None:
    """Every input checked before the first run starts (one-line UserError)."""
    try:
        resolve(args.env)
    except ValueError:
        raise UserError("--env", args.env, f"an env preset ({', '.join(sorted(PRESETS))}) or a registered id") from None
    for label, enc in encoders.items():
        if enc not in BUILTIN_ENCODERS and not Path(enc).exists():
            raise UserError(
                "--encoders", f"{label}={enc}", f"{' or '.join(BUILTIN_ENCODERS)}, or label=<existing checkpoint>"
            )
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", args.out, "a directory (it is a file)")
    # the arguments every train_rl.py run gets: parsed by its own parser now, not in each run's log
    build_parser().parse_args(["--env", args.env, "--algo", args.algo, "--out", str(args.out), *extra])


def run_one(label: str, encoder: str, seed: int, args: argparse.Namespace, extra: list[str]) -> Path:
    run_dir = args.out / label / f"seed{seed}"
    if (run_dir / "run.json").exists():
        return run_dir
    cmd = [sys.executable, str(SCRIPT), "--env", args.env, "--algo", args.algo, "--encoder", encoder]
    cmd += ["--steps", str(args.steps), "--seed", str(seed), "--out", str(run_dir), "--quiet", *extra]
    if args.finetune:
        cmd.append("--finetune")
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "log.txt", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{label} seed {seed} failed (exit {proc.returncode}); see {run_dir / 'log.txt'}")
    return run_dir


def steps_to(timesteps: np.ndarray, curve: np.ndarray, threshold: float) -> int | None:
    """The first evaluated step at which ``curve`` reaches ``threshold`` (None: never)."""
    hit = np.nonzero(curve >= threshold - 1e-9)[0]
    return int(timesteps[hit[0]]) if len(hit) else None


def aggregate(runs: dict[str, list[Path]], threshold: float | None) -> dict[str, Any]:
    """Per encoder: mean / std curves on common eval steps, final numbers, steps-to-threshold."""
    result: dict[str, Any] = {"encoders": {}}
    for label, dirs in runs.items():
        evs = [read_evaluations(d) for d in dirs]
        n = min(len(e["timesteps"]) for e in evs)
        t = evs[0]["timesteps"][:n]
        succ = np.stack([e["success"][:n] for e in evs])
        ret = np.stack([e["return"][:n] for e in evs])
        meta = [json.loads((d / "run.json").read_text()) for d in dirs]
        result["encoders"][label] = {
            "encoder": meta[0]["encoder"],
            "seeds": [m["seed"] for m in meta],
            "timesteps": t.tolist(),
            "success_mean": succ.mean(0).tolist(),
            "success_std": succ.std(0).tolist(),
            "return_mean": ret.mean(0).tolist(),
            "return_std": ret.std(0).tolist(),
            "success_per_seed": succ.tolist(),
            "final_success_mean": float(succ[:, -1].mean()),
            "final_success_std": float(succ[:, -1].std()),
            "final_return_mean": float(ret[:, -1].mean()),
            "env_steps_per_s": float(np.mean([m["env_steps_per_s"] for m in meta])),
        }
    if threshold is None:
        threshold = result["encoders"].get("random", {}).get("final_success_mean")
    result["threshold"] = threshold
    if threshold is None:
        return result
    base = None
    if "random" in result["encoders"]:
        r = result["encoders"]["random"]
        base = steps_to(np.asarray(r["timesteps"]), np.asarray(r["success_mean"]), threshold)
    for e in result["encoders"].values():
        t = np.asarray(e["timesteps"])
        e["steps_to_threshold"] = steps_to(t, np.asarray(e["success_mean"]), threshold)
        e["steps_to_threshold_per_seed"] = [steps_to(t, np.asarray(s), threshold) for s in e["success_per_seed"]]
        s = e["steps_to_threshold"]
        e["ratio_to_random"] = (s / base) if (s is not None and base) else None
    result["random_steps_to_threshold"] = base
    return result


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    for label, e in result["encoders"].items():
        t = np.asarray(e["timesteps"])
        for ax, key in ((ax_s, "success"), (ax_r, "return")):
            m, s = np.asarray(e[f"{key}_mean"]), np.asarray(e[f"{key}_std"])
            (line,) = ax.plot(t, m, "o-", ms=3, label=f"{label} (n={len(e['seeds'])})")
            ax.fill_between(t, m - s, m + s, color=line.get_color(), alpha=0.2)
    if result.get("threshold") is not None:
        ax_s.axhline(result["threshold"], color="0.4", ls="--", lw=1, label="threshold")
    ax_s.set(xlabel="env steps", ylabel="held-out success rate", ylim=(-0.02, 1.02), title="success (mean ± std)")
    ax_r.set(xlabel="env steps", ylabel="held-out episode return", title="return (mean ± std)")
    ax_s.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    thr = result.get("threshold")
    lines = [
        f"threshold: held-out success >= {thr:.3f}" if thr is not None else "threshold: none (no random run)",
        "",
        "| encoder | seeds | final success | final return | steps to threshold (mean curve) | per seed "
        "| vs random | env steps/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, e in result["encoders"].items():
        s = e.get("steps_to_threshold")
        ratio = e.get("ratio_to_random")
        per_seed = ", ".join("never" if v is None else str(v) for v in e.get("steps_to_threshold_per_seed", []))
        lines.append(
            f"| {label} | {len(e['seeds'])} | {e['final_success_mean']:.2f} ± {e['final_success_std']:.2f} "
            f"| {e['final_return_mean']:.1f} | {'never' if s is None else s} | {per_seed} "
            f"| {'-' if ratio is None else f'{ratio:.2f}x'} | {e['env_steps_per_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


@catch_user_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--env", default="reach")
    ap.add_argument("--algo", default="ppo", choices=("ppo", "sac"))
    ap.add_argument(
        "--encoders",
        nargs="+",
        default=["random", "nature"],
        help="label=checkpoint (or run dir), 'random', 'nature'",
    )
    ap.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=positive_int, default=50000, help="env steps per run")
    ap.add_argument("--finetune", action="store_true", help="fine-tune the trunks (all runs)")
    ap.add_argument("--threshold", type=probability, default=None, help="success threshold (default: random's final)")
    ap.add_argument("--jobs", type=positive_int, default=1, help="runs in parallel")
    ap.add_argument("--out", type=Path, default=Path("runs/compare_rl"))
    args = ap.parse_args(argv)
    encoders = parse_encoders(args.encoders)
    check_args(args, encoders, extra)
    jobs = [(label, enc, seed) for label, enc in encoders.items() for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        dirs = list(pool.map(lambda j: run_one(*j, args, extra), jobs))
    runs: dict[str, list[Path]] = {}
    for (label, _, _), d in zip(jobs, dirs, strict=True):
        runs.setdefault(label, []).append(d)
    result = aggregate(runs, args.threshold)
    result.update(env=args.env, algo=args.algo, steps=args.steps, finetune=args.finetune, extra_args=extra)
    title = f"{args.algo} on {args.env}, {args.steps} steps, seeds {args.seeds}{' (finetune)' if args.finetune else ''}"
    plot(result, args.out / "comparison.png", title)
    (args.out / "summary.json").write_text(json.dumps(result, indent=2))
    md = f"# {title}\n\n" + table(result)
    (args.out / "summary.md").write_text(md)
    print(md)
    return result


if __name__ == "__main__":
    run(main)
