"""The metrics of a training run: JSONL rows, TensorBoard scalars, the non-finite check, the loss plot.

The loop hands every task's loss to :meth:`MetricsLog.record` as a device tensor: sums and the
non-finite check stay on the device, so the loop syncs only when :meth:`MetricsLog.row` closes a
row (every ``log_every`` steps, before each checkpoint and at the end). A row of ``metrics.jsonl``::

    step, samples: int (optimiser steps, items trained on so far);  time: s since the loop started
    <task>/<metric>: mean over the row's steps (e.g. "ego/loss");  loss: sum of the tasks' mean losses
    lr: learning rate of the row's last step;  samples_per_s, images_per_s: throughput over the row's steps
    <task>/grad_norm, <task>/grad_share: (multi-task agents) the L2 norm of each task's gradient on the
        trunk's parameters, last measured, and its share of their sum
    val/<metric>: the agent's held-out numbers (``Agent.validation_metrics``), when it has any
    world_size, backend: (runs of several processes only) the process group; every number above is then
        over the global batch (means over ranks, items summed), and only rank 0 writes
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from embodied.checkpoint import TrainingError, write_text_atomic

METRICS_NAME = "metrics.jsonl"

PLOT_PANELS = (  # (title, which metric keys, log scale when every value is positive)
    ("loss", lambda k: k == "loss" or k.endswith("/loss"), True),
    ("normalised loss (raw / first)", lambda k: k.endswith("/normalised"), True),
    ("share of the trunk's gradient", lambda k: k.endswith("/grad_share"), False),
    ("held-out", lambda k: k.startswith("val/"), False),
)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl; a last line cut short by a kill (not valid JSON) is left out."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def continue_metrics(path: Path, resume_step: int | None) -> None:
    """Prepare ``path`` for a run: a resumed one (``resume_step``) keeps the rows up to its checkpoint's step
    (rows past it were not kept by the checkpoint); a fresh one (None) starts without the file."""
    if resume_step is not None and path.exists():
        rows = [row for row in read_metrics(path) if row["step"] <= resume_step]
        write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))
    elif path.exists():
        path.unlink()


def plot_metrics(metrics_path: Path, png: Path) -> None:
    """One panel per kind of metric that the run logged (see ``PLOT_PANELS``) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    panels = [(t, sorted({k for r in rows for k in r if pick(k)}), log) for t, pick, log in PLOT_PANELS]
    panels = [p for p in panels if p[1]]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, keys, log) in zip(axes[0], panels, strict=True):
        positive = True
        for k in keys:
            pts = [(r["step"], r[k]) for r in rows if k in r and r[k] is not None and math.isfinite(r[k])]
            if pts:
                positive &= all(v > 0 for _, v in pts)
                ax.plot(*zip(*pts, strict=True), label=k, lw=1.5 if k == "loss" else 1)
        if log and positive:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(metrics_path.parent.name)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


