"""Embedding image arrays with a frozen encoder, in batches, on the encoder's device."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm


@torch.no_grad()
def embed(
    encoder: nn.Module, images: np.ndarray, batch: int = 512, progress: bool = False, desc: str = "embed"
) -> torch.Tensor:
    """uint8 images (N, H, W, 3) -> (N, D) float32 embeddings on the encoder's device."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images of shape {images.shape} and dtype {images.dtype}; expected (N, H, W, 3) uint8")
    param = next(encoder.parameters(), None)  # network-free floors have none: they run on the CPU
    device = param.device if param is not None else torch.device("cpu")
    out = []
    for start in tqdm(range(0, len(images), batch), desc=desc, unit="batch", disable=not progress):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).to(device, non_blocking=True)
        z = encoder(chunk)
        if not torch.isfinite(z).all():
            raise ValueError(f"the encoder produced NaN or inf embeddings (batch at {start})")
        out.append(z.float())
    return torch.cat(out)
