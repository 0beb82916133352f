"""The training loop, shared by every agent.

One step = one batch per task of ``agent.tasks`` in turn, each task's loss backpropagated
into the shared trunk, then one optimiser step on the accumulated gradients (Pinto et al.'s
multi-task schedule; single-task agents are the one-task case): :func:`train_step`.
:func:`train` is setup, restore, then a loop of ``train_step``, a metrics row every ``log_every``
steps (:class:`embodied.metrics_log.MetricsLog`) and a checkpoint every ``checkpoint_every``
(:mod:`embodied.checkpoint`, which documents the format).

Device: CUDA when present (bf16 autocast, channels_last), else CPU. Data: one DataLoader
per task, with workers and pinned memory, reading batches in an order fixed by (seed, task,
batch index), so ``resume`` continues exactly where a run stopped.

Outputs in ``out``::

    checkpoint.pt     latest checkpoint (at step 0, every ``checkpoint_every`` steps and at the end; atomic, so
                      a kill at any moment leaves one that ``resume`` continues to the same final weights)
    metrics.jsonl     one JSON object per ``log_every`` steps (its fields: :mod:`embodied.metrics_log`)
    tb/               TensorBoard event files
    loss_curve.png    loss per task against step, drawn at the end
    preset.json       the resolved preset this run trains

Several processes: launched by ``torchrun`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` set), the
loop trains under DistributedDataParallel, ``train.batch_size`` being the global batch; rank 0
alone writes the outputs above. :mod:`embodied.distributed` says what holds and how to run it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from embodied import distributed
from embodied.agents.base import Agent
from embodied.agents.registry import AgentPreset, build_agent
from embodied.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    Checkpointer,
    TrainingError,
    load_checkpoint,
    remove_stale_temporaries,
    restore_rng,
    resume_checkpoint,
    save_checkpoint,
    write_text_atomic,
)
from embodied.metrics_log import MetricsLog, read_metrics
from embodied.train_config import TrainConfig, check_device_name

__all__ = [  # the loop's own names, and the checkpoint / metrics names it has always offered
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "StepBatches",
    "TrainConfig",
    "TrainingError",
    "check_device_name",
    "load_checkpoint",
    "read_metrics",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "train",
    "train_step",
    "trunk_gradient",
    "write_text_atomic",
]


class StepBatches(Sampler[list[int]]):
    """Endless batches of indices: batch b is a fixed function of (seed, b), so any step can be resumed.

    Each epoch is a fresh permutation (seeded by seed and epoch) cut into full batches of
    ``min(batch_size, n)``; iteration starts at batch ``start``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0) -> None:
        self.n, self.batch = n, min(batch_size, n)
        self.per_epoch = n // self.batch
        self.seed, self.start = seed, start

    def __iter__(self):  # noqa: ANN204
        b = self.start
        while True:
            epoch, first = divmod(b, self.per_epoch)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for k in range(first, self.per_epoch):
                yield perm[k * self.batch : (k + 1) * self.batch].tolist()
                b += 1


def resolve_device(name: str) -> torch.device:
    """The torch device of ``train.device``: "auto" is CUDA when present, else CPU; TrainingError for absent CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (``seed mod 2**32``) and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch with its tensors on ``device`` (asynchronous copies from pinned memory); other values as they are."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _loaders(
    datasets: dict[str, Dataset], cfg: TrainConfig, start: int, pin: bool, world: distributed.World = distributed.SINGLE
) -> dict[str, Any]:
    """One endless iterator of batches per task, from batch ``start`` on; workers split over tasks (>= 1 each).

    With several processes each rank reads its share of every global batch (:class:`distributed.ShardedBatches`)
    and the node's cores are split between its ranks."""
    cores = os.cpu_count() or 1
    if world.distributed:
        cores = max(1, cores // distributed.env_local_world_size())
    workers = min(cfg.num_workers, cores)  # more processes than cores only thrash
    per_task = 0 if workers <= 0 else max(1, workers // max(1, len(datasets)))
    out = {}
    for t, (task, ds) in enumerate(datasets.items()):
        sampler: Sampler[list[int]] = StepBatches(len(ds), cfg.batch_size, cfg.seed * 1000 + t, start)  # type: ignore[arg-type]
        if world.distributed:
            sampler = distributed.ShardedBatches(sampler, sampler.batch, world.rank, world.size)  # type: ignore[attr-defined]
        loader = DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=per_task,
            pin_memory=pin,
            persistent_workers=per_task > 0,
            prefetch_factor=4 if per_task > 0 else None,
            # its own generator: creating the iterator must not draw from the global RNG (exact resume)
            generator=torch.Generator().manual_seed(cfg.seed * 1000 + t),
        )
        out[task] = iter(loader)
    return out


def _lr(cfg: TrainConfig, step: int) -> float:
    """Learning rate of 0-based ``step``: linear warm-up to ``cfg.lr`` over ``cfg.warmup`` steps, then constant."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else cfg.lr


def _optimizer(agent: Agent, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (or SGD with momentum) over the agent's trainable parameters."""
    params = [p for p in agent.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def trunk_gradient(trunk: torch.nn.Module) -> torch.Tensor:
    """(P,) the trunk's accumulated parameter gradients, flattened (zeros where none yet)."""
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten() for p in trunk.parameters()]
    )


