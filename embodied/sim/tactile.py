"""Fingertip tactile sensing: contact normal force on the gripper, and the line fit of a profile.

The Curious Robot pokes objects and reads a force profile from the fingertip; the
network regresses the least-squares line through it (slope, intercept). Here the
"sensor" is the sum of the normal forces of PyBullet's contact points on the
finger links (Newtons), read once per sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embodied.sim.bullet import BulletSim


def normal_force(sim: BulletSim, body: int, links: Sequence[int], other: int | None = None) -> float:
    """Total contact normal force (N) on ``links`` of ``body`` (from ``other`` only, when given)."""
    total = 0.0
    for link in links:
        if other is None:
            pts = sim.p.getContactPoints(bodyA=body, linkIndexA=link)
        else:
            pts = sim.p.getContactPoints(bodyA=body, bodyB=other, linkIndexA=link)
        for c in pts:
            total += c[9]
    return total


def line_fit(profile: np.ndarray, dt: float) -> np.ndarray:
    """Least-squares line through ``profile`` sampled every ``dt`` seconds from t = 0.

    Returns float32 (2,): slope (N/s) and intercept (N), i.e. ``profile[i] ~ slope * i * dt + intercept``.
    """
    f = np.asarray(profile, dtype=np.float64).reshape(-1)
    if f.size < 2:
        raise ValueError(f"profile has {f.size} samples; a line fit needs at least 2")
    t = np.arange(f.size) * float(dt)
    a = np.stack([t, np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(a, f, rcond=None)
    return coef.astype(np.float32)


class ForceRecorder:
    """Samples the fingertip normal force every ``every`` physics steps into a fixed-length profile.

    Call it once per physics step (it fits ``KukaArm.move``'s ``on_step``); it returns True when
    the profile is full or the force passed ``stop_force`` (to end a guarded move).
    """

    def __init__(
        self, sim: BulletSim, body: int, links: Sequence[int], samples: int, every: int = 1, stop_force: float = np.inf
    ) -> None:
        self.sim, self.body, self.links = sim, body, tuple(links)
        self.profile = np.zeros(samples, dtype=np.float32)
        self.every, self.stop_force = int(every), float(stop_force)
        self.n = 0
        self.steps = 0

    @property
    def full(self) -> bool:
        return self.n >= self.profile.size

    def __call__(self, _step: int = 0) -> bool:
        self.steps += 1
        if self.steps % self.every == 0 and not self.full:
            self.profile[self.n] = normal_force(self.sim, self.body, self.links)
            self.n += 1
        return self.full or (self.n > 0 and self.profile[self.n - 1] >= self.stop_force)
