"""Motion classes for ego-motion equivariance: k-means on the summed motor signal of frame pairs.

Only *informative* odometry channels take part. Each channel's sensor noise is estimated
from the per-step signal itself (:func:`step_noise`: motor commands persist over several
steps, sensor noise is white, so the spread of step-to-step differences is noise), its
signal from the spread of the pair sums beyond that noise (:func:`pair_snr`). Channels whose
signal-to-noise ratio is below ``min_snr`` are dropped (weight 0); the others are
standardised by their spread and weigh equally. On EgoMotion data the lateral channel
(``lateral_m``: the rig never strafes, so it holds sensor noise plus the odd push-out from a
wall) is dropped; forward, yaw and pitch stay, so look up / look down get classes of their own.

The clusters are fitted once per (dataset, K, window) and stored beside the dataset's cache,
so training and evaluation agree on what motion class g means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: channels whose pair signal-to-noise ratio is below this are left out of the clustering
MIN_SNR = 3.0
#: k-means restarts (the lowest within-cluster sum of squares wins): rare motions keep their cluster
N_INIT = 10


def _lloyd(x: np.ndarray, k: int, rng: np.random.Generator, iters: int) -> tuple[np.ndarray, np.ndarray, float]:
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
    labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
    inertia = float(((x - c[labels]) ** 2).sum())
    return c, labels, inertia


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 100, n_init: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding, best of ``n_init`` seeded restarts (lowest inertia).

    x: (N, D). Returns (centers (k, D), labels (N,) int64).
    """
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k={k!r}; expected a positive integer")
    if len(x) < k:
        raise ValueError(f"k={k} clusters need at least k samples; got {len(x)}")
    rng = np.random.default_rng(seed)
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for _ in range(max(1, n_init)):
        run = _lloyd(x, k, rng, iters)
        if best is None or run[2] < best[2] - 1e-12:
            best = run
    assert best is not None
    return best[0], best[1]


def step_noise(motor: np.ndarray, episodes: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Per-step sensor-noise std of each motor channel, from the data alone.

    motor: (N, D) per-frame motor signal (motion *into* each frame), rows of one episode
    contiguous; episodes: (start row, frames) per episode (default: one episode). The first
    frame of an episode (a reset, no motion) is skipped. Commands persist for several steps
    while sensor noise is white, so most step-to-step differences are the difference of two
    noise draws: std = 1.4826 * median(|x_t - x_{t-1}|) / sqrt(2) (a robust, MAD-based estimate
    that ignores the few differences where the command changes; with a change every 6 steps it
    reads ~20 % high, a conservative error). Returns (D,) float64 in the channels' units (m, rad, ...).
    """
    motor = np.asarray(motor, dtype=np.float64)
    if episodes is None:
        episodes = [(0, len(motor))]
    diffs = [np.diff(motor[s + 1 : s + n], axis=0) for s, n in episodes if n > 2]
    if not diffs or sum(len(d) for d in diffs) == 0:
        return np.zeros(motor.shape[1])
    d = np.concatenate(diffs)
    return 1.4826 * np.median(np.abs(d), axis=0) / np.sqrt(2.0)


def pair_snr(motion: np.ndarray, noise: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Signal-to-noise ratio of each channel of summed pair motion.

    motion: (N, D) motor summed over each pair's ``dt``: (N,) steps; noise: (D,) per-step noise
    std (:func:`step_noise`). Noise of a sum of dt steps has variance dt * noise^2; the signal is
    what spread is left: snr = sqrt(max(var - mean(dt) noise^2, 0)) / (sqrt(mean(dt)) noise).
    Returns (D,) (inf for a noiseless channel that varies, 0 for a constant one).
    """
    motion = np.asarray(motion, dtype=np.float64)
    var = motion.var(0)
    noise_var = float(np.mean(dt)) * np.asarray(noise, dtype=np.float64) ** 2
    signal = np.sqrt(np.maximum(var - noise_var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise_var > 0, signal / np.sqrt(noise_var), np.where(var > 1e-18, np.inf, 0.0))
    return snr


class MotionClusters:
    """K motion classes over summed motor vectors, on informative channels only.

    centers: (K, D) in weighted standardised units (motion / scale * weight); scale: (D,) the
    per-channel std of the pair sums; weight: (D,) 1 for channels that take part, 0 for channels
    whose spread is sensor noise; snr: (D,) the pair signal-to-noise ratio each was judged by.
    """

    def __init__(
        self,
        centers: np.ndarray,
        scale: np.ndarray,
        weight: np.ndarray | None = None,
        snr: np.ndarray | None = None,
    ) -> None:
        self.centers = np.asarray(centers, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.weight = np.ones_like(self.scale) if weight is None else np.asarray(weight, dtype=np.float64)
        self.snr = None if snr is None else np.asarray(snr, dtype=np.float64)

    @property
    def k(self) -> int:
        return len(self.centers)

    @classmethod
    def fit(
        cls,
        motion: np.ndarray,
        k: int,
        seed: int = 0,
        noise: np.ndarray | None = None,
        dt: np.ndarray | None = None,
        min_snr: float = MIN_SNR,
        n_init: int = N_INIT,
    ) -> MotionClusters:
        """Fit on (N, D) summed motor vectors.

        noise: (D,) per-step noise std (``step_noise``) with dt: (N,) steps per pair; channels with
        ``pair_snr < min_snr`` are dropped (unless all would be: then, as without ``noise``, every
        varying channel takes part)."""
        motion = np.asarray(motion, dtype=np.float64)
        scale = motion.std(0)
        scale[scale < 1e-9] = 1.0
        snr = None
        weight = (motion.std(0) >= 1e-9).astype(np.float64)
        if noise is not None:
            snr = pair_snr(motion, noise, np.ones(len(motion)) if dt is None else dt)
            weight = (snr >= min_snr).astype(np.float64)
        if not weight.any():  # nothing stands out of the noise: cluster on every varying channel, as before
            weight = (motion.std(0) >= 1e-9).astype(np.float64)
        if not weight.any():
            raise ValueError("every motor channel is constant; cannot cluster motion")
        centers, _ = kmeans(motion / scale * weight, k, seed, n_init=n_init)
        return cls(centers, scale, weight, snr)

    def transform(self, motion: np.ndarray) -> np.ndarray:
        """(N, D) motor sums -> (N, D) the clustered coordinates (standardised, noise channels zeroed)."""
        return np.asarray(motion, dtype=np.float64) / self.scale * self.weight

    def assign(self, motion: np.ndarray) -> np.ndarray:
        """(N, D) motor sums -> (N,) int64 cluster ids."""
        z = self.transform(motion)
        return ((z[:, None, :] - self.centers[None]) ** 2).sum(-1).argmin(1)

    def centers_in_units(self) -> np.ndarray:
        """(K, D) cluster centres in the motor's units (0 on dropped channels)."""
        return self.centers * self.scale

    def save(self, path: Path) -> None:
        raw = {"centers": self.centers.tolist(), "scale": self.scale.tolist(), "weight": self.weight.tolist()}
        if self.snr is not None:
            raw["snr"] = [float(s) if np.isfinite(s) else None for s in self.snr]
        Path(path).write_text(json.dumps(raw))

    @classmethod
    def load(cls, path: Path) -> MotionClusters:
        raw = json.loads(Path(path).read_text())
        snr = raw.get("snr")
        snr_arr = None if snr is None else np.array([np.inf if s is None else s for s in snr], dtype=np.float64)
        return cls(np.array(raw["centers"]), np.array(raw["scale"]), raw.get("weight"), snr_arr)
