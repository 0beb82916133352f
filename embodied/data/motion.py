"""Motion classes for ego-motion equivariance: k-means on the summed motor signal of frame pairs.

The clusters are fitted once per (dataset, K, window) and stored beside the
dataset's cache, so training and evaluation agree on what motion class g means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding. x: (N, D). Returns (centers (k, D), labels (N,))."""
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k={k!r}; expected a positive integer")
    if len(x) < k:
        raise ValueError(f"k={k} clusters need at least k samples; got {len(x)}")
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(centers)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        centers.append(x[rng.integers(len(x))] if total <= 0 else x[rng.choice(len(x), p=d2 / total)])
    c = np.asarray(centers, dtype=np.float64)
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(iters):
        labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c, labels


class MotionClusters:
    """K motion classes over summed motor vectors, standardised per dimension.

    centers: (K, D) in standardised units; scale: (D,) the per-dimension std used.
    """

    def __init__(self, centers: np.ndarray, scale: np.ndarray) -> None:
        self.centers = np.asarray(centers, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @property
    def k(self) -> int:
        return len(self.centers)

    @classmethod
    def fit(cls, motion: np.ndarray, k: int, seed: int = 0) -> MotionClusters:
        """Fit on (N, D) summed motor vectors."""
        scale = motion.std(0)
        scale[scale < 1e-9] = 1.0
        centers, _ = kmeans(motion / scale, k, seed)
        return cls(centers, scale)

    def assign(self, motion: np.ndarray) -> np.ndarray:
        """(N, D) motor sums -> (N,) int64 cluster ids."""
        z = np.asarray(motion, dtype=np.float64) / self.scale
        return ((z[:, None, :] - self.centers[None]) ** 2).sum(-1).argmin(1)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"centers": self.centers.tolist(), "scale": self.scale.tolist()}))

    @classmethod
    def load(cls, path: Path) -> MotionClusters:
        raw = json.loads(Path(path).read_text())
        return cls(np.array(raw["centers"]), np.array(raw["scale"]))
