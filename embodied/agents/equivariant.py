"""Ego-motion equivariance (Jayaraman & Grauman, ICCV 2015) and its slowness / DrLIM baseline.

Frame pairs (x_i, x_j) of egocentric video within ``window`` steps carry a motion class g
(k-means on the summed odometry). Equivariance learns one linear map M_g per class so that
z(x_j) ~ M_g z(x_i); slowness is the same contrastive loss with M_g = I. Negatives: each
pair's x_j replaced by another frame of the batch (a random frame, since batches are shuffled),
and, for equivariance, M_g replaced by a wrong class's map M_g'.

Optional (off by default, as an ablation in the paper): a supervised term with weight
``label_weight`` on ``labels_per_class`` labelled frames per class of label ``label``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from embodied.agents.base import Agent, AgentDataError, label_column
from embodied.agents.data import classify, open_all, require
from embodied.nn.heads import EmbeddingHead, EquivarianceMaps
from embodied.nn.losses import classification_loss, equivariance_loss
from embodied.nn.trunk import TrunkConfig


class _OffsetClasses(Dataset):
    """An ego-pair dataset with its motion classes shifted by ``offset`` (classes of several datasets differ)."""

    def __init__(self, ds: Dataset, offset: int) -> None:
        self.ds, self.offset = ds, offset

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = dict(self.ds[i])
        item["g"] = item["g"] + self.offset
        return item


def motion_classes(ds: Dataset) -> int:
    """G, the number of motion classes of an ego-pair dataset (``.clusters.k``, else max g + 1)."""
    clusters = getattr(ds, "clusters", None)
    if clusters is not None:
        return int(clusters.k)
    if hasattr(ds, "g"):
        return int(max(ds.g)) + 1
    return int(max(int(ds[i]["g"]) for i in range(len(ds)))) + 1  # type: ignore[arg-type]


def labelled_subset(ds: Dataset, label: str, per_class: int, seed: int = 0) -> tuple[Dataset, int]:
    """The first ``per_class`` frames (in a seeded shuffle) of every class of ``label``; returns (subset, C)."""
    y = label_column(ds, label)
    ok = torch.isfinite(y)
    if not ok.any():
        raise AgentDataError(f"label {label!r} has no values")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    counts: dict[int, int] = {}
    keep = []
    for i in order.tolist():
        if ok[i]:
            c = int(y[i])
            if counts.get(c, 0) < per_class:
                counts[c] = counts.get(c, 0) + 1
                keep.append(i)
    return Subset(ds, sorted(keep)), int(y[ok].max()) + 1


class EquivariantAgent(Agent):
    defaults: ClassVar[dict[str, Any]] = {
        "k": 6,  # motion classes per dataset
        "window": 3,  # pairs at most this many frames apart
        "margin": 1.0,  # negatives pushed beyond this distance
        "frame_negatives": True,
        "class_negatives": True,
        "label_weight": 0.0,  # lambda of the optional supervised term (0: unsupervised)
        "label": "scene_class_id",
        "labels_per_class": 6,
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"ego": ("x_i", "x_j", "g"), "labels": ("rgb",)}
    images_per_item: ClassVar[dict[str, int]] = {"ego": 2, "labels": 1}
    #: slowness sets this False: M_g = I
    use_maps: ClassVar[bool] = True

    @classmethod
    def open_datasets(cls, dirs: list[Path], options: dict[str, Any]) -> dict[str, Dataset]:
        o = {**cls.defaults, **options}
        ego = require(classify(dirs), "ego", cls.__name__.removesuffix("Agent").lower(), "ego-motion pair")
        parts = [open_all("EgoPairDataset", [d], window=o["window"], k=o["k"]) for d in ego]
        out: dict[str, Dataset] = {"ego": cls._join_pairs(parts)}
        if cls.use_maps and o["label_weight"] > 0:
            frames = open_all("FrameDataset", ego, labels=[o["label"]])
            out["labels"], _ = labelled_subset(frames, o["label"], o["labels_per_class"])
        return out

    @staticmethod
    def _join_pairs(parts: list[Dataset]) -> Dataset:
        """Concatenate ego-pair datasets, keeping their motion classes apart (dataset b's g offset by G_a)."""
        if len(parts) == 1:
            return parts[0]
        joined, offset = [], 0
        for p in parts:
            joined.append(_OffsetClasses(p, offset))
            offset += motion_classes(p)
        out = ConcatDataset(joined)
        out.n_classes = offset  # type: ignore[attr-defined]
        return out

    def __init__(self, trunk: TrunkConfig, options: dict[str, Any], datasets: dict[str, Dataset]) -> None:
        super().__init__(trunk, options, datasets)
        o = self.options
        self.maps: EquivarianceMaps | None = None
        if self.use_maps:
            ego = datasets["ego"]
            g = int(getattr(ego, "n_classes", None) or motion_classes(ego))
            self.spec["motion_classes"] = g
            self.maps = EquivarianceMaps(g, trunk.embed_dim)
        if "labels" in datasets:
            n = label_column(datasets["labels"], o["label"])
            self.spec["label_classes"] = int(n[torch.isfinite(n)].max()) + 1
            self.classifier = EmbeddingHead(trunk.embed_dim, self.spec["label_classes"])

    def loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if task == "labels":
            y = batch[self.options["label"]]
            loss = classification_loss(self.classifier(self.embed(batch["rgb"])), y)
            return self.options["label_weight"] * loss, {"ce": loss.detach()}
        n = len(batch["x_i"])
        # one trunk pass over both frames: twice the batch, half the kernel launches
        z = self.embed(torch.cat([batch["x_i"], batch["x_j"]])).float()
        z_i, z_j = z[:n], z[n:]
        g = batch["g"].long()
        maps = self.maps.weight.float() if self.maps is not None else None
        neg_frames = z_j.roll(1, 0) if self.options["frame_negatives"] and n > 1 else None
        neg_g = None
        if maps is not None and self.options["class_negatives"] and len(maps) > 1:
            # a uniformly drawn *other* class: g + r mod G with r in 1..G-1
            neg_g = (g + torch.randint(1, len(maps), g.shape, device=g.device)) % len(maps)
        out = equivariance_loss(z_i, z_j, g, maps, self.options["margin"], neg_frames, neg_g)
        return out.pop("loss"), out


class SlownessAgent(EquivariantAgent):
    """Temporal slowness / DrLIM: frames close in time together, random frames beyond the margin (M_g = I)."""

    defaults: ClassVar[dict[str, Any]] = {"k": 6, "window": 3, "margin": 1.0, "frame_negatives": True}
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"ego": ("x_i", "x_j")}
    use_maps: ClassVar[bool] = False
