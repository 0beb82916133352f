#!/usr/bin/env python
"""The main job: collect -> train -> evaluate -> report, small by default (what `make demo` runs).

    python scripts/demo.py                 # about 10-15 minutes on a 2-core CPU
    python scripts/demo.py --full          # the real-size run (hours on a CPU; meant for a GPU machine)
    python scripts/demo.py --tiny          # a smoke run of every stage (the test suite uses it)

Collects ego-motion video and grasp / push / poke / look interactions, trains
`equivariant`, `slowness`, `curious` and `supervised` (scene labels) briefly,
evaluates them on held-out objects (sets `centric`, `shape`, `context`) and
unseen rooms (`scenes`) beside the floors (pixels, colour histogram, the
untrained `random` trunk) and the category ceiling, and writes the report and
rollout videos under --out.
"""

from __future__ import annotations

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

# name: (episodes, max steps per episode or None for the preset's, policy)
SIZES = {
    "tiny": {
        "data": {
            "ego_room": (4, 30, "explore"),
            "grasp": (24, None, "informed"),
            "push": (12, None, "informed"),
            "poke": (12, None, "informed"),
            "look": (6, None, "random"),
        },
        "steps": 4,
        "batch": 16,
        "video_steps": 10,
        "eval": ["--draws", "1", "--sets", "centric", "scenes", "--ceiling-steps", "4"],
    },
    "small": {
        "data": {
            "ego_room": (30, 100, "explore"),
            "grasp": (400, None, "informed"),
            "push": (200, None, "informed"),
            "poke": (200, None, "informed"),
            "look": (60, None, "random"),
        },
        "steps": 300,
        "batch": 64,
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
        "steps": 20000,
        "batch": 128,
        "video_steps": 300,
        "eval": ["--full"],
    },
}
# agent: datasets it trains on, extra overrides
AGENTS = {
    "equivariant": (["ego_room"], []),
    "slowness": (["ego_room"], []),
    "curious": (["grasp", "push", "poke", "look"], []),
    "supervised": (["ego_room"], ['options.label="scene_class_id"']),
}


def stage(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.perf_counter()


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: runs/demo)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="real-size run (GPU machine)")
    size.add_argument("--tiny", action="store_true", help="smoke-size run of every stage")
    ap.add_argument("--workers", type=positive_int, help="collection workers (default: one per core)")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", args.out, "a directory (it is a file)")
    cfg = SIZES["full" if args.full else "tiny" if args.tiny else "small"]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings = {}

    t = stage("collect")
    datasets = {}
    for preset, (episodes, steps, policy) in cfg["data"].items():
        if preset not in PRESETS:
            print(f"skipping {preset}: no preset envs/{preset}.toml")
            continue
        dest = out / "data" / preset
        argv_c = ["--env", preset, "--episodes", str(episodes), "--out", str(dest), "--policy", policy, "--resume"]
        if steps:
            argv_c += ["--max-steps", str(steps)]
        if args.workers:
            argv_c += ["--workers", str(args.workers)]
        if collect_cli.main(argv_c) != 0:
            return 1
        datasets[preset] = dest
    timings["collect"] = time.perf_counter() - t

    t = stage("train")
    runs = []
    for agent, (needs, extra) in AGENTS.items():
        if not all(n in datasets for n in needs):
            print(f"skipping {agent}: needs {needs}")
            continue
        run = out / "runs" / agent
        argv_t = [
            "--agent",
            agent,
            "--data",
            *[str(datasets[n]) for n in needs],
            "--out",
            str(run),
            "--steps",
            str(cfg["steps"]),
            "--batch-size",
            str(cfg["batch"]),
            "--workers",
            "0",
            "train.checkpoint_every=100",
            *extra,
        ]
        if (run / "checkpoint.pt").exists():
            argv_t.append("--resume")
        if train_cli.main(argv_t) != 0:
            return 1
        runs.append(run)
    timings["train"] = time.perf_counter() - t

    t = stage("evaluate")
    if evaluate_cli.main(["--ckpt", *map(str, runs), "--out", str(out / "report"), *cfg["eval"]]) != 0:
        return 1
    timings["evaluate"] = time.perf_counter() - t

    t = stage("videos")
    videos = []
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
    print(f"report:   {out / 'report' / 'report.md'}")
    print(f"runs:     {', '.join(str(r) for r in runs)}")
    print(f"datasets: {', '.join(str(d) for d in datasets.values())}")
    print(f"videos:   {', '.join(str(v) for v in videos)}")
    return 0


if __name__ == "__main__":
    run(main)
