#!/usr/bin/env python
"""Learner speed: training samples/s per agent, the trunk alone, and the data pipeline alone.

    python scripts/bench_train.py            # full
    python scripts/bench_train.py --quick    # fewer steps, for a smoke check

``run(quick)`` returns a flat {name: number} dict (scripts/bench.py calls it). Everything runs at
64 px with each preset's default trunk (width 32, depth 5, D 128). Agents train through the real
``embodied.train.train`` loop on in-memory synthetic data; the data pipeline is timed separately
over an on-disk synthetic dataset read by the real readers, so the two can be compared: the
pipeline must deliver more images/s than the trunk consumes. On CUDA the trunk runs with bf16
autocast and channels_last (goal: >= 100k img/s on one H100 / H200-class GPU: ~0.16 GFLOP per
training image, under 3 % of its bf16 peak). ``<device>/pipeline_over_<agent>``: reader items/s
(4 workers) over that agent's samples/s (goal >= 3: the pipeline keeps up). ``ddp/*``: the equivariant agent's samples/s
in 1 and in 2 CPU processes (DistributedDataParallel, gloo, the same global batch of 64, one thread
each) and their ratio, one run of each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

AGENTS = ["equivariant", "slowness", "curious", "simclr", "supervised"]


def trunk_img_s(device: str, batch: int, steps: int, bf16: bool) -> float:
    """Forward + backward + AdamW step of the default trunk on 64 px uint8 images, images/s."""
    from embodied.nn.trunk import Preprocess, Trunk, TrunkConfig

    cfg = TrunkConfig()
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    net = Trunk(cfg).to(dev)
    pre = Preprocess(cfg.image_size, channels_last=cuda)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8, device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and bf16)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = net(pre(x)).float().pow(2).mean()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def agent_speed(
    name: str, device: str, batch: int, steps: int, workers: int, out: Path, threads: int = 0
) -> tuple[float, float]:
    """(samples/s, trunk images/s) of ``name`` in the real training loop, timed after ``steps`` warm-up steps."""
    from embodied.agents import apply_overrides, load_preset
    from embodied.agents.synthetic import synthetic_datasets
    from embodied.train import train

    n = max(4 * batch, 256)
    data = synthetic_datasets(name, n=n, size=64)
    preset = apply_overrides(
        load_preset(name),
        [
            f"train.steps={2 * steps}",
            f"train.batch_size={batch}",
            f"train.log_every={steps}",
            f"train.checkpoint_every={10 * steps}",
            f"train.num_workers={workers}",
            f"train.device='{device}'",
            f"train.threads={threads}",
        ],
    )
    train(preset, data, out / name, progress=False)
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["samples_per_s"], rows[-1]["images_per_s"]


def _ego_dataset(root: Path, episodes: int, steps: int, size: int = 64) -> Path:
    from embodied.data.episode import EpisodeRecorder
    from embodied.data.manifest import SCHEMA_VERSION, save_manifest, shard_name
    from embodied.data.shards import write_shard

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    eps = []
    for e in range(episodes):
        rec = EpisodeRecorder(seed=e, index=e)

        def frame() -> dict:
            rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            return {"rgb": rgb, "motor": rng.normal(size=4).astype(np.float32)}

        rec.start(frame(), {"scene_class_id": e % 5})
        for t in range(1, steps + 1):
            rec.add(0, frame(), 0.0, False, t == steps, {"scene_class_id": e % 5})
        eps.append(rec.episode)
    info = write_shard(root / shard_name(0), eps)
    entry = {"index": 0, "name": shard_name(0), "frames": sum(ep.frames for ep in eps), **info}
    config = {"env_id": "embodied/EgoMotion-v0"}
    save_manifest(root, {"schema_version": SCHEMA_VERSION, "config": config, "complete": True, "shards": [entry]})
    return root


def pipeline_items_s(ds: torch.utils.data.Dataset, batch: int, batches: int, workers: int, pin: bool) -> float:
    """Items/s a DataLoader delivers (shuffled, pinned when ``pin``), after one warm-up batch."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        pin_memory=pin,
        drop_last=True,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        n += len(next(iter(b.values())))
    return n / (time.perf_counter() - t)


