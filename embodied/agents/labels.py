"""The few labelled frames of the semi-supervised protocol (Jayaraman & Grauman 2015, Sec. 4).

Every agent that trains on "N labels per class" draws them through :func:`labelled_subset`,
so labels only, slowness + labels and equivariant + labels see exactly the same frames
for the same (data, label, N, seed).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset

from embodied.agents.base import AgentDataError, label_column


def labelled_subset(ds: Dataset, label: str, per_class: int, seed: int = 0) -> tuple[Dataset, int]:
    """``per_class`` frames of every class of ``label``: the first ones of each class in a permutation
    seeded by ``seed`` (frames without the label, NaN, are skipped; a class with fewer frames gives
    all it has). Returns (Subset of ``ds`` in index order, C = max label + 1 among labelled frames)."""
    if not isinstance(per_class, int) or per_class <= 0:
        raise AgentDataError(f"labels_per_class={per_class!r}; expected a positive integer")
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
