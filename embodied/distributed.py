"""Training on several processes with ``torchrun``: process group, rank helpers, sharded batches.

How to run (one machine, N processes; on CUDA one GPU per process, ``cuda:LOCAL_RANK``)::

    torchrun --nproc-per-node 2 scripts/train.py --agent equivariant --data data/ego_room --out runs/eq
    torchrun --nproc-per-node 2 scripts/train.py ... --out runs/eq --resume     # every rank resumes
    # without torchrun: one process, exactly as before (no process group, same bytes)

``scripts/train.py`` is launched by ``torchrun`` (or anything that sets ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`embodied.train.train` then opens the
process group (:func:`process_group`: gloo on CPU, NCCL on CUDA, chosen from the device) and
wraps the agent in ``DistributedDataParallel``. What holds:

- ``train.batch_size`` is the **global** batch: each rank trains on ``batch_size / world_size``
  items per task per step (a one-line error when it does not divide: :func:`check_batch`).
- Data order: every rank draws the same global batch of indices (``StepBatches``: batch b is a
  fixed function of (seed, task, b), one permutation per epoch) and takes its contiguous
  ``1 / world_size`` share (:class:`ShardedBatches`). The union over ranks is the single-process
  run's batch, whatever the world size, so ``--resume`` stays exact and may change the world size.
- Gradients: DDP averages them over ranks (the mean over the global batch, for losses that are
  means over the batch). Multi-task agents (``curious``) backpropagate every task but the last
  under ``no_sync()``: one all-reduce per optimiser step.
- State outside autograd: module buffers (batch-norm running statistics, constant target
  scalers) are broadcast from rank 0 at every forward (DDP's default). Two agents' statistics
  follow the **global** batch instead (:func:`global_statistics`), so they are the single-process
  ones on every rank: the equivariant agent's ridge maps (``EquivarianceMaps``, ``fit="ridge"``)
  fold every rank's pairs into their closed-form fit (gathered in rank order: the global batch's
  order), and ``LossBalancer``'s running means see the mean of the ranks' losses.
- Batch norm stays per rank (each rank normalises by its own share of the batch; running
  statistics come from rank 0): losses then differ slightly from a single-process run with the
  same global batch. ``trunk.norm="group"`` (or "none") has no batch statistics and matches it to
  float precision. Contrastive losses over the batch (SimCLR, curious' identity NT-Xent) see
  only the rank's share as negatives.
- Random draws inside losses use the same generator state on every rank (same seed; restored
  from the one checkpoint on resume): rank r draws for its items what rank 0 draws for its own
  (e.g. the equivariant agent's class negatives, curious' recolouring), not what one process
  would draw for those items, so such losses match a single-process run in distribution only.
- Datasets: every node needs them; ``scripts/train.py`` has each node's local rank 0 open them
  first (a frame cache is built once per node), then the node's other ranks.
- Not covered: per-process RNG streams, SyncBatchNorm.
- Rank 0 alone writes checkpoint.pt, metrics.jsonl, tb/, loss_curve.png and preset.json, and
  shows the progress bar; metrics rows hold the mean over ranks (the global batch) and
  ``world_size`` / ``backend``; the checkpoint's ``distributed`` = {"world_size", "backend"}
  (absent for a single-process run). The checkpoint is the unwrapped agent's (no ``module.``
  prefixes): ``embodied.load_encoder`` reads it as any other.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from embodied.cli import UserError

ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def launched() -> bool:
    """True when started by torchrun (or an equivalent launcher): ``WORLD_SIZE`` and ``RANK`` are set."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def env_world_size() -> int:
    """The world size the launcher set (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def env_rank() -> int:
    """This process's global rank as the launcher set it (0 without one)."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def env_local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``; 0 without a launcher)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def env_local_world_size() -> int:
    """Processes on this node (``LOCAL_WORLD_SIZE``, else the world size)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", str(env_world_size()))) if launched() else 1


def check_batch(batch_size: int, world_size: int | None = None) -> None:
    """One-line UserError unless the global ``train.batch_size`` divides by the world size."""
    world = env_world_size() if world_size is None else world_size
    if batch_size % world:
        raise UserError("train.batch_size", batch_size, f"a multiple of the world size {world}")


@dataclass(frozen=True)
class World:
    """The process group a run trains in: ``size`` 1 and backend None for a single process."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def meta(self) -> dict[str, object]:
        """What a run records about its processes: {"world_size", "backend"}."""
        return {"world_size": self.size, "backend": self.backend}


SINGLE = World()


