"""The training loop, shared by every agent.

One step = one batch per task of ``agent.tasks`` in turn, each task's loss backpropagated
into the shared trunk, then one optimiser step on the accumulated gradients (Pinto et al.'s
multi-task schedule; single-task agents are the one-task case).

Device: CUDA when present (bf16 autocast, channels_last), else CPU. Data: one DataLoader
per task, with workers and pinned memory, reading batches in an order fixed by (seed, task,
batch index), so ``resume`` continues exactly where a run stopped.

Outputs in ``out``::

    checkpoint.pt     latest checkpoint (at step 0, every ``checkpoint_every`` steps and at the end; atomic, so
                      a kill at any moment leaves one that ``resume`` continues to the same final weights)
    metrics.jsonl     one JSON object per ``log_every`` steps
    tb/               TensorBoard event files
    loss_curve.png    loss per task against step, drawn at the end
    preset.json       the resolved preset this run trains

Checkpoint (a dict; ``torch.load(path, weights_only=True)`` reads it)::

    format: "embodied.checkpoint/1"
    preset: {"name", "agent", "description", "trunk", "train", "options"}  (plain TOML types)
    spec:   what the agent derived from its data (e.g. motion_classes, num_classes, action_dim)
    step, samples: int;  model: agent state_dict (trunk under "trunk.");  optimizer: state_dict
    rng: {"torch": ByteTensor, "cuda": [ByteTensor, ...]};  metrics: last logged row
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from embodied.agents.base import Agent
from embodied.agents.registry import AgentPreset, build_agent, check_fields
from embodied.cli import UserError

CHECKPOINT_FORMAT = "embodied.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (non-finite loss, mismatched resume...)."""


@dataclass(frozen=True)
class TrainConfig:
    """The ``[train]`` table of a preset.

    steps: optimiser steps in total (a resumed run continues up to it).
    batch_size: items per task per step. lr, weight_decay: AdamW (or SGD with ``momentum``).
    warmup: steps of linear learning-rate warm-up (then constant: a schedule that does not depend
        on ``steps`` keeps "N steps, resume, N more" identical to "2N steps").
    grad_clip: max global gradient norm (0: off). checkpoint_every, log_every: in steps.
    num_workers: DataLoader worker processes in all (split over tasks). device: "auto", "cpu", "cuda"...
    amp: bf16 autocast on CUDA. channels_last: NHWC activations on CUDA. compile: torch.compile the trunk.
    threads: torch intra-op threads (0: torch's default, one per core). On a CPU shared with other busy
        processes, OpenMP threads spin-wait on each other: 1 thread measured ~10x faster than 2 there.
    """

    steps: int = 10000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    warmup: int = 100
    grad_clip: float = 0.0
    checkpoint_every: int = 1000
    log_every: int = 20
    num_workers: int = 4
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    threads: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrainConfig:
        """The config of a ``[train]`` table; a one-line ``UserError`` (a ValueError) names a bad value."""
        raw = dict(raw or {})
        check_fields(cls, raw, "train")
        cfg = cls(**raw)
        for name, lo in (("batch_size", 1), ("checkpoint_every", 1), ("log_every", 1)):
            if getattr(cfg, name) < lo:
                raise UserError(f"train.{name}", getattr(cfg, name), f"an integer >= {lo}")
        for name in ("steps", "warmup", "num_workers", "seed", "threads"):
            if getattr(cfg, name) < 0:
                raise UserError(f"train.{name}", getattr(cfg, name), "an integer >= 0")
        if not cfg.lr > 0:
            raise UserError("train.lr", cfg.lr, "a finite number > 0")
        for name in ("weight_decay", "grad_clip"):
            if getattr(cfg, name) < 0:
                raise UserError(f"train.{name}", getattr(cfg, name), "a finite number >= 0")
        if not 0 <= cfg.momentum < 1:
            raise UserError("train.momentum", cfg.momentum, "a number in [0, 1)")
        if cfg.optimizer not in ("adamw", "sgd"):
            raise UserError("train.optimizer", cfg.optimizer, "one of adamw, sgd")
        check_device_name(cfg.device)
        return cfg


