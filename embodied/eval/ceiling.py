"""The supervised ceiling of the object sets: the trunk trained on category labels.

Its training images are views of the library's *train* instances in the style of every object
set (:func:`embodied.eval.sets.load_ceiling_views`), so it sees what the evaluation varies
(backdrops, light, distance, recolouring) but never an evaluated instance. It trains through the
same loop and checkpoint format as every agent (``supervised`` preset, label ``category``), so
``load_encoder`` reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from embodied.eval.sets import load_ceiling_views

CEILING_STEPS = {"small": 400, "full": 6000}


class LabelledImages(Dataset):
    """Items {"rgb": (H, W, 3) uint8, "category": float64 scalar} over in-memory arrays."""

    def __init__(self, images: np.ndarray, category: np.ndarray) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.category = torch.as_tensor(category, dtype=torch.float64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"rgb": self.images[i], "category": self.category[i]}


def train_ceiling(
    out: str | Path,
    size: str = "small",
    steps: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
    trunk: dict | None = None,
    progress: bool = True,
) -> Path:
    """Train (or finish, or reuse) the category ceiling in ``out``; returns its checkpoint path."""
    from embodied.agents.registry import apply_overrides, load_preset
    from embodied.sim.objects import CATEGORIES
    from embodied.train import CHECKPOINT_NAME, load_checkpoint, train

    steps = CEILING_STEPS[size] if steps is None else int(steps)
    out = Path(out)
    overrides = [
        'options.label="category"',
        f"options.num_classes={len(CATEGORIES)}",
        f"train.steps={steps}",
        f"train.batch_size={batch_size}",
        "train.num_workers=0",
        f'train.device="{device}"',
        f"train.checkpoint_every={max(1, steps // 4)}",
    ]
    overrides += [f"trunk.{k}={v!r}".replace("'", '"') for k, v in (trunk or {}).items()]
    preset = apply_overrides(load_preset("supervised"), overrides)
    ckpt = out / CHECKPOINT_NAME
    if ckpt.exists() and int(load_checkpoint(ckpt)["step"]) >= steps:
        return ckpt
    views = load_ceiling_views(size, progress)
    train(preset, {"frames": LabelledImages(views["images"], views["category"])}, out, ckpt.exists(), progress)
    return ckpt
