"""Ego-motion equivariance (Jayaraman & Grauman, ICCV 2015) and its slowness / DrLIM baseline.

Frame pairs (x_i, x_j) of egocentric video within ``window`` steps carry a motion class g
(k-means on the summed odometry, informative channels only: see :mod:`embodied.data.motion`).
Equivariance learns one linear map M_g per class so that z(x_j) ~ M_g z(x_i); slowness is the
same contrastive loss with M_g = I. Negatives: each pair's x_j replaced by another frame of the
batch (a random frame, since batches are shuffled), and, for equivariance, M_g replaced by a
wrong class's map M_g'.

The embedding is L2-normalised before the loss (``normalize``): z lives on the unit sphere, so
distances are in [0, 2] and the margin (default 1) is a fixed fraction of that scale; the trunk
cannot meet the margin by growing the embedding's norm. Class negatives are pushed beyond
``class_margin`` x the batch's mean ||z_i - z_j|| (a wrong map should miss by about one motion,
not by a fixed 1: with the fixed margin the maps met it by moving away from the identity and
predicted held-out pairs worse than no map).

Maps (``map_fit``): "ridge" (default) refits each M_g after every batch in closed form, the
least-squares map of the class's recent pairs shrunk towards I (:class:`EquivarianceMaps`);
"sgd" learns them by gradient with the trunk, as in the paper. Measured on a 10-episode
EgoMotion set (150 steps, batch 64, CPU): held-out equivariance gain with "sgd" maps went
-0.27, +0.01, -0.03, -0.13, -0.03, -0.09 (every 25 steps; the maps lag the features, and at a
10x faster rate they chased the negatives, down to -0.8), with "ridge" maps it stays positive.

Semi-supervised protocol of the paper (off by default): with ``label_weight`` > 0 a second task
"labels" trains a linear classifier on ``labels_per_class`` frames per class of label ``label``
(drawn by :func:`embodied.agents.labels.labelled_subset` from ``label_seed``); the total loss
is ``label_weight * CE + unsupervised_weight * L_equivariance`` (``unsupervised_weight`` is the
paper's lambda).

Health (``validation_metrics``): a fraction ``holdout`` of the episodes (at least one, spread
evenly over the data) is kept out of training; on up to ``val_pairs`` of their pairs the agent
reports ``equivariance_gain`` = 1 - mean||M_g z_i - z_j|| / mean||z_i - z_j|| (> 0: the maps
explain motion) and ``slowness_gain`` = 1 - mean||z_i - z_j|| / mean||z_i - z_k|| (z_k: a random
frame). For slowness M_g = I, so its equivariance gain is 0 by definition and reported as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset, Subset

from embodied.agents.base import Agent, label_column
from embodied.agents.data import classify, open_all, require
from embodied.agents.labels import labelled_subset
from embodied.nn.heads import EmbeddingHead, EquivarianceMaps
from embodied.nn.losses import classification_loss, equivariance_gain, equivariance_loss, pair_distance
from embodied.nn.trunk import TrunkConfig

__all__ = [
    "EquivariantAgent",
    "SlownessAgent",
    "hold_out_episodes",
    "labelled_subset",
    "motion_classes",
    "pair_groups",
]


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


def pair_groups(ds: Dataset) -> np.ndarray | None:
    """(N,) int64: the episode each pair comes from, distinct across concatenated datasets; None if unknown.

    Read from ``EgoPairDataset.episode``, or from items' "episode" tensors (synthetic data)."""
    if isinstance(ds, _OffsetClasses):
        return pair_groups(ds.ds)
    if isinstance(ds, Subset):
        inner = pair_groups(ds.dataset)
        return None if inner is None else inner[np.asarray(ds.indices, dtype=np.int64)]
    if isinstance(ds, ConcatDataset):
        parts, offset = [], 0
        for d in ds.datasets:
            gr = pair_groups(d)
            if gr is None:
                return None
            parts.append(gr + offset)
            offset += int(gr.max()) + 1 if len(gr) else 0
        return np.concatenate(parts) if parts else None
    episode = getattr(ds, "episode", None)
    if isinstance(episode, np.ndarray) and len(episode) == len(ds):  # type: ignore[arg-type]
        return episode.astype(np.int64)
    tensors = getattr(ds, "tensors", None)
    if isinstance(tensors, dict) and "episode" in tensors:
        return tensors["episode"].numpy().astype(np.int64)
    return None


