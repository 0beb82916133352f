"""The main job: collect -> train -> evaluate -> report -> videos; what ``scripts/demo.py`` runs.

    main_job(Path("runs/demo"))                                     # the small run (`make demo`)
    main_job(Path("runs/demo"), size="tiny")                        # a smoke run of every stage
    main_job(Path("runs/full"), size="full", stages=["collect"])    # in parts; every stage resumes

Collects ego-motion video and grasp / push / poke / look interactions (:data:`SIZES`); trains every
agent of :data:`AGENTS` on them, ``jobs`` at a time; evaluates them with :func:`embodied.eval.run.evaluate`
beside the floors and the ceilings; writes the report, rollout videos and timings.json under ``out``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied.agents.registry import (
    apply_overrides,
    check_data,
    check_preset,
    load_preset,
    open_checked,
)
from embodied.checkpoint import TrainingError
from embodied.cli import UserError
from embodied.collect.policies import make_policy
from embodied.collect.report import collect_and_report
from embodied.collect.runner import CollectConfig
from embodied.envs.registry import PRESETS, make
from embodied.eval.run import evaluate
from embodied.train import train
from embodied.video import rollout, write_video

# data: preset -> (episodes, max steps per episode or None for the preset's, policy)
# steps: agent -> optimiser steps ("*": every agent not named); jobs: trainings run side by side
# (one torch thread each: on 2 cores two 1-thread runs beat one 2-thread run, see the closing note
# of the learners issue); seeds: training seeds per agent; eval: evaluate()'s keyword arguments.
SIZES: dict[str, dict[str, Any]] = {
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
        "eval": {"draws": 1, "sets": ["centric", "scenes"], "ceiling_steps": 4},
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
        "eval": {},
    },
    "medium": {  # a 15-minute lease of one GPU and 16 cores: 10x small's data, the two trunks RL compares
        "data": {
            "ego_room": (300, 100, "explore"),
            "grasp": (4000, None, "informed"),
            "push": (2000, None, "informed"),
            "poke": (2000, None, "informed"),
            "look": (6000, None, "random"),
        },
        "agents": ["curious", "equivariant"],
        "steps": {"*": 2000},
        "batch": 128,
        "jobs": 2,
        "seeds": 1,
        "video_steps": 120,
        "eval": {},
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
        "eval": {"full": True},
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
VIDEOS = (("ego_room", "explore"), ("grasp", "informed"), ("poke", "informed"))  # preset, policy


@dataclass(frozen=True)
class TrainRun:
    """One training of the main job: ``agent`` on the datasets ``data`` into the run directory ``out``."""

    agent: str
    data: list[Path]
    out: Path
    steps: int
    batch: int
    seed: int
    extra: list[str]  # preset overrides of the agent (AGENTS)

    @property
    def resume(self) -> bool:
        return (self.out / "checkpoint.pt").exists()

    def positional(self) -> list[str]:
        return [f"train.checkpoint_every={max(1, self.steps // 3)}", *self.extra]

    def flags(self) -> list[str]:
        """The run's flags as ``train.*`` overrides, as ``scripts/train.py`` applies them (after the others)."""
        values = {"steps": self.steps, "batch_size": self.batch, "num_workers": 0, "seed": self.seed}
        return [f"train.{k}={json.dumps(v)}" for k, v in values.items()]

    def argv(self) -> list[str]:
        """The ``scripts/train.py`` arguments of this run."""
        argv = ["--agent", self.agent, "--data", *map(str, self.data), "--out", str(self.out)]
        argv += [
            "--steps",
            str(self.steps),
            "--batch-size",
            str(self.batch),
            "--workers",
            "0",
            "--seed",
            str(self.seed),
        ]
        if self.resume:
            argv.append("--resume")
        return argv + self.positional()  # overrides last: one positional run


def stage(name: str) -> float:
    print(f"\n=== {name} ===", flush=True)
    return time.perf_counter()


def _failed(e: Exception) -> bool:
    """A stage's user-facing error as the scripts print it (one line on stderr); False."""
    print(f"error: {e}", file=sys.stderr)
    return False


def train_runs(cfg: dict, datasets: dict[str, Path], out: Path, seeds: int) -> list[TrainRun]:
    """Every agent of the size (``cfg["agents"]``, default all) and seed whose datasets exist."""
    runs = []
    for agent, (needs, extra) in AGENTS.items():
        if agent not in cfg.get("agents", AGENTS):
            continue
        if not all(n in datasets for n in needs):
            print(f"skipping {agent}: needs {needs}")
            continue
        for seed in range(seeds):
            run = out / "runs" / (agent if seeds == 1 else f"{agent}-seed{seed}")
            steps = cfg["steps"].get(agent, cfg["steps"]["*"])
            runs.append(TrainRun(agent, [datasets[n] for n in needs], run, steps, cfg["batch"], seed, list(extra)))
    return runs