def _setup(
    preset: AgentPreset, datasets: dict[str, Dataset], cfg: TrainConfig, device: torch.device, ckpt: dict | None
) -> tuple[Agent, torch.optim.Optimizer, int, int]:
    """(agent, optimiser, step, samples): built from ``cfg.seed``, then restored from ``ckpt`` when resuming."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)  # before building: the initial weights follow the seed
    agent = build_agent(preset, datasets).to(device)
    step, samples = 0, 0
    opt = _optimizer(agent, cfg)
    if ckpt is not None:
        agent.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, samples = int(ckpt["step"]), int(ckpt["samples"])
        restore_rng(ckpt["rng"], cuda=device.type == "cuda")
    if device.type == "cuda" and cfg.channels_last:
        agent = agent.to(memory_format=torch.channels_last)
        agent.set_channels_last(True)
    if cfg.compile:
        agent.trunk = torch.compile(agent.trunk)  # type: ignore[assignment]
    return agent, opt, step, samples


def train_step(
    agent: Agent,
    opt: torch.optim.Optimizer,
    batches: Mapping[str, Iterator[dict[str, torch.Tensor]]],
    cfg: TrainConfig,
    step: int,
    log: MetricsLog,
    device: torch.device,
    amp: AbstractContextManager,
    ddp: torch.nn.Module | None = None,
) -> int:
    """Optimiser step ``step`` (0-based): one batch per task, gradients summed over tasks, one update.

    batches: {task: endless iterator of batches} (dicts of (B, ...) tensors), moved to ``device``; each
    task's loss computed under ``amp`` (bf16 autocast, or a null context). Each task's detached loss
    and metrics go to ``log`` (no device sync); on the steps a metrics row closes, multi-task agents
    also log each task's share of the trunk's gradient. Returns the items trained on (sum of the B).

    ddp: the agent's losses under DistributedDataParallel (:func:`embodied.distributed.wrap`), or None
    for one process. Every task but the last backpropagates under ``no_sync()``: one gradient all-reduce
    per step; the logged gradient norms are then those of the global batch (one more all-reduce, on the
    steps that measure them). Returns this rank's items.
    """
    for group in opt.param_groups:
        group["lr"] = _lr(cfg, step)
    opt.zero_grad(set_to_none=True)
    measure = len(agent.tasks) > 1 and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps)
    before, items = None, 0
    local: list[torch.Tensor] = []  # ddp: each task's gradient on the trunk, this rank's, before the sync
    for i, task in enumerate(agent.tasks):
        batch = _to(next(batches[task]), device)
        n = len(next(iter(batch.values())))
        if ddp is None:
            with amp:
                loss, metrics = agent.loss(task, batch)
            loss.backward()
        else:
            last = i == len(agent.tasks) - 1
            with contextlib.nullcontext() if last else ddp.no_sync():  # type: ignore[operator]
                with amp:
                    loss, metrics = ddp(task, batch)
                loss.backward()
        if measure:  # the trunk's gradient so far, less the previous tasks': this task's
            now = trunk_gradient(agent.trunk)
            if ddp is None:
                log.record_grad_norm(task, float((now - before).norm() if before is not None else now.norm()))
            else:
                local.append(now - before if before is not None else now)
            before = now
        log.record(task, step, loss.detach().float(), metrics, n, n * agent.images_per_item.get(task, 1))
        items += n
    if measure and ddp is not None:
        # after the last backward, ``now`` is the synced total (mean over ranks); the earlier tasks' are local
        earlier = distributed.mean_over_ranks(torch.stack(local[:-1]))
        norms = [*earlier.norm(dim=1).tolist(), float((now - earlier.sum(0)).norm())]
        for task, norm in zip(agent.tasks, norms, strict=True):
            log.record_grad_norm(task, norm)
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(agent.parameters(), cfg.grad_clip)
    opt.step()
    log.end_step()
    return items


def _log_row(log: MetricsLog, agent: Agent, bar: tqdm, step: int, samples: int, saver: Checkpointer) -> dict | None:
    """The metrics row closing here (None when no step since the last), shown on the progress bar."""

    def validation() -> dict[str, Any]:
        agent.eval()
        with torch.no_grad():
            metrics = agent.validation_metrics()
        agent.train()
        return metrics

    row = log.row(step, samples, last_good=saver.describe(), validation=validation)
    if row is not None:
        bar.set_postfix(loss=f"{row['loss']:.4g}", samples_s=f"{row['samples_per_s']:.0f}")
    return row


def train(
    preset: AgentPreset,
    datasets: dict[str, Dataset],
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the agent of ``preset`` on ``datasets`` ({task: Dataset}), writing into ``out``.

    resume: continue from ``out/checkpoint.pt`` up to ``train.steps`` (error when absent); without it
    an existing checkpoint in ``out`` is an error rather than silently overwritten.
    Returns {"step", "checkpoint", "samples", "samples_per_s", "images_per_s", "loss"} for this call
    (samples: items in all; samples_per_s over this call, images_per_s and loss of the last row).
    Raises TrainingError on a non-finite loss (the last good checkpoint is kept) and AgentDataError
    (a ValueError) on unusable data.
    """
    cfg = TrainConfig.from_dict(preset.train)
    out = Path(out)
    device = distributed.device_for(resolve_device(cfg.device))  # cuda:LOCAL_RANK under torchrun
    with distributed.process_group(device) as world:
        return _train(preset, datasets, out, resume, progress, cfg, device, world)


