"""Cluster-bootstrap intervals and paired comparisons of per-query scores.

Every metric of the report is a mean of per-query outcomes (a retrieval hit, a correct
prediction). Views of one instance (or frames of one room) are not independent, so the
bootstrap resamples *clusters* (instances for object sets, rooms for the scene set) with
replacement, and recomputes the mean of the queries they hold. The variability it measures is
that of the query set (the test images), the training set of a probe being held fixed.

One :class:`ClusterBootstrap` per set of queries draws its resampling weights once from a fixed
seed; every encoder scored on those queries uses the same draws, so the difference of two
encoders' draws is the *paired* bootstrap of their difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
DRAWS = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval (same units as the metric)."""

    value: float
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0.0 or self.hi < 0.0

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


class ClusterBootstrap:
    """Resampling of the clusters ``clusters`` (Q,) of Q queries: ``draws`` multinomial weightings."""

    def __init__(self, clusters: np.ndarray, draws: int = DRAWS, seed: int = 0, level: float = LEVEL) -> None:
        clusters = np.asarray(clusters)
        if clusters.ndim != 1 or len(clusters) == 0:
            raise ValueError(f"clusters of shape {clusters.shape}; expected (Q,) with Q > 0")
        if not 0.0 < level < 1.0:
            raise ValueError(f"level = {level}; expected a probability in (0, 1)")
        _, self.inverse = np.unique(clusters, return_inverse=True)
        c = int(self.inverse.max()) + 1
        self.n_clusters = c
        self.level = level
        rng = np.random.default_rng(seed)
        self.weights = rng.multinomial(c, np.full(c, 1.0 / c), size=draws).astype(np.float64)  # (B, C)
        self.counts = np.bincount(self.inverse, minlength=c).astype(np.float64)
        self.denominator = self.weights @ self.counts  # (B,) queries in each resample

    def replicates(self, values: np.ndarray) -> np.ndarray:
        """(B,) the mean of ``values`` (Q,) in each resample."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != self.inverse.shape:
            raise ValueError(f"values of shape {values.shape}; expected ({len(self.inverse)},), one per query")
        sums = np.bincount(self.inverse, weights=values, minlength=self.n_clusters)
        return (self.weights @ sums) / self.denominator

    def _interval(self, value: float, reps: np.ndarray) -> Interval:
        a = (1.0 - self.level) / 2.0
        lo, hi = np.quantile(reps, [a, 1.0 - a])
        return Interval(float(value), float(lo), float(hi))

    def interval(self, values: np.ndarray) -> Interval:
        """The mean of ``values`` and its interval."""
        return self._interval(float(np.mean(values)), self.replicates(values))

    def difference(self, a: np.ndarray, b: np.ndarray) -> Interval:
        """mean(a) - mean(b) over the same queries, with its paired interval."""
        return self._interval(float(np.mean(a) - np.mean(b)), self.replicates(a) - self.replicates(b))