def train_one(run: TrainRun) -> bool:
    """One training in this process, with a progress bar (what ``scripts/train.py`` does); True when done."""
    try:
        check_data(run.data)
        preset = apply_overrides(load_preset(run.agent), run.positional() + run.flags())
        check_preset(preset)
        datasets = open_checked(preset, run.data)
        result = train(preset, datasets, run.out, resume=run.resume, progress=True)
    except (UserError, TrainingError) as e:
        return _failed(e)
    print(json.dumps(result, indent=1))
    return True


def train_all(runs: list[TrainRun], jobs: int, train_script: Path | None = None) -> bool:
    """Train every run, one after the other in this process (``jobs`` 1), else ``jobs`` at a time as
    ``train_script`` (scripts/train.py) processes of one torch thread each, each one's output in
    ``<run>.log``. True when all succeeded."""
    if jobs == 1:
        return all(train_one(r) for r in runs)
    if train_script is None:
        raise ValueError(f"jobs = {jobs}: trainings side by side need train_script (scripts/train.py)")
    pending, active, ok = list(runs), [], True
    while pending or active:
        while pending and len(active) < jobs:
            run = pending.pop(0)
            run.out.parent.mkdir(parents=True, exist_ok=True)
            log = open(run.out.with_name(run.out.name + ".log"), "w")  # noqa: SIM115 - closed when the process ends
            cmd = [sys.executable, str(train_script), "--no-progress", *run.argv(), "train.threads=1"]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            active.append((run.out, proc, log, time.perf_counter()))
            print(f"  training {run.out.name} ...", flush=True)
        time.sleep(0.5)
        for item in list(active):
            out, proc, log, t0 = item
            if proc.poll() is None:
                continue
            active.remove(item)
            log.close()
            status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {log.name})"
            print(f"  {out.name}: {status} in {time.perf_counter() - t0:.0f} s", flush=True)
            ok &= proc.returncode == 0
    return ok


def collect_all(cfg: dict, datasets: dict[str, Path], workers: int | None) -> bool:
    """Collect (or finish collecting) every dataset of the size; True when all are complete."""
    for preset, dest in datasets.items():
        episodes, steps, policy = cfg["data"][preset]
        request = CollectConfig(
            env=preset, episodes=episodes, out=dest, policy=policy, resume=True, max_steps=steps, workers=workers
        )
        try:
            collect_and_report(request)
        except UserError as e:
            return _failed(e)
    return True


def evaluate_all(cfg: dict, runs: list[TrainRun], out: Path) -> bool:
    """The report on every trained run beside the floors and the ceiling, into ``out``; True when written."""
    try:
        evaluate([r.out for r in runs if (r.out / "checkpoint.pt").exists()], out, **cfg["eval"])
    except UserError as e:
        return _failed(e)
    return True


def video(preset: str, policy: str, steps: int, path: Path) -> Path:
    """``steps`` steps of ``policy`` in ``preset`` from seed 0, annotated, at 10 frames/s (as scripts/render.py)."""
    env = make(preset, render_mode="rgb_array")
    try:
        frames = rollout(env, make_policy(policy, env), steps=steps, seed=0)
    finally:
        env.close()
    path = write_video(frames, path, fps=10)
    print(f"wrote {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} to {path}")
    return path


def main_job(
    out: Path,
    size: str = "small",
    stages: Sequence[str] = STAGES,
    *,
    workers: int | None = None,
    jobs: int | None = None,
    seeds: int | None = None,
    train_script: Path | None = None,
) -> int:
    """Run ``stages`` of the main job at ``size`` (a key of :data:`SIZES`) into ``out``; 0 when every stage
    succeeded, 1 when one failed (its error printed). ``workers``: collection processes (default one
    per core); ``jobs``, ``seeds``: default by size; ``train_script``: see :func:`train_all`."""
    cfg = SIZES[size]
    out.mkdir(parents=True, exist_ok=True)
    t_start, timings = time.perf_counter(), {}
    datasets = {p: out / "data" / p for p in cfg["data"] if p in PRESETS}
    runs = train_runs(cfg, datasets, out, seeds or cfg["seeds"])
    work = {
        "collect": lambda: collect_all(cfg, datasets, workers),
        "train": lambda: train_all(runs, jobs or cfg["jobs"], train_script),
        "evaluate": lambda: evaluate_all(cfg, runs, out / "report"),
    }
    videos = []
    for name in STAGES:
        if name not in stages:
            continue
        t = stage(name)
        if name == "videos":
            videos = [
                video(p, pol, cfg["video_steps"], out / "videos" / f"{p}.mp4") for p, pol in VIDEOS if p in datasets
            ]
        elif not work[name]():
            return 1
        timings[name] = time.perf_counter() - t
    total = time.perf_counter() - t_start
    print("\n=== done ===")
    print("  ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"  total {total:.0f} s")
    (out / "timings.json").write_text(json.dumps({**timings, "total": total}, indent=1))
    print(f"report:   {out / 'report' / 'report.md'}")
    print(f"runs:     {', '.join(str(r.out) for r in runs)}")
    print(f"datasets: {', '.join(str(d) for d in datasets.values())}")
    print(f"videos:   {', '.join(str(v) for v in videos)}")
    return 0