def check_device_name(name: str) -> None:
    """UserError unless ``name`` is "auto" or a torch device string (cpu, cuda, cuda:1, mps...)."""
    if name == "auto":
        return
    try:
        torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise UserError("train.device", name, "auto, cpu, cuda, cuda:<index> or another torch device") from None


class StepBatches(Sampler[list[int]]):
    """Endless batches of indices: batch b is a fixed function of (seed, b), so any step can be resumed.

    Each epoch is a fresh permutation (seeded by seed and epoch) cut into full batches of
    ``min(batch_size, n)``; iteration starts at batch ``start``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0) -> None:
        self.n, self.batch = n, min(batch_size, n)
        self.per_epoch = n // self.batch
        self.seed, self.start = seed, start

    def __iter__(self):  # noqa: ANN204
        b = self.start
        while True:
            epoch, first = divmod(b, self.per_epoch)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for k in range(first, self.per_epoch):
                yield perm[k * self.batch : (k + 1) * self.batch].tolist()
                b += 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """torch.save to a temporary name in the same directory, fsync, then rename over ``path``.

    A process killed at any moment (``kill -9`` included) leaves ``path`` either the previous
    checkpoint or the new one, never a partial file; at worst a stale ``.<name>.tmp-<pid>`` that
    :func:`train` removes when it starts.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """``path.write_text(text)`` that a kill cannot leave half-written (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict (``weights_only=True``); ``path`` may be the file or its run directory."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an embodied checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _loaders(datasets: dict[str, Dataset], cfg: TrainConfig, start: int, pin: bool) -> dict[str, Any]:
    """One endless iterator per task. Workers are split over tasks (at least one each when any)."""
    workers = min(cfg.num_workers, os.cpu_count() or 1)  # more processes than cores only thrash
    per_task = 0 if workers <= 0 else max(1, workers // max(1, len(datasets)))
    out = {}
    for t, (task, ds) in enumerate(datasets.items()):
        sampler = StepBatches(len(ds), cfg.batch_size, cfg.seed * 1000 + t, start)  # type: ignore[arg-type]
        loader = DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=per_task,
            pin_memory=pin,
            persistent_workers=per_task > 0,
            prefetch_factor=4 if per_task > 0 else None,
            # its own generator: creating the iterator must not draw from the global RNG (exact resume)
            generator=torch.Generator().manual_seed(cfg.seed * 1000 + t),
        )
        out[task] = iter(loader)
    return out


def _lr(cfg: TrainConfig, step: int) -> float:
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else cfg.lr


def _optimizer(agent: Agent, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in agent.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def trunk_gradient(trunk: torch.nn.Module) -> torch.Tensor:
    """(P,) the trunk's accumulated parameter gradients, flattened (zeros where none yet)."""
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten() for p in trunk.parameters()]
    )


PLOT_PANELS = (  # (title, which metric keys, log scale when every value is positive)
    ("loss", lambda k: k == "loss" or k.endswith("/loss"), True),
    ("normalised loss (raw / first)", lambda k: k.endswith("/normalised"), True),
    ("share of the trunk's gradient", lambda k: k.endswith("/grad_share"), False),
    ("held-out", lambda k: k.startswith("val/"), False),
)


def _plot(metrics_path: Path, png: Path) -> None:
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
            warnings.warn("tensorboard is not installed: no event files (metrics.jsonl has every number)", stacklevel=3)
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