def _train(
    preset: AgentPreset,
    datasets: dict[str, Dataset],
    out: Path,
    resume: bool,
    progress: bool,
    cfg: TrainConfig,
    device: torch.device,
    world: distributed.World,
) -> dict[str, Any]:
    """:func:`train` in the process group ``world`` (:data:`distributed.SINGLE` for one process)."""
    if world.distributed:
        distributed.check_batch(cfg.batch_size, world.size)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)  # writes in flight when a previous run was killed
    cuda = device.type == "cuda"
    ckpt = resume_checkpoint(out / CHECKPOINT_NAME, preset, resume)  # None: a fresh run
    world.barrier()  # every rank has read the checkpoint (or seen none) before rank 0 writes one
    agent, opt, step, samples = _setup(preset, datasets, cfg, device, ckpt)
    ddp = None
    if world.distributed and agent.tasks:  # (an agent without tasks, e.g. random, trains no step)
        distributed.global_statistics(agent)
        ddp = distributed.wrap(agent, world, device)
    if world.main:
        write_text_atomic(out / "preset.json", json.dumps(preset.to_dict(), indent=1))
    resumed_at = step if ckpt is not None else None
    log = MetricsLog(out, agent.tasks, device, resume_step=resumed_at, lr_at=functools.partial(_lr, cfg), world=world)
    meta = {"distributed": world.meta()} if world.distributed else None
    saver = Checkpointer(
        out / CHECKPOINT_NAME, preset, agent, opt, cuda, saved_step=resumed_at, writes=world.main, meta=meta
    )
    if ckpt is None:
        saver.save(step, samples, None)  # step 0: from here on, a kill at any moment leaves one to resume

    batches = _loaders(datasets, cfg, step, pin=cuda, world=world)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and cfg.amp else contextlib.nullcontext()
    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=not (progress and world.main), dynamic_ncols=True)
    start_samples, last_row = samples, (ckpt["metrics"] if ckpt is not None else None)
    log.start()
    agent.train()
    try:
        while step < cfg.steps and agent.tasks:
            samples += train_step(agent, opt, batches, cfg, step, log, device, amp, ddp) * world.size
            step += 1
            bar.update(1)
            saves = step % cfg.checkpoint_every == 0 and step != cfg.steps
            if step % cfg.log_every == 0 or step == cfg.steps or saves:  # never checkpoint past a non-finite loss
                last_row = _log_row(log, agent, bar, step, samples, saver) or last_row
            if saves:
                saver.save(step, samples, last_row)
        last_row = _log_row(log, agent, bar, step, samples, saver) or last_row
        saver.save(step, samples, last_row)
    finally:
        bar.close()
        log.close()
        del batches
    log.plot(out / "loss_curve.png")
    trained, elapsed, last = samples - start_samples, log.elapsed(), last_row or {}
    speed = trained / elapsed if trained else 0.0
    result = {"step": step, "checkpoint": str(saver.path), "samples": samples, "samples_per_s": speed}
    return result | {"images_per_s": last.get("images_per_s", 0.0), "loss": last.get("loss", float("nan"))}
