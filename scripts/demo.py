#!/usr/bin/env python
"""The main job: collect -> train -> evaluate -> report, small by default (what `make demo` runs).

    python scripts/demo.py                     # <= 15 minutes on a 2-core CPU
    python scripts/demo.py --tiny              # a smoke run of every stage (the test suite uses it)
    python scripts/demo.py --full              # the real-size run, 3 seeds (a GPU machine with many cores)
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

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling scripts are driven as modules

import collect as collect_cli  # noqa: E402
import evaluate as evaluate_cli  # noqa: E402
import render as render_cli  # noqa: E402
import train as train_cli  # noqa: E402

from embodied.cli import ArgumentParser, UserError, catch_user_errors, positive_int, run  # noqa: E402
from embodied.envs.registry import PRESETS  # noqa: E402

# data: preset -> (episodes, max steps per episode or None for the preset's, policy)
# steps: agent -> optimiser steps ("*": every agent not named); jobs: trainings run side by side
# (one torch thread each: on 2 cores two 1-thread runs beat one 2-thread run, see the closing note
# of the learners issue); seeds: training seeds per agent.
SIZES = {
    "tiny": {
        "data": {
            "ego_room": (4, 30, "explore"),
            "grasp": (24, None, "informed"),
            "push": (12, None, "informed"),
            "poke": (12, None, "informed"),
            "look": (6, None, "random"),
        },
        "steps": {"*": 4},
        "batch": 16,
        "jobs": 2,
        "seeds": 1,
        "video_steps": 10,
        "eval": ["--draws", "1", "--sets", "centric", "scenes", "--ceiling-steps", "4"],
    },
    "small": {
        "data": {
            "ego_room": (30, 100, "explore"),
            "grasp": (400, None, "informed"),
            "push": (200, None, "informed"),
            "poke": (200, None, "informed"),
            "look": (600, None, "random"),
        },
        "steps": {"*": 300},
        "batch": 64,
        "jobs": 2,
        "seeds": 1,
        "video_steps": 120,
        "eval": [],
    },
    "full": {
        "data": {
            "ego_room": (2000, 200, "explore"),
            "grasp": (40000, None, "informed"),
            "push": (10000, None, "informed"),
            "poke": (10000, None, "informed"),
            "look": (4000, None, "random"),
        },
        "steps": {"*": 20000},
        "batch": 128,
        "jobs": 1,
        "seeds": 3,
        "video_steps": 300,
        "eval": ["--full"],
    },
}
# agent preset: datasets it trains on, extra overrides
AGENTS = {
    "curious": (["grasp", "push", "poke", "look"], []),
    "equivariant": (["ego_room"], []),
    "slowness": (["ego_room"], []),
    "supervised": (["ego_room"], ['options.label="scene_class_id"']),  # the scene ceiling
    # Jayaraman & Grauman's protocol: N labelled frames per class, alone or beside the unsupervised loss
    "labels_only": (["ego_room"], []),
    "slowness_labels": (["ego_room"], []),
    "equivariant_labels": (["ego_room"], []),
}
STAGES = ("collect", "train", "evaluate", "videos")


def stage(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.perf_counter()


def train_runs(cfg: dict, datasets: dict[str, Path], out: Path, seeds: int) -> list[tuple[Path, list[str]]]:
    """(run directory, train.py arguments) for every agent and seed whose datasets exist."""
    runs = []
    for agent, (needs, extra) in AGENTS.items():
        if not all(n in datasets for n in needs):
            print(f"skipping {agent}: needs {needs}")
            continue
        for seed in range(seeds):
            run = out / "runs" / (agent if seeds == 1 else f"{agent}-seed{seed}")
            steps = cfg["steps"].get(agent, cfg["steps"]["*"])
            argv = ["--agent", agent, "--data", *[str(datasets[n]) for n in needs], "--out", str(run)]
            argv += ["--steps", str(steps), "--batch-size", str(cfg["batch"]), "--workers", "0", "--seed", str(seed)]
            if (run / "checkpoint.pt").exists():
                argv.append("--resume")
            argv += [f"train.checkpoint_every={max(1, steps // 3)}", *extra]  # overrides last: one positional run
            runs.append((run, argv))
    return runs


def train_all(runs: list[tuple[Path, list[str]]], jobs: int) -> bool:
    """Train every run, ``jobs`` at a time as separate processes (one torch thread each when jobs > 1);
    each run's output goes to ``<run>.log``. True when all succeeded."""
    if jobs == 1:
        return all(train_cli.main(argv) == 0 for _, argv in runs)
    script = Path(__file__).resolve().parent / "train.py"
    pending, active, ok = list(runs), [], True
    while pending or active:
        while pending and len(active) < jobs:
            run, argv = pending.pop(0)
            run.parent.mkdir(parents=True, exist_ok=True)
            log = open(run.with_name(run.name + ".log"), "w")  # noqa: SIM115 - closed when the process ends
            cmd = [sys.executable, str(script), "--no-progress", *argv, "train.threads=1"]
            active.append((run, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, time.perf_counter()))
            print(f"  training {run.name} ...", flush=True)
        time.sleep(0.5)
        for item in list(active):
            run, proc, log, t0 = item
            if proc.poll() is None:
                continue
            active.remove(item)
            log.close()
            status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {log.name})"
            print(f"  {run.name}: {status} in {time.perf_counter() - t0:.0f} s", flush=True)
            ok &= proc.returncode == 0
    return ok


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: runs/demo)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="real-size run (GPU machine)")
    size.add_argument("--tiny", action="store_true", help="smoke-size run of every stage")
    ap.add_argument("--workers", type=positive_int, help="collection workers (default: one per core)")
    ap.add_argument("--jobs", type=positive_int, help="trainings side by side (default: by size)")
    ap.add_argument("--seeds", type=positive_int, help="training seeds per agent (default: 1; 3 with --full)")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="stages to run (default: all)")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", args.out, "a directory (it is a file)")
    cfg = SIZES["full" if args.full else "tiny" if args.tiny else "small"]
    seeds = args.seeds or cfg["seeds"]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings = {}
    datasets = {p: out / "data" / p for p in cfg["data"] if p in PRESETS}
    runs = train_runs(cfg, datasets, out, seeds)

    if "collect" in args.stages:
        t = stage("collect")
        for preset, dest in datasets.items():
            episodes, steps, policy = cfg["data"][preset]
            argv_c = ["--env", preset, "--episodes", str(episodes), "--out", str(dest), "--policy", policy, "--resume"]
            if steps:
                argv_c += ["--max-steps", str(steps)]
            if args.workers:
                argv_c += ["--workers", str(args.workers)]
            if collect_cli.main(argv_c) != 0:
                return 1
        timings["collect"] = time.perf_counter() - t

    if "train" in args.stages:
        t = stage("train")
        if not train_all(runs, args.jobs or cfg["jobs"]):
            return 1
        timings["train"] = time.perf_counter() - t

    if "evaluate" in args.stages:
        t = stage("evaluate")
        ckpts = [str(r) for r, _ in runs if (r / "checkpoint.pt").exists()]
        if evaluate_cli.main(["--ckpt", *ckpts, "--out", str(out / "report"), *cfg["eval"]]) != 0:
            return 1
        timings["evaluate"] = time.perf_counter() - t

    videos = []
    if "videos" in args.stages:
        t = stage("videos")
        for preset, policy in (("ego_room", "explore"), ("grasp", "informed"), ("poke", "informed")):
            if preset in datasets:
                path = out / "videos" / f"{preset}.mp4"
                render_cli.main(
                    ["--env", preset, "--policy", policy, "--steps", str(cfg["video_steps"]), "--out", str(path)]
                )
                videos.append(path)
        timings["videos"] = time.perf_counter() - t

    total = time.perf_counter() - t_start
    print("\n=== done ===")
    print("  ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"  total {total:.0f} s")
    (out / "timings.json").write_text(json.dumps({**timings, "total": total}, indent=1))
    print(f"report:   {out / 'report' / 'report.md'}")
    print(f"runs:     {', '.join(str(r) for r, _ in runs)}")
    print(f"datasets: {', '.join(str(d) for d in datasets.values())}")
    print(f"videos:   {', '.join(str(v) for v in videos)}")
    return 0


if __name__ == "__main__":
    run(main)