def train(
    preset: AgentPreset,
    datasets: dict[str, Dataset],
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the agent of ``preset`` on ``datasets`` ({task: Dataset}), writing into ``out``.

    resume: continue from ``out/checkpoint.pt`` up to ``train.steps`` (error when absent); without it
    an existing checkpoint in ``out`` is an error rather than silently overwritten.
    Returns {"step", "checkpoint", "samples", "samples_per_s", "images_per_s", "loss"} for this call.
    Raises TrainingError on a non-finite loss (the last good checkpoint is kept) and AgentDataError
    (a ValueError) on unusable data.
    """
    cfg = TrainConfig.from_dict(preset.train)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT_NAME
    metrics_path = out / "metrics.jsonl"
    for stale in out.glob(f".{CHECKPOINT_NAME}.tmp-*"):  # a write in flight when a previous run was killed
        stale.unlink(missing_ok=True)
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"

    ckpt = None
    if resume:
        if not ckpt_path.exists():
            raise TrainingError(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = load_checkpoint(ckpt_path)
        saved = ckpt["preset"]
        for section in ("agent", "trunk", "options"):
            if saved[section] != getattr(preset, section):
                raise TrainingError(
                    f"--resume: {section} differs from the checkpoint's ({saved[section]!r} != "
                    f"{getattr(preset, section)!r}); resume with the same preset"
                )
    elif ckpt_path.exists():
        raise TrainingError(f"{ckpt_path} exists: pass resume=True (--resume) or another output directory")

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)  # before building: the initial weights follow the seed
    agent = build_agent(preset, datasets).to(device)
    step, samples = 0, 0
    opt = _optimizer(agent, cfg)
    if ckpt is not None:
        agent.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, samples = int(ckpt["step"]), int(ckpt["samples"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if cuda and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    if cuda and cfg.channels_last:
        agent = agent.to(memory_format=torch.channels_last)
        agent.set_channels_last(True)
    if cfg.compile:
        agent.trunk = torch.compile(agent.trunk)  # type: ignore[assignment]
    write_text_atomic(out / "preset.json", json.dumps(preset.to_dict(), indent=1))

    saved_step: int | None = step if ckpt is not None else None

    def checkpoint(last_row: dict[str, Any] | None) -> None:
        nonlocal saved_step
        trunk = getattr(agent.trunk, "_orig_mod", agent.trunk)  # unwrap torch.compile
        state = {k: v for k, v in agent.state_dict().items() if not k.startswith("trunk.")}
        state.update({f"trunk.{k}": v for k, v in trunk.state_dict().items()})
        save_checkpoint(
            ckpt_path,
            {
                "format": CHECKPOINT_FORMAT,
                "preset": preset.to_dict(),
                "spec": dict(agent.spec),
                "step": step,
                "samples": samples,
                "model": state,
                "optimizer": opt.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": list(torch.cuda.get_rng_state_all()) if cuda else [],
                },
                "metrics": last_row or {},
            },
        )
        saved_step = step

    # metrics of a resumed run continue the file; rows past the checkpoint were not kept
    if ckpt is not None and metrics_path.exists():
        rows = [row for row in read_metrics(metrics_path) if row["step"] <= step]
        write_text_atomic(metrics_path, "".join(json.dumps(row) + "\n" for row in rows))
    elif metrics_path.exists():
        metrics_path.unlink()
    if ckpt is None:
        checkpoint(None)  # step 0: from here on, a kill at any moment leaves a checkpoint --resume continues
    tb = _TensorBoard(out / "tb", purge_step=step + 1 if ckpt is not None else None)

    tasks = agent.tasks
    iters = _loaders(datasets, cfg, step, pin=cuda)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and cfg.amp else contextlib.nullcontext()
    bar = tqdm(total=cfg.steps, initial=step, unit="step", disable=not progress, dynamic_ncols=True)
    sums: dict[str, torch.Tensor] = {}
    first_bad = {t: torch.tensor(-1, device=device) for t in tasks}
    seg_items = seg_images = 0
    seg_t = t0 = time.perf_counter()
    start_samples = samples
    last_row: dict[str, Any] | None = ckpt["metrics"] if ckpt is not None else None
    logged_steps = 0
    grad_norms: dict[str, float] = {}  # task -> norm of its gradient on the trunk's parameters (last measured)

    def flush() -> dict[str, Any] | None:
        """Check the losses since the last flush (one device sync) and write a metrics row."""
        nonlocal sums, seg_items, seg_images, seg_t, logged_steps
        for task, bad in first_bad.items():
            b = int(bad)
            if b >= 0:
                kept = f"{ckpt_path} (step {saved_step})" if saved_step is not None else "none (no step was saved)"
                raise TrainingError(
                    f"non-finite loss of task {task!r} at step {b + 1} (learning rate {_lr(cfg, b):g}); "
                    f"training stopped, last good checkpoint: {kept}"
                )
        if logged_steps == 0:
            return None
        dt = time.perf_counter() - seg_t
        row: dict[str, Any] = {"step": step, "samples": samples, "time": round(time.perf_counter() - t0, 3)}
        row.update({k: float(v) / logged_steps for k, v in sums.items()})
        row["loss"] = sum(row[f"{t}/loss"] for t in tasks)
        row["lr"] = _lr(cfg, step - 1)
        row["samples_per_s"] = seg_items / dt
        row["images_per_s"] = seg_images / dt
        if grad_norms:
            total = sum(grad_norms.values()) or 1.0
            for task, norm in grad_norms.items():
                row[f"{task}/grad_norm"] = norm
                row[f"{task}/grad_share"] = norm / total
        agent.eval()
        with torch.no_grad():
            row.update({f"val/{k}": float(v) for k, v in agent.validation_metrics().items()})
        agent.train()
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        tb.log(row)
        bar.set_postfix(loss=f"{row['loss']:.4g}", samples_s=f"{row['samples_per_s']:.0f}")
        sums, seg_items, seg_images, logged_steps = {}, 0, 0, 0
        seg_t = time.perf_counter()
        return row

    agent.train()
    try:
        while step < cfg.steps and tasks:
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            opt.zero_grad(set_to_none=True)
            # on the steps a metrics row closes, each task's share of the trunk's gradient
            measure = len(tasks) > 1 and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps)
            before = None
            for task in tasks:
                batch = _to(next(iters[task]), device)
                n = len(next(iter(batch.values())))
                with amp:
                    loss, metrics = agent.loss(task, batch)
                loss.backward()
                if measure:
                    now = trunk_gradient(agent.trunk)
                    grad_norms[task] = float((now - before).norm() if before is not None else now.norm())
                    before = now
                d = loss.detach().float()
                first_bad[task] = torch.where(
                    (first_bad[task] < 0) & ~torch.isfinite(d), torch.tensor(step, device=device), first_bad[task]
                )
                for k, v in {"loss": d, **metrics}.items():
                    key = f"{task}/{k}"
                    sums[key] = sums.get(key, 0) + v.float()
                seg_items += n
                seg_images += n * agent.images_per_item.get(task, 1)
                samples += n
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(agent.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            logged_steps += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                last_row = flush() or last_row
            if step % cfg.checkpoint_every == 0 and step != cfg.steps:
                last_row = flush() or last_row  # never checkpoint past a non-finite loss
                checkpoint(last_row)
        last_row = flush() or last_row
        checkpoint(last_row)
    finally:
        bar.close()
        tb.close()
        del iters
    if metrics_path.exists():
        _plot(metrics_path, out / "loss_curve.png")
    elapsed = time.perf_counter() - t0
    trained = samples - start_samples
    return {
        "step": step,
        "checkpoint": str(ckpt_path),
        "samples": samples,
        "samples_per_s": trained / elapsed if trained else 0.0,
        "images_per_s": (last_row or {}).get("images_per_s", 0.0),
        "loss": (last_row or {}).get("loss", float("nan")),
    }
