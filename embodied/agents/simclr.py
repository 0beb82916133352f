"""SimCLR (Chen et al. 2020) on the same frames: two augmentations of each frame, NT-Xent on a projection.

A strong label-free baseline that needs no motor signal; augmentations run batched on the
training device (``embodied.nn.augment``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from embodied.agents.base import Agent
from embodied.agents.data import classify, open_all
from embodied.nn.augment import simclr_augment
from embodied.nn.heads import EmbeddingHead
from embodied.nn.losses import nt_xent
from embodied.nn.trunk import TrunkConfig


class SimCLRAgent(Agent):
    defaults: ClassVar[dict[str, Any]] = {"temperature": 0.5, "proj_dim": 128, "proj_hidden": 512, "strength": 1.0}
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"frames": ("rgb",)}
    images_per_item: ClassVar[dict[str, int]] = {"frames": 2}

    @classmethod
    def open_datasets(cls, dirs: list[Path], options: dict[str, Any]) -> dict[str, Dataset]:
        classify(dirs)  # every directory must be a known dataset; frames of any env will do
        return {"frames": open_all("FrameDataset", [Path(d) for d in dirs], labels=[])}

    def __init__(self, trunk: TrunkConfig, options: dict[str, Any], datasets: dict[str, Dataset]) -> None:
        super().__init__(trunk, options, datasets)
        o = self.options
        self.projection = EmbeddingHead(trunk.embed_dim, o["proj_dim"], hidden=o["proj_hidden"])

    def loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = batch["rgb"].permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W) in [0, 1]
        views = torch.cat([simclr_augment(x, self.options["strength"]), simclr_augment(x, self.options["strength"])])
        p = self.projection(self.embed(views))
        n = len(x)
        loss = nt_xent(p[:n], p[n:], self.options["temperature"])
        return loss, {"nt_xent": loss.detach()}
