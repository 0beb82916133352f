"""Supervised upper bound: cross-entropy on a category label the other learners never see.

``label`` names a per-frame label column of the frame cache (e.g. ``scene_class_id`` for
EgoMotion rooms, ``outcome/category_id`` for object datasets); frames without it (NaN) are skipped.

``labels_per_class`` > 0 trains on that many frames per class only, drawn from ``label_seed`` by
:func:`embodied.agents.labels.labelled_subset` (the "labels only" arm of Jayaraman & Grauman's
semi-supervised protocol: the same frames the slowness / equivariant + labels agents see).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset, Subset

from embodied.agents.base import Agent, AgentDataError, label_column
from embodied.agents.data import classify, open_all
from embodied.agents.labels import labelled_subset
from embodied.nn.heads import EmbeddingHead
from embodied.nn.losses import classification_loss
from embodied.nn.trunk import TrunkConfig


class SupervisedAgent(Agent):
    defaults: ClassVar[dict[str, Any]] = {
        "label": "scene_class_id",
        "num_classes": 0,  # 0: max label + 1
        "labels_per_class": 0,  # 0: every labelled frame; N: N frames per class (few-label protocol)
        "label_seed": 0,  # draws which N frames
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"frames": ("rgb",)}
    images_per_item: ClassVar[dict[str, int]] = {"frames": 1}

    @classmethod
    def required_keys(cls, task: str, options: dict[str, Any]) -> tuple[str, ...]:
        return ("rgb", {**cls.defaults, **options}["label"])

    @classmethod
    def open_datasets(cls, dirs: list[Path], options: dict[str, Any]) -> dict[str, Dataset]:
        o = {**cls.defaults, **options}
        label = o["label"]
        classify(dirs)
        ds = open_all("FrameDataset", [Path(d) for d in dirs], labels=[label])
        if o["labels_per_class"] > 0:
            return {"frames": labelled_subset(ds, label, o["labels_per_class"], o["label_seed"])[0]}
        y = label_column(ds, label)
        keep = torch.isfinite(y).nonzero().flatten()  # drop frames without the label
        if len(keep) == 0:
            raise AgentDataError(f"no frame of {[str(d) for d in dirs]} has a value of label {label!r}")
        if len(keep) < len(y):
            ds = Subset(ds, keep.tolist())
        return {"frames": ds}

    def __init__(self, trunk: TrunkConfig, options: dict[str, Any], datasets: dict[str, Dataset]) -> None:
        super().__init__(trunk, options, datasets)
        o = self.options
        n = int(o["num_classes"])
        if n <= 0:
            y = label_column(datasets["frames"], o["label"])
            n = int(y[torch.isfinite(y)].max()) + 1
        self.spec["num_classes"] = n
        self.classifier = EmbeddingHead(trunk.embed_dim, n)

    def loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y = batch[self.options["label"]]
        if not torch.isfinite(y).all():
            raise AgentDataError(f"a batch holds frames without label {self.options['label']!r} (NaN)")
        logits = self.classifier(self.embed(batch["rgb"]))
        loss = classification_loss(logits, y)
        acc = (logits.detach().argmax(1) == y.long()).float().mean()
        return loss, {"ce": loss.detach(), "acc": acc}
