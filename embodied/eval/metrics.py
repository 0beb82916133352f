"""Every metric of the report as per-query outcomes, with the clusters the bootstrap resamples.

Object sets (clusters: instances):

* ``instance R@k``: another view of the query's instance among its k nearest (query excluded).
* ``category R@k``: an item of the query's category among its k nearest, with *every* view of the
  query's own instance out of the gallery (another view of the same object is no category hit).
* ``category linear`` / ``category kNN`` / ``category n-shot``: probes fitted on the views of half
  of each category's held-out instances, tested on the other half (unseen instances).

Scene set (clusters: rooms): ``scene linear`` / ``scene kNN`` / ``scene n-shot``, probes fitted on
half of each class's rooms and tested on the others (unseen rooms).

An n-shot score exists only where every class has more than n training examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from embodied.eval.classify import few_shot_correct, knn_predict, linear_probe_predict
from embodied.eval.retrieval import hits_at_k

KS = (1, 5, 10)
SHOTS = (1, 6, 20)  # 6: the few-label setting of Jayaraman & Grauman


@dataclass(frozen=True)
class PerQuery:
    """values (Q,) float64 in [0, 1], one outcome per query; clusters (Q,) the bootstrap's units."""

    values: np.ndarray
    clusters: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.values.mean())


def object_split(instance: np.ndarray, category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) over views: per category, the first half of its instances (by uid)
    train the probes and the others test them."""
    train = np.zeros(len(instance), bool)
    for c in np.unique(category):
        uids = np.unique(instance[category == c])
        train |= np.isin(instance, uids[: max(1, len(uids) // 2)])
    return train, ~train


def scene_split(scene_id: np.ndarray, scene_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) masks over scene frames: the first half of each class's rooms train, the rest test."""
    train = np.zeros(len(scene_id), bool)
    for c in np.unique(scene_class):
        rooms = list(dict.fromkeys(scene_id[scene_class == c].tolist()))
        train |= (scene_class == c) & np.isin(scene_id, rooms[: max(1, len(rooms) // 2)])
    return train, ~train


def eligible_shots(train_labels: np.ndarray, shots: tuple[int, ...] = SHOTS) -> list[int]:
    """The shot counts n for which every class has more than n training examples."""
    fewest = np.bincount(np.unique(train_labels, return_inverse=True)[1]).min()
    return [n for n in shots if fewest > n]


def _probes(
    emb: torch.Tensor, labels: np.ndarray, clusters: np.ndarray, train: np.ndarray, prefix: str, draws: int
) -> dict[str, PerQuery]:
    dev = emb.device
    tr, te = torch.as_tensor(train, device=dev), torch.as_tensor(~train, device=dev)
    y = torch.as_tensor(labels, device=dev)
    truth = labels[~train]
    out = {
        f"{prefix} linear": linear_probe_predict(emb[tr], y[tr], emb[te]).cpu().numpy() == truth,
        f"{prefix} kNN": knn_predict(emb[tr], y[tr], emb[te]).cpu().numpy() == truth,
    }
    for n in eligible_shots(labels[train]):
        out[f"{prefix} {n}-shot"] = few_shot_correct(emb[tr], y[tr], emb[te], y[te], n, draws)
    return {k: PerQuery(np.asarray(v, np.float64), clusters[~train]) for k, v in out.items()}


def score_objects(emb: torch.Tensor, data: dict[str, np.ndarray], draws: int = 5) -> dict[str, PerQuery]:
    """Every object metric of embeddings ``emb`` (N, D) of an object set's images."""
    inst, cat = data["instance"], data["category"]
    out: dict[str, PerQuery] = {}
    for name, labels, groups in (("instance", inst, None), ("category", cat, inst)):
        hits, valid = hits_at_k(emb, labels, KS, groups=groups)
        hits, valid = hits.cpu().numpy(), valid.cpu().numpy()
        for i, k in enumerate(KS):
            out[f"{name} R@{k}"] = PerQuery(hits[valid, i].astype(np.float64), inst[valid])
    out.update(_probes(emb, cat, inst, object_split(inst, cat)[0], "category", draws))
    return out


def score_scenes(emb: torch.Tensor, data: dict[str, np.ndarray], draws: int = 5) -> dict[str, PerQuery]:
    """Every scene metric of embeddings ``emb`` (N, D) of the scene set's frames."""
    train = scene_split(data["scene_id"], data["scene_class"])[0]
    return _probes(emb, data["scene_class"], data["scene_id"], train, "scene", draws)
