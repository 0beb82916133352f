"""What every learner is: a trunk, its heads, the datasets it trains on, and one loss per task.

The training loop (``embodied.train``) knows nothing about any method: each step it takes
one batch per task of ``agent.tasks`` in turn, backpropagates ``agent.loss(task, batch)``
for each, and applies the trunk's accumulated gradients once (Pinto et al.'s schedule; a
single-task agent is the special case of one task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, Subset

from embodied.config import check_keys
from embodied.nn.trunk import Preprocess, Trunk, TrunkConfig


class AgentDataError(ValueError):
    """The data given to an agent cannot train it (missing task, empty, corrupt, lacking keys)."""


class Agent(nn.Module):
    """Base class. Subclasses set ``defaults`` (their options), ``keys`` (item keys per task) and implement
    ``open_datasets`` and ``loss``; ``__init__`` builds their heads from ``self.options`` and the datasets."""

    #: option name -> default; presets may set only these
    defaults: ClassVar[dict[str, Any]] = {}
    #: task -> item keys a batch of that task must carry
    keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: task -> images per item that go through the trunk (for img/s)
    images_per_item: ClassVar[dict[str, int]] = {}

    def __init__(self, trunk: TrunkConfig, options: dict[str, Any], datasets: dict[str, Dataset]) -> None:
        super().__init__()
        check_keys(options, self.defaults, prefix="options.", expected=f"an option of {type(self).__name__}")
        self.options = {**self.defaults, **options}
        self.trunk_config = trunk
        self.trunk = Trunk(trunk)
        self.preprocess = Preprocess(trunk.image_size)
        self.tasks: tuple[str, ...] = tuple(datasets)
        #: plain numbers the agent derived from its data (classes, action size...), saved in checkpoints
        self.spec: dict[str, Any] = {}

    @classmethod
    def open_datasets(cls, dirs: list[Path], options: dict[str, Any]) -> dict[str, Dataset]:
        """Dataset directories -> {task: torch Dataset}. Raises AgentDataError naming what is missing."""
        raise NotImplementedError

    @classmethod
    def required_keys(cls, task: str, options: dict[str, Any]) -> tuple[str, ...]:
        """Item keys a dataset of ``task`` must carry under these options."""
        return cls.keys.get(task, ())

    def loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One task's batch (tensors on the model's device) -> (scalar loss, {metric: detached scalar})."""
        raise NotImplementedError

    def validation_metrics(self) -> dict[str, float]:
        """Numbers measured on held-out data of the agent's own (e.g. the equivariance gain on held-out
        pairs), logged with every metrics row. Called by the training loop in eval mode, without
        gradients, on the model's device; the base agent has none."""
        return {}

    def set_channels_last(self, on: bool) -> None:
        """Have preprocessing emit channels_last tensors (faster convs on CUDA)."""
        self.preprocess.channels_last = on

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) or float (N, 3, H, W) -> (N, D)."""
        return self.trunk(self.preprocess(images))

    def features(self, images: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """uint8 (N, H, W, 3) or float (N, 3, H, W) -> the trunk's named maps (see ``Trunk.features``)."""
        return self.trunk.features(self.preprocess(images), upto=upto)


def label_column(ds: Dataset, name: str) -> torch.Tensor:
    """(N,) float64 values of label ``name`` for every item, read from the frame cache when there is one."""
    if isinstance(ds, ConcatDataset):
        return torch.cat([label_column(d, name) for d in ds.datasets])
    if isinstance(ds, Subset):
        return label_column(ds.dataset, name)[torch.as_tensor(ds.indices, dtype=torch.long)]
    cache = getattr(ds, "cache", None)
    if cache is not None and name in getattr(cache, "labels", {}):
        return torch.as_tensor(cache.labels[name], dtype=torch.float64)
    return torch.stack([torch.as_tensor(ds[i][name], dtype=torch.float64) for i in range(len(ds))])
