#!/usr/bin/env python
"""The main job: collect -> train -> evaluate -> report, small by default (what `make demo` runs).

    python scripts/demo.py                     # <= 15 minutes on a 2-core CPU
    python scripts/demo.py --tiny              # a smoke run of every stage (the test suite uses it)
    python scripts/demo.py --full              # the real-size run, 3 seeds (a GPU machine with many cores)
    python scripts/demo.py --medium --stages collect train   # 10x small, curious + equivariant: a 15-min GPU lease
    python scripts/demo.py --full --stages collect            # ... in parts: then train, evaluate, videos
    python scripts/demo.py --full --stages train --jobs 4     # every stage resumes what is already done

Collects ego-motion video and grasp / push / poke / look interactions; trains
`curious`, `equivariant`, `slowness`, the few-label protocol of Jayaraman &
Grauman (`labels_only`, `slowness_labels`, `equivariant_labels`) and the scene
ceiling `supervised`, two at a time; evaluates them on held-out objects
(`centric`, `shape`, `context`) and unseen rooms (`scenes`) beside the floors
(pixels, colour histogram, the untrained `random` trunk) and the category
ceiling; writes the report, rollout videos and timings.json under --out.
"""

from __future__ import annotations

from pathlib import Path

from embodied.cli import ArgumentParser, UserError, catch_user_errors, positive_int, run
from embodied.pipeline import STAGES, main_job  # the job itself


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: runs/demo)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="real-size run (GPU machine)")
    size.add_argument("--medium", action="store_true", help="10x small's data, curious and equivariant (GPU lease)")
    size.add_argument("--tiny", action="store_true", help="smoke-size run of every stage")
    ap.add_argument("--workers", type=positive_int, help="collection workers (default: one per core)")
    ap.add_argument("--jobs", type=positive_int, help="trainings side by side (default: by size)")
    ap.add_argument("--seeds", type=positive_int, help="training seeds per agent (default: 1; 3 with --full)")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="stages to run (default: all)")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", args.out, "a directory (it is a file)")
    return main_job(
        args.out,
        "full" if args.full else "medium" if args.medium else "tiny" if args.tiny else "small",
        args.stages,
        workers=args.workers,
        jobs=args.jobs,
        seeds=args.seeds,
        train_script=Path(__file__).resolve().parent / "train.py",  # trainings side by side run it
    )


if __name__ == "__main__":
    run(main)
