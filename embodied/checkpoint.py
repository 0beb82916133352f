"""The checkpoint of a training run: its format, atomic save, load, the resume check and RNG capture.

One file, ``checkpoint.pt`` in the run directory: a dict that ``torch.load(path, weights_only=True)``
reads (plain Python types and tensors only)::

    format:    "embodied.checkpoint/1"
    preset:    {"name", "agent", "description", "trunk", "train", "options"}  (plain TOML types)
    spec:      what the agent derived from its data (e.g. motion_classes, num_classes, action_dim)
    step:      int, optimiser steps taken;  samples: int, items trained on (summed over tasks)
    model:     the agent's state_dict, the trunk's tensors under "trunk." (the key :func:`embodied.encoder.load_encoder`
               reads);  optimizer: the optimiser's state_dict
    rng:       {"torch": ByteTensor (CPU generator state), "cuda": [ByteTensor per device] (empty on CPU)}
    metrics:   the last metrics row logged before the save ({} at step 0)
    distributed: {"world_size", "backend"} of a run of several processes (torchrun; absent for one process,
               whose checkpoint is as it always was). Only rank 0 writes; ``model`` is the unwrapped agent's.

Writes are atomic (temporary name in the same directory, fsync, rename), so a process killed at any
moment (``kill -9`` included) leaves the previous checkpoint or the new one, never a partial file.
Used by the training loop (:mod:`embodied.train`) and by :mod:`embodied.encoder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from embodied.agents.base import Agent
    from embodied.agents.registry import AgentPreset

CHECKPOINT_FORMAT = "embodied.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
RESUMED_SECTIONS = ("agent", "trunk", "options")  # what a resumed run must share with its checkpoint


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (non-finite loss, mismatched resume...)."""


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


def _replace_atomically(path: Path, mode: str, write: Callable[[IO[Any]], None]) -> Path:
    """Write ``path`` through ``write(fh)`` on ``.<name>.tmp-<pid>`` (opened with ``mode``), fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, mode) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def save_checkpoint(path: str | Path, obj: dict[str, Any]) -> None:
    """torch.save to a temporary name in the same directory, fsync, then rename over ``path``.

    A process killed at any moment (``kill -9`` included) leaves ``path`` either the previous
    checkpoint or the new one, never a partial file; at worst a stale ``.<name>.tmp-<pid>`` that
    :func:`remove_stale_temporaries` removes (the training loop calls it when it starts).
    """
    path = Path(path)
    _replace_atomically(path, "wb", lambda fh: torch.save(obj, fh))
    _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    """``path.write_text(text)`` that a kill cannot leave half-written (temporary name, then rename)."""
    _replace_atomically(Path(path), "w", lambda fh: fh.write(text))


def remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary checkpoint files in run directory ``out`` left by writes a kill interrupted."""
    for stale in Path(out).glob(f".{CHECKPOINT_NAME}.tmp-*"):
        stale.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict (``weights_only=True``); ``path`` may be the file or its run directory.

    Raises FileNotFoundError when there is none, ValueError when the file is not an embodied checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an embodied checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def resume_checkpoint(path: Path, preset: AgentPreset, resume: bool) -> dict[str, Any] | None:
    """The checkpoint a run continues from (``resume``), or None for a fresh run; TrainingError otherwise.

    With ``resume`` the checkpoint at ``path`` must exist and share ``agent``, ``trunk`` and ``options``
    with ``preset`` (``train`` may change, e.g. more steps). Without it, an existing checkpoint is an
    error rather than silently overwritten.
    """
    if not resume:
        if path.exists():
            raise TrainingError(f"{path} exists: pass resume=True (--resume) or another output directory")
        return None
    if not path.exists():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    ckpt = load_checkpoint(path)
    saved = ckpt["preset"]
    for section in RESUMED_SECTIONS:
        if saved[section] != getattr(preset, section):
            raise TrainingError(
                f"--resume: {section} differs from the checkpoint's ({saved[section]!r} != "
                f"{getattr(preset, section)!r}); resume with the same preset"
            )
    return ckpt


def capture_rng(cuda: bool) -> dict[str, Any]:
    """{"torch": ByteTensor, "cuda": [ByteTensor per device]}: the generator states a resume restores.

    The CUDA states only when ``cuda`` (the run trains on a GPU), else an empty list.
    """
    return {"torch": torch.get_rng_state(), "cuda": list(torch.cuda.get_rng_state_all()) if cuda else []}


def restore_rng(rng: dict[str, Any], cuda: bool) -> None:
    """Set the generators to the states :func:`capture_rng` returned (CUDA ones only when ``cuda``)."""
    torch.set_rng_state(rng["torch"])
    if cuda and rng.get("cuda"):
        torch.cuda.set_rng_state_all(rng["cuda"])


def model_state(agent: Agent) -> dict[str, torch.Tensor]:
    """The agent's state_dict with the trunk's tensors under "trunk.", also when the trunk is torch.compiled."""
    trunk = getattr(agent.trunk, "_orig_mod", agent.trunk)  # unwrap torch.compile
    state = {k: v for k, v in agent.state_dict().items() if not k.startswith("trunk.")}
    state.update({f"trunk.{k}": v for k, v in trunk.state_dict().items()})
    return state


class Checkpointer:
    """Saves one run's checkpoint to ``path`` and remembers the last step saved (None before any).

    ``save`` captures the agent, optimiser and RNG state as they are at the call; the training loop
    calls it only after checking that every loss since the previous save was finite.
    """

    def __init__(
        self,
        path: Path,
        preset: AgentPreset,
        agent: Agent,
        optimizer: torch.optim.Optimizer,
        cuda: bool,
        saved_step: int | None = None,
        writes: bool = True,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """writes: False on the ranks of a distributed run but rank 0 (they only remember the step saved);
        meta: extra top-level entries of every checkpoint (e.g. {"distributed": {...}})."""
        self.path, self.preset, self.agent, self.optimizer, self.cuda = path, preset, agent, optimizer, cuda
        self.saved_step, self.writes, self.meta = saved_step, writes, dict(meta or {})

    def save(self, step: int, samples: int, metrics: dict[str, Any] | None) -> None:
        """Write the checkpoint of ``step`` (optimiser steps) and ``samples`` (items) with the last row ``metrics``."""
        if not self.writes:
            self.saved_step = step
            return
        save_checkpoint(
            self.path,
            {
                "format": CHECKPOINT_FORMAT,
                "preset": self.preset.to_dict(),
                "spec": dict(self.agent.spec),
                "step": step,
                "samples": samples,
                "model": model_state(self.agent),
                "optimizer": self.optimizer.state_dict(),
                "rng": capture_rng(self.cuda),
                "metrics": metrics or {},
                **self.meta,
            },
        )
        self.saved_step = step

    def describe(self) -> str:
        """Where the last good checkpoint is, for an error message: "<path> (step N)" or "none (...)"."""
        if self.saved_step is None:
            return "none (no step was saved)"
        return f"{self.path} (step {self.saved_step})"