DDP_RANK = """
import os, sys, torch
from embodied.agents import apply_overrides, load_preset
from embodied.agents.synthetic import synthetic_datasets
from embodied.train import train
name, batch, steps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
preset = apply_overrides(load_preset(name), [
    f"train.steps={2 * steps}", f"train.batch_size={batch}", f"train.log_every={steps}",
    f"train.checkpoint_every={10 * steps}", "train.num_workers=0", "train.device='cpu'", "train.threads=1",
])
train(preset, synthetic_datasets(name, n=max(4 * batch, 256), size=64), out, progress=False)
"""


def ddp_samples_s(name: str, world: int, batch: int, steps: int, out: Path) -> float:
    """Training samples/s (global batch ``batch``, 1 thread per process) of ``name`` in ``world`` CPU processes
    (gloo; each started with torchrun's environment, so train() runs as under torchrun), timed after
    ``steps`` warm-up steps: rank 0's last metrics row (items of every rank)."""
    import os
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for rank in range(world):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if world > 1:
            env |= {"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank)}
            env |= {"LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        cmd = [sys.executable, "-c", DDP_RANK, name, str(batch), str(steps), str(out)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
    if any(p.wait() for p in procs):
        raise RuntimeError(f"a training process of the {world}-process benchmark failed")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["samples_per_s"]


def run(quick: bool = False) -> dict[str, float]:
    """Every number of this benchmark, keyed ``<section>/<what>`` (units in the key)."""
    from embodied.data.readers import EgoPairDataset, FrameDataset

    res: dict[str, float] = {}
    cuda = torch.cuda.is_available()
    steps = 2 if quick else 5
    threads = torch.get_num_threads()
    res["cpu/threads"] = float(threads)
    res["cpu/trunk_img_s"] = trunk_img_s("cpu", 64, steps, bf16=False)
    # one thread as well: on a CPU shared with busy processes OpenMP threads spin against them
    torch.set_num_threads(1)
    res["cpu1/trunk_img_s"] = trunk_img_s("cpu", 64, steps, bf16=False)
    with tempfile.TemporaryDirectory() as tmp:
        for name in AGENTS:  # agents with one thread: comparable between runs on a noisy machine
            s, i = agent_speed(name, "cpu", 32, steps, 0, Path(tmp) / "cpu", threads=1)
            res[f"cpu1/{name}_samples_s"], res[f"cpu1/{name}_img_s"] = s, i
        torch.set_num_threads(threads)
        if cuda:
            gsteps = 10 if quick else 50
            res["cuda/trunk_img_s_bf16"] = trunk_img_s("cuda", 1024, gsteps, bf16=True)
            res["cuda/trunk_img_s_fp32"] = trunk_img_s("cuda", 1024, gsteps, bf16=False)
            for name in AGENTS:
                s, i = agent_speed(name, "cuda", 256, gsteps, 8, Path(tmp) / "cuda")
                res[f"cuda/{name}_samples_s"], res[f"cuda/{name}_img_s"] = s, i
        # 1 vs 2 CPU processes (DDP, gloo), one run of each, same global batch: the scaling of torchrun training
        ddp_steps = 3 if quick else 10
        for world in (1, 2):
            res[f"ddp/equivariant_samples_s_{world}proc"] = ddp_samples_s(
                "equivariant", world, 64, ddp_steps, Path(tmp) / f"ddp{world}"
            )
        res["ddp/scaling_2proc_over_1proc"] = (
            res["ddp/equivariant_samples_s_2proc"] / res["ddp/equivariant_samples_s_1proc"]
        )
        root = _ego_dataset(Path(tmp) / "ego", episodes=8 if quick else 20, steps=99)
        frames, pairs = FrameDataset(root, labels=[]), EgoPairDataset(root)
        batches = 10 if quick else 40
        for workers in (0, 4):
            res[f"data/frames_items_s_w{workers}"] = pipeline_items_s(frames, 256, batches, workers, cuda)
            res[f"data/ego_pairs_items_s_w{workers}"] = pipeline_items_s(pairs, 256, batches, workers, cuda)
    # does the data pipeline keep up? reader items/s over what the trainer consumes (goal >= 3)
    for dev in ("cpu1", "cuda") if cuda else ("cpu1",):
        res[f"{dev}/pipeline_over_equivariant"] = res["data/ego_pairs_items_s_w4"] / res[f"{dev}/equivariant_samples_s"]
        res[f"{dev}/pipeline_over_supervised"] = res["data/frames_items_s_w4"] / res[f"{dev}/supervised_samples_s"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    for k, v in run(args.quick).items():
        print(f"{k:34s} {v:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