def hold_out_episodes(ds: Dataset, fraction: float) -> Dataset:
    """Split pairs by episode: returns the training pairs as a Subset whose ``heldout`` attribute holds
    the pairs of round(fraction * episodes) episodes (at least one, evenly spread; none, and ``ds``
    itself, when there are fewer than two episodes, ``fraction`` is 0 or episodes are unknown)."""
    groups = pair_groups(ds)
    if groups is None or fraction <= 0:
        return ds
    unique = np.unique(groups)
    if len(unique) < 2:
        return ds
    n_out = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    held = unique[np.round(np.linspace(0, len(unique) - 1, n_out)).astype(np.int64)]
    out = np.isin(groups, held)
    train = Subset(ds, np.flatnonzero(~out).tolist())
    train.heldout = Subset(ds, np.flatnonzero(out).tolist())  # type: ignore[attr-defined]
    for name in ("n_classes", "clusters"):
        if hasattr(ds, name):
            setattr(train, name, getattr(ds, name))
    return train


class EquivariantAgent(Agent):
    defaults: ClassVar[dict[str, Any]] = {
        "k": 6,  # motion classes per dataset
        "window": 3,  # pairs at most this many frames apart (chosen by measurement: EgoPairDataset)
        "margin": 1.0,  # negatives pushed beyond this distance (unit-sphere units when normalize)
        "normalize": True,  # L2-normalise z before the loss
        "frame_negatives": True,
        "class_negatives": True,
        # wrong maps pushed beyond class_margin x the batch's mean ||z_i - z_j|| (<= 0: beyond ``margin``)
        "class_margin": 1.0,
        "map_fit": "ridge",  # "ridge": closed-form maps of recent pairs; "sgd": maps learned by the loss
        "map_ridge": 0.05,  # ridge: shrinkage towards I per pair
        "map_memory": 0.98,  # ridge: decay per step of the pair statistics (~50 steps of memory)
        "unsupervised_weight": 1.0,  # lambda: weight of the equivariance loss
        "label_weight": 0.0,  # weight of the supervised term on a few labels (0: unsupervised)
        "label": "scene_class_id",
        "labels_per_class": 6,
        "label_seed": 0,  # draws which frames are labelled
        "holdout": 0.1,  # fraction of episodes held out for validation_metrics
        "val_pairs": 256,  # held-out pairs the gains are measured on
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"ego": ("x_i", "x_j", "g"), "labels": ("rgb",)}
    images_per_item: ClassVar[dict[str, int]] = {"ego": 2, "labels": 1}
    #: slowness sets this False: M_g = I
    use_maps: ClassVar[bool] = True

    @classmethod
    def required_keys(cls, task: str, options: dict[str, Any]) -> tuple[str, ...]:
        if task == "labels":
            return ("rgb", {**cls.defaults, **options}["label"])
        return cls.keys.get(task, ())

    @classmethod
    def open_datasets(cls, dirs: list[Path], options: dict[str, Any]) -> dict[str, Dataset]:
        o = {**cls.defaults, **options}
        ego = require(classify(dirs), "ego", cls.__name__.removesuffix("Agent").lower(), "ego-motion pair")
        parts = [open_all("EgoPairDataset", [d], window=o["window"], k=o["k"]) for d in ego]
        out: dict[str, Dataset] = {"ego": hold_out_episodes(cls._join_pairs(parts), o["holdout"])}
        if o["label_weight"] > 0:
            frames = open_all("FrameDataset", ego, labels=[o["label"]])
            out["labels"], _ = labelled_subset(frames, o["label"], o["labels_per_class"], o["label_seed"])
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
        ego = datasets.get("ego")
        if self.use_maps and ego is not None:
            g = int(getattr(ego, "n_classes", None) or motion_classes(ego))
            self.spec["motion_classes"] = g
            self.maps = EquivarianceMaps(g, trunk.embed_dim, fit=o["map_fit"])
        if "labels" in datasets:
            n = label_column(datasets["labels"], o["label"])
            self.spec["label_classes"] = int(n[torch.isfinite(n)].max()) + 1
            self.spec["labelled_frames"] = len(datasets["labels"])  # type: ignore[arg-type]
            self.classifier = EmbeddingHead(trunk.embed_dim, self.spec["label_classes"])
        self._val: dict[str, torch.Tensor] | None = self._validation_pairs(ego)
        if self._val is not None:
            self.spec["val_pairs"] = len(self._val["g"])

    def _validation_pairs(self, ego: Dataset | None) -> dict[str, torch.Tensor] | None:
        """Up to ``val_pairs`` held-out pairs (evenly spaced over ``ego.heldout``), read once: x_i, x_j, g."""
        held = getattr(ego, "heldout", None)
        if held is None or len(held) == 0 or self.options["val_pairs"] <= 0:
            return None
        n = min(len(held), int(self.options["val_pairs"]))
        idx = np.unique(np.round(np.linspace(0, len(held) - 1, n)).astype(np.int64))
        items = [held[int(i)] for i in idx]
        zero = torch.zeros((), dtype=torch.int64)
        return {
            "x_i": torch.stack([it["x_i"] for it in items]),
            "x_j": torch.stack([it["x_j"] for it in items]),
            "g": torch.stack([torch.as_tensor(it.get("g", zero)) for it in items]),
        }

    def _z(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> (N, D) float32 embedding, L2-normalised when ``normalize``."""
        z = self.embed(images).float()
        return F.normalize(z, dim=-1) if self.options["normalize"] else z

    def loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if task == "labels":
            y = batch[self.options["label"]]
            loss = classification_loss(self.classifier(self.embed(batch["rgb"])), y)
            return self.options["label_weight"] * loss, {"ce": loss.detach()}
        n = len(batch["x_i"])
        # one trunk pass over both frames: twice the batch, half the kernel launches
        z = self._z(torch.cat([batch["x_i"], batch["x_j"]]))
        z_i, z_j = z[:n], z[n:]
        g = batch["g"].long()
        if self.maps is not None and self.maps.fit == "ridge" and self.training:
            self.maps.update(z_i, z_j, g, self.options["map_memory"], self.options["map_ridge"])
        maps = self.maps.weight.float() if self.maps is not None else None
        neg_frames = z_j.roll(1, 0) if self.options["frame_negatives"] and n > 1 else None
        neg_g = None
        if maps is not None and self.options["class_negatives"] and len(maps) > 1:
            # a uniformly drawn *other* class: g + r mod G with r in 1..G-1
            neg_g = (g + torch.randint(1, len(maps), g.shape, device=g.device)) % len(maps)
        class_margin = None
        if neg_g is not None and self.options["class_margin"] > 0:
            class_margin = self.options["class_margin"] * pair_distance(z_i, z_j).detach().mean()
        out = equivariance_loss(z_i, z_j, g, maps, self.options["margin"], neg_frames, neg_g, class_margin)
        if self.maps is not None:
            out["map_drift"] = self.maps.drift()
        return self.options["unsupervised_weight"] * out.pop("loss"), out

    def validation_metrics(self) -> dict[str, float]:
        """Gains on the held-out pairs (see the module docstring); {} without held-out pairs.

        Keys: equivariance_gain, slowness_gain, dist_mapped, dist_identity, dist_random (unit-sphere
        distances when ``normalize``). Call in eval mode under ``torch.no_grad`` (the training loop does).
        """
        if self._val is None:
            return {}
        device = next(self.parameters()).device
        zs = []
        for key in ("x_i", "x_j"):
            x = self._val[key]
            zs.append(torch.cat([self._z(x[s : s + 128].to(device)) for s in range(0, len(x), 128)]))
        g = self._val["g"].to(device).long()
        maps = self.maps.weight.float() if self.maps is not None else None
        return {k: float(v) for k, v in equivariance_gain(zs[0], zs[1], g, maps).items()}


class SlownessAgent(EquivariantAgent):
    """Temporal slowness / DrLIM: frames close in time together, random frames beyond the margin (M_g = I).

    Takes the same few-label options as the equivariant agent (slowness + labels in the paper)."""

    defaults: ClassVar[dict[str, Any]] = {
        k: v
        for k, v in EquivariantAgent.defaults.items()
        if k not in ("class_negatives", "class_margin", "map_fit", "map_ridge", "map_memory")
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"ego": ("x_i", "x_j"), "labels": ("rgb",)}
    use_maps: ClassVar[bool] = False
