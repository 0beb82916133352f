#!/usr/bin/env python
"""Compare image encoders for RL: several seeds per encoder on one task, one figure, one table.

python scripts/compare_rl.py --env reach --encoders curious=runs/curious equivariant=runs/equivariant random nature \\
    --seeds 0 1 2 --steps 100000 --out runs/compare_rl --jobs 2

Each (encoder, seed) is one ``scripts/train_rl.py`` process in ``--out/<label>/seed<S>`` (finished runs,
those with a run.json, are reused, so a killed comparison resumes). Then it writes:

- comparison.png: held-out success and return against env steps, the mean over seeds per encoder with
  a 95 % t-interval band for success (± std for return);
- summary.md / summary.json: final success with its 95 % t-interval over seeds, its difference to the
  ``random`` trunk's paired by seed (same env and evaluation seeds), env steps/s, and steps-to-threshold
  per encoder, where the threshold is the ``random`` trunk's final mean success (or ``--threshold``),
  floored at the held-out success of uniform random actions (200 seeded episodes, also in the table and
  the figure): a threshold met by flailing measures nothing. The goal is that a learned trunk gets
  there in at most half of random's steps.

Extra arguments after ``--`` go to every train_rl.py run (e.g. ``-- --n-envs 2 --eval-episodes 10``,
or ``-- --preset reach_ppo``).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from embodied.cli import ArgumentParser, UserError, catch_user_errors, nonnegative_int, positive_int, probability, run
from embodied.envs.registry import PRESETS, resolve
from embodied.rl import compare
from embodied.rl.config import RLConfig
from embodied.rl.config import parse_args as parse_train_args
from embodied.rl.models import ALGOS
from embodied.rl.runner import check_config, random_action_success

TRAIN_RL = [sys.executable, str(Path(__file__).resolve().parent / "train_rl.py")]  # run as a process, not imported


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--env", default="reach")
    ap.add_argument("--algo", default="ppo", choices=ALGOS)
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
    return ap


def check_args(args: argparse.Namespace, encoders: dict[str, str], extra: list[str]) -> RLConfig:
    """Every input checked before the first run starts (one-line UserError); the runs' shared config."""
    try:
        resolve(args.env)
    except ValueError:
        raise UserError("--env", args.env, f"an env preset ({', '.join(sorted(PRESETS))}) or a registered id") from None
    compare.check_encoders(encoders)
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", args.out, "a directory (it is a file)")
    # the arguments every train_rl.py run gets: parsed by its own parser now, not in each run's log
    return parse_train_args(["--env", args.env, "--algo", args.algo, "--out", str(args.out), *extra])


def run_one(label: str, encoder: str, seed: int, args: argparse.Namespace, extra: list[str]) -> Path:
    run_dir = args.out / label / f"seed{seed}"
    argv = compare.train_args(args.env, args.algo, encoder, args.steps, seed, run_dir, args.finetune, extra)
    return compare.run_seed([*TRAIN_RL, *argv], run_dir, f"{label} seed {seed}")


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = build_parser().parse_args(argv)
    encoders = compare.parse_encoders(args.encoders)
    cfg = check_args(args, encoders, extra)
    # seed-major: a comparison stopped early has every encoder at the same seeds
    jobs = [(label, enc, seed) for seed in args.seeds for label, enc in encoders.items()]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        dirs = list(pool.map(lambda j: run_one(*j, args, extra), jobs))
    runs: dict[str, list[Path]] = {}
    for (label, _, _), d in zip(jobs, dirs, strict=True):
        runs.setdefault(label, []).append(d)
    preset, _, eval_kwargs = check_config(cfg)
    result = compare.aggregate(runs, args.threshold, random_action_success(preset.id, eval_kwargs))
    result.update(env=args.env, algo=args.algo, steps=args.steps, finetune=args.finetune, extra_args=extra)
    title = f"{args.algo} on {args.env}, {args.steps} steps, seeds {args.seeds}{' (finetune)' if args.finetune else ''}"
    compare.plot_comparison(result, args.out / "comparison.png", title)
    (args.out / "summary.json").write_text(json.dumps(result, indent=2))
    md = f"# {title}\n\n" + compare.table(result)
    (args.out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    run(main)