class _TensorBoard:
    """SummaryWriter when tensorboard is installed; silently nothing otherwise (JSONL has every number)."""

    def __init__(self, logdir: Path, purge_step: int | None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard is not installed: no event files (metrics.jsonl has every number)", stacklevel=4)
            self.writer = None
            return
        self.writer = SummaryWriter(str(logdir), purge_step=purge_step)

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, int | float):
                    self.writer.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class MetricsLog:
    """``out/metrics.jsonl`` and ``out/tb/`` of one run, fed step by step, one row per call of :meth:`row`.

    tasks: the agent's tasks, in its order (the row's "loss" sums theirs). device: where the losses live.
    resume_step: the checkpoint's step when the run resumes (rows past it are dropped, TensorBoard purges
        events past it), None for a fresh run (an old metrics file is removed).
    lr_at: step -> learning rate, for the message of a non-finite loss.
    world: the run's processes (:class:`embodied.distributed.World`; None: one process). With several,
        :meth:`row` is collective (every rank calls it): sums are averaged and counts summed over ranks,
        the non-finite check sees every rank's losses, and only rank 0 writes files.
    """

    def __init__(
        self,
        out: Path,
        tasks: Iterable[str],
        device: torch.device,
        resume_step: int | None,
        lr_at: Callable[[int], float],
        world: Any = None,
    ) -> None:
        self.path = Path(out) / METRICS_NAME
        self.world = world if world is not None and world.distributed else None
        self.writes = self.world is None or self.world.main
        self.tb: _TensorBoard | None = None
        if self.writes:
            continue_metrics(self.path, resume_step)
            self.tb = _TensorBoard(Path(out) / "tb", purge_step=resume_step + 1 if resume_step is not None else None)
        self.tasks, self.device, self.lr_at = list(tasks), device, lr_at
        self.first_bad = {t: torch.tensor(-1, device=device) for t in self.tasks}  # first non-finite step, or -1
        self.grad_norms: dict[str, float] = {}  # task -> norm of its gradient on the trunk (last measured)
        self.start()

    def start(self) -> None:
        """Start the clocks ("time", throughput) and an empty row: call it just before the first step."""
        self.t0 = time.perf_counter()
        self._new_segment()

    def _new_segment(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.items = self.images = self.steps = 0
        self.seg_t = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self.t0

    def record(
        self, task: str, step: int, loss: torch.Tensor, metrics: Mapping[str, torch.Tensor], items: int, images: int
    ) -> None:
        """Add one task's batch of 0-based ``step``: ``loss`` () detached float32, ``metrics`` {name: () tensor},
        ``items`` in the batch and ``images`` they hold. No device sync: the finite check runs in :meth:`row`."""
        self.first_bad[task] = torch.where(
            (self.first_bad[task] < 0) & ~torch.isfinite(loss),
            torch.tensor(step, device=self.device),
            self.first_bad[task],
        )
        for k, v in {"loss": loss, **metrics}.items():
            key = f"{task}/{k}"
            self.sums[key] = self.sums.get(key, 0) + v.float()
        self.items += items
        self.images += images

    def record_grad_norm(self, task: str, norm: float) -> None:
        """The L2 norm of ``task``'s gradient on the trunk's parameters, measured on a row's last step."""
        self.grad_norms[task] = norm

    def end_step(self) -> None:
        """One optimiser step done: it counts in the means of the next row."""
        self.steps += 1

    def check_finite(self, last_good: str) -> None:
        """TrainingError naming the task and the first step (1-based) whose loss was not finite, if any.

        ``last_good`` says where the last good checkpoint is (:meth:`Checkpointer.describe`). One device sync
        (with several processes, one all-reduce: the first bad step of any rank).
        """
        if self.world is not None:
            from embodied.distributed import min_over_ranks

            never = torch.iinfo(torch.int64).max
            bads = torch.stack([torch.where(b < 0, never, b) for b in self.first_bad.values()])
            firsts = min_over_ranks(bads.long())
            self.first_bad = {t: torch.where(f == never, -1, f) for t, f in zip(self.first_bad, firsts, strict=True)}
        for task, bad in self.first_bad.items():
            b = int(bad)
            if b >= 0:
                raise TrainingError(
                    f"non-finite loss of task {task!r} at step {b + 1} (learning rate {self.lr_at(b):g}); "
                    f"training stopped, last good checkpoint: {last_good}"
                )

    def row(
        self,
        step: int,
        samples: int,
        last_good: str,
        validation: Callable[[], Mapping[str, float]] = dict,
    ) -> dict[str, Any] | None:
        """Check the losses since the last row, then append a row (and its TensorBoard scalars) and return it.

        step, samples: the run's totals so far. validation: the agent's held-out numbers (logged as "val/*").
        None, and nothing written, when no step was taken since the last row.
        """
        self.check_finite(last_good)
        if self.steps == 0:
            return None
        dt = time.perf_counter() - self.seg_t
        if self.world is not None:
            self._reduce()
        row: dict[str, Any] = {"step": step, "samples": samples, "time": round(time.perf_counter() - self.t0, 3)}
        row.update({k: float(v) / self.steps for k, v in self.sums.items()})
        row["loss"] = sum(row[f"{t}/loss"] for t in self.tasks)
        row["lr"] = self.lr_at(step - 1)
        row["samples_per_s"] = self.items / dt
        row["images_per_s"] = self.images / dt
        if self.grad_norms:
            total = sum(self.grad_norms.values()) or 1.0
            for task, norm in self.grad_norms.items():
                row[f"{task}/grad_norm"] = norm
                row[f"{task}/grad_share"] = norm / total
        row.update({f"val/{k}": float(v) for k, v in validation().items()})
        if self.world is not None:
            row.update(self.world.meta())
        if self.writes:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            if self.tb is not None:
                self.tb.log(row)
        self._new_segment()
        return row

    def _reduce(self) -> None:
        """The row's sums averaged over ranks, its item and image counts summed (one all-reduce each)."""
        from embodied.distributed import mean_over_ranks, sum_over_ranks

        keys = list(self.sums)
        if keys:
            means = mean_over_ranks(torch.stack([torch.as_tensor(self.sums[k], device=self.device) for k in keys]))
            self.sums = dict(zip(keys, means, strict=True))
        counts = sum_over_ranks(torch.tensor([self.items, self.images], dtype=torch.float64, device=self.device))
        self.items, self.images = int(counts[0]), int(counts[1])

    def close(self) -> None:
        """Close the TensorBoard writer (the JSONL file is appended and closed row by row)."""
        if self.tb is not None:
            self.tb.close()

    def plot(self, png: Path) -> None:
        """Draw the run's metrics into ``png`` (see :func:`plot_metrics`), when there are any (rank 0 only)."""
        if self.writes and self.path.exists():
            plot_metrics(self.path, png)
