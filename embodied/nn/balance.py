"""Target normalisation and multi-task loss balancing.

Regression targets are z-scored with training-set statistics (:class:`TargetScaler`), so a
target in N/s and one in metres give losses of the same order; the statistics travel in the
checkpoint (buffers), and ``inverse`` maps predictions back to the data's units.

Task losses are then balanced (:class:`LossBalancer`):

* ``"none"``: the weighted sum, as in Pinto et al.
* ``"mean"``: each task's loss divided by a running mean of itself (detached, EMA): the gradient
  of sum_t L_t / mean(L_t) is that of sum_t log L_t, which no rescaling of one task changes.
* ``"uncertainty"``: Kendall, Gal & Cipolla (2018): ``exp(-s_t) * L_t + s_t`` with a learned
  log-variance ``s_t`` per task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, Subset

BALANCE = ("none", "mean", "uncertainty")


def target_column(ds: Dataset, key: str) -> np.ndarray:
    """(N, K) float64 values of item key ``key`` for every item: from the dataset's step table
    (``ds.steps[key]``) or its tensors when it has them, else by reading every item."""
    if isinstance(ds, ConcatDataset):
        return np.concatenate([target_column(d, key) for d in ds.datasets])
    if isinstance(ds, Subset):
        return target_column(ds.dataset, key)[np.asarray(ds.indices)]
    for table in (getattr(ds, "steps", None), getattr(ds, "tensors", None)):
        try:
            values = np.asarray(table[key], dtype=np.float64)  # type: ignore[index]
        except (KeyError, TypeError):
            continue
        return values.reshape(len(values), -1)
    return np.stack([np.asarray(ds[i][key], dtype=np.float64).reshape(-1) for i in range(len(ds))])


class TargetScaler(nn.Module):
    """z-scoring of a (N, K) regression target: buffers ``mean`` (K,) and ``std`` (K,) in target units."""

    def __init__(self, values: np.ndarray) -> None:
        super().__init__()
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        if len(values) == 0 or not np.isfinite(values).all():
            raise ValueError(f"regression targets of shape {values.shape}; expected finite values, N > 0")
        std = values.std(0)
        std[std < 1e-8 * np.maximum(1.0, np.abs(values).max(0))] = 1.0  # a constant channel stays as it is
        self.register_buffer("mean", torch.as_tensor(values.mean(0), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, target: torch.Tensor) -> torch.Tensor:
        """(N, K) target units -> (N, K) standard scores."""
        return (target.float() - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """(N, K) standard scores (e.g. predictions) -> target units."""
        return z.float() * self.std + self.mean


class LossBalancer(nn.Module):
    """Per-task loss balancing by ``method`` (see module doc); ``momentum`` of the running means.

    ``reduce``: None, or a function of a scalar loss value giving the value the statistics follow
    (``embodied.distributed`` sets it to the mean over ranks: the global batch's loss); the loss's
    gradient stays this process's.
    """

    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(self, tasks: Sequence[str], method: str = "mean", momentum: float = 0.99) -> None:
        super().__init__()
        if method not in BALANCE:
            raise ValueError(f"balance = {method!r}; expected one of {', '.join(BALANCE)}")
        self.method, self.momentum = method, momentum
        self.tasks = list(tasks)
        self.register_buffer("running", torch.zeros(len(self.tasks)))  # 0: not seen yet
        self.register_buffer("initial", torch.zeros(len(self.tasks)))  # each task's first loss
        self.log_var = nn.Parameter(torch.zeros(len(self.tasks))) if method == "uncertainty" else None

    def forward(self, task: str, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(balanced scalar loss, normalised loss) of ``task`` from its raw scalar ``loss``.

        The normalised loss, raw / the task's first raw loss (detached), starts at 1 for every
        task whatever its units, so one plot shows every task's progress.
        """
        i = self.tasks.index(task)
        if self.training and self.reduce is not None:
            value = loss.detach()
            loss = loss + (self.reduce(value) - value)  # the reduced value, this process's gradient
        with torch.no_grad():
            value = loss.detach().float()
            if self.training:
                first = self.running[i] == 0
                self.initial[i] = torch.where(first, value, self.initial[i])
                self.running[i] = torch.where(
                    first, value, self.momentum * self.running[i] + (1 - self.momentum) * value
                )
            normalised = value / self.initial[i].clamp_min(1e-12)
        if self.method == "none":
            return loss, normalised
        if self.method == "uncertainty":
            s = self.log_var[i]  # type: ignore[index]
            return torch.exp(-s) * loss + s, normalised
        return loss / self.running[i].clamp_min(1e-8), normalised
