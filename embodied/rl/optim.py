"""A trunk learning rate of its own while fine-tuning: Adam whose parameter groups scale SB3's lr.

SB3 sets one learning rate on every parameter group before each update (``_update_learning_rate``),
so groups built with their own ``lr`` would be overwritten. :class:`ScaledAdam` keeps SB3's lr in
each group and multiplies it by the group's ``lr_scale`` for the step only. Which parameters get a
scale is marked on the parameters themselves (:func:`set_lr_scale`: the extractor marks its trunk),
because SB3 hands its optimizer a flat ``policy.parameters()``, without names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

LR_SCALE = "lr_scale"  # the attribute set_lr_scale puts on a parameter


def check_lr_scale(scale: object) -> float:
    """``scale`` as a float, or a ValueError unless it is a finite number > 0."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"trunk_lr_scale={scale!r}; expected a finite number > 0 (1: the policy's own lr)")
    return float(scale)


def set_lr_scale(params: Iterable[torch.nn.Parameter], scale: float) -> None:
    """Mark ``params`` so that :class:`ScaledAdam` steps them at ``scale`` x the optimizer's lr."""
    scale = check_lr_scale(scale)
    for p in params:
        setattr(p, LR_SCALE, scale)


class ScaledAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose parameters marked by :func:`set_lr_scale` step at their scale x ``lr``.

    params: parameters (grouped by their mark, unmarked ones at scale 1, in first-seen order so the
    groups, and a saved state_dict, come out the same each time the policy is built) or param-group
    dicts (each may carry ``lr_scale``). Every other argument is Adam's.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, **kwargs: Any) -> None:
        params = list(params)
        if params and not isinstance(params[0], dict):
            groups: dict[float, list[torch.nn.Parameter]] = {}
            for p in params:
                groups.setdefault(float(getattr(p, LR_SCALE, 1.0)), []).append(p)
            params = [{"params": ps, LR_SCALE: s} for s, ps in groups.items()]
        super().__init__(params, lr=lr, **kwargs)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        base = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] * g.get(LR_SCALE, 1.0)
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, base, strict=True):
                g["lr"] = lr


__all__ = ["LR_SCALE", "ScaledAdam", "check_lr_scale", "set_lr_scale"]