def device_for(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` under a launcher when training on CUDA, else ``device``."""
    if launched() and device.type == "cuda":
        return torch.device("cuda", env_local_rank())
    return device


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """The :class:`World` of this process: under a launcher, a process group (NCCL on CUDA, gloo
    otherwise) opened here and destroyed on exit (one already open is used and left open);
    without one, :data:`SINGLE` and nothing else."""
    if not launched() and not dist.is_initialized():
        yield SINGLE
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    mine = not dist.is_initialized()
    if mine:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    world = World(dist.get_world_size(), dist.get_rank(), env_local_rank(), dist.get_backend())
    try:
        yield world
    except BaseException:
        if mine and dist.is_initialized():
            dist.destroy_process_group()
        raise
    if mine and dist.is_initialized():
        # no rank tears the group down while another is still in a collective (rank 0 writes the last
        # checkpoint after the loop): gloo aborted a rank that left first, under load
        dist.barrier()
        dist.destroy_process_group()


class ShardedBatches(Sampler[list[int]]):
    """This rank's contiguous ``1 / world`` share of each global batch of ``batches`` (a StepBatches).

    The global batches (hence the per-epoch permutations) are the same on every rank; rank r takes
    items ``[r * k, (r + 1) * k)`` of each, k = global batch / world. ValueError when a global batch
    does not divide (``check_batch`` catches the preset's case first; a dataset smaller than the
    batch shrinks it).
    """

    def __init__(self, batches: Sampler[list[int]], size: int, rank: int, world: int) -> None:
        if size % world:
            why = f"a multiple of the world size {world} (a dataset smaller than train.batch_size: its length)"
            raise UserError("global batch", size, why)
        self.batches, self.rank, self.world, self.share = batches, rank, world, size // world

    def __iter__(self):  # noqa: ANN204
        k, r = self.share, self.rank
        for batch in self.batches:
            yield batch[r * k : (r + 1) * k]


class LossModule(nn.Module):
    """``forward(task, batch) = agent.loss(task, batch)``: what DDP wraps, so that every task's loss
    passes through DDP's forward (buffer broadcast, gradient hooks). Its state is the agent's."""

    def __init__(self, agent: nn.Module) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, task: str, batch: dict[str, torch.Tensor]):  # noqa: ANN201
        return self.agent.loss(task, batch)  # type: ignore[operator]


def wrap(agent: nn.Module, world: World, device: torch.device) -> nn.Module:
    """The agent's losses under DistributedDataParallel. Buffers are broadcast from rank 0 at every forward
    (DDP's default); with several tasks a forward leaves the other tasks' heads unused, so DDP looks for them."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    several = len(getattr(agent, "tasks", ())) > 1
    return DistributedDataParallel(LossModule(agent), device_ids=ids, find_unused_parameters=several)


def _gather_rows(x: torch.Tensor) -> torch.Tensor:
    """(n, ...) on every rank -> (world * n, ...): the ranks' rows in rank order (equal n on every rank)."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def global_ridge_maps(agent: nn.Module) -> int:
    """Have every ridge-fit ``EquivarianceMaps`` of ``agent`` fold the global batch's pairs: each rank's
    (z_i, z_j, g) are gathered (rank order = the global batch's order) before the closed-form refit, so
    the maps are identical on every rank and equal the single-process ones. Returns how many were set."""
    from embodied.nn.heads import EquivarianceMaps

    maps = [m for m in agent.modules() if isinstance(m, EquivarianceMaps) and m.fit == "ridge"]
    for module in maps:
        module.gather = _gather_rows
    return len(maps)


def global_loss_balancers(agent: nn.Module) -> int:
    """Have every ``LossBalancer`` of ``agent`` keep its running means of the **global** batch's loss: the
    loss it sees carries the mean over ranks as its value (one scalar all-reduce per task and step) and
    this rank's loss as its gradient, so the statistics, and the scale they give, are the single-process
    ones on every rank. Only in training mode (the statistics are updated then). Returns how many were set."""
    from embodied.nn.balance import LossBalancer

    balancers = [m for m in agent.modules() if isinstance(m, LossBalancer)]
    for module in balancers:
        module.reduce = mean_over_ranks
    return len(balancers)


def global_statistics(agent: nn.Module) -> None:
    """The agent's statistics kept outside autograd follow the global batch: :func:`global_ridge_maps`
    and :func:`global_loss_balancers` (other buffers: broadcast from rank 0 by DDP)."""
    global_ridge_maps(agent)
    global_loss_balancers(agent)


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over ranks (a new tensor; ``x`` unchanged)."""
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    y = x.detach().clone()
    dist.all_reduce(y)
    return y


def min_over_ranks(x: torch.Tensor) -> torch.Tensor:
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.MIN)
    return y


__all__ = [
    "SINGLE",
    "LossModule",
    "ShardedBatches",
    "World",
    "check_batch",
    "device_for",
    "env_local_rank",
    "env_local_world_size",
    "env_rank",
    "env_world_size",
    "global_loss_balancers",
    "global_ridge_maps",
    "global_statistics",
    "launched",
    "mean_over_ranks",
    "min_over_ranks",
    "process_group",
    "sum_over_ranks",
    "wrap",
]
