"""The ``[train]`` table of an agent preset: :class:`TrainConfig`, checked value by value.

Its own module so that the preset registry (``embodied.agents.registry``) checks a preset's
``[train]`` table without importing the training loop, and the loop imports the registry:
no import cycle, lazy or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from embodied.cli import UserError
from embodied.config import check_fields


def check_device_name(name: str) -> None:
    """UserError unless ``name`` is "auto" or a torch device string (cpu, cuda, cuda:1, mps...)."""
    if name == "auto":
        return
    try:
        torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise UserError("train.device", name, "auto, cpu, cuda, cuda:<index> or another torch device") from None


@dataclass(frozen=True)
class TrainConfig:
    """The ``[train]`` table of a preset.

    steps: optimiser steps in total (a resumed run continues up to it).
    batch_size: items per task per step, the global batch: under torchrun each of the W processes trains
        batch_size / W of them (a multiple of W; see :mod:`embodied.distributed`).
    lr, weight_decay: AdamW (or SGD with ``momentum``).
    warmup: steps of linear learning-rate warm-up (then constant: a schedule that does not depend
        on ``steps`` keeps "N steps, resume, N more" identical to "2N steps").
    grad_clip: max global gradient norm (0: off). checkpoint_every, log_every: in steps.
    num_workers: DataLoader worker processes in all (split over tasks). device: "auto", "cpu", "cuda"...
    amp: bf16 autocast on CUDA. channels_last: NHWC activations on CUDA. compile: torch.compile the trunk.
    threads: torch intra-op threads (0: torch's default, one per core). On a CPU shared with other busy
        processes, OpenMP threads spin-wait on each other: 1 thread measured ~10x faster than 2 there.
    """

    steps: int = 10000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    warmup: int = 100
    grad_clip: float = 0.0
    checkpoint_every: int = 1000
    log_every: int = 20
    num_workers: int = 4
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    threads: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrainConfig:
        """The config of a ``[train]`` table; a one-line ``UserError`` (a ValueError) names a bad value."""
        raw = dict(raw or {})
        check_fields(cls, raw, "train")
        cfg = cls(**raw)
        for name, lo in (("batch_size", 1), ("checkpoint_every", 1), ("log_every", 1)):
            if getattr(cfg, name) < lo:
                raise UserError(f"train.{name}", getattr(cfg, name), f"an integer >= {lo}")
        for name in ("steps", "warmup", "num_workers", "seed", "threads"):
            if getattr(cfg, name) < 0:
                raise UserError(f"train.{name}", getattr(cfg, name), "an integer >= 0")
        if not cfg.lr > 0:
            raise UserError("train.lr", cfg.lr, "a finite number > 0")
        for name in ("weight_decay", "grad_clip"):
            if getattr(cfg, name) < 0:
                raise UserError(f"train.{name}", getattr(cfg, name), "a finite number >= 0")
        if not 0 <= cfg.momentum < 1:
            raise UserError("train.momentum", cfg.momentum, "a number in [0, 1)")
        if cfg.optimizer not in ("adamw", "sgd"):
            raise UserError("train.optimizer", cfg.optimizer, "one of adamw, sgd")
        check_device_name(cfg.device)
        return cfg
