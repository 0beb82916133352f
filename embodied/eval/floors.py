"""Network-free floors: encoders with no learned weights, beside which every learner is read.

Both map uint8 images (N, H, W, 3) (or float (N, 3, H, W) in [0, 1]) to (N, D) float32, like
:func:`embodied.load_encoder`'s encoders, so evaluation treats them alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _as_float_nchw(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"uint8 images of shape {tuple(images.shape)}; expected (N, H, W, 3)")
        return images.permute(0, 3, 1, 2).float() / 255.0
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"float images of shape {tuple(images.shape)}; expected (N, 3, H, W)")
    return images.float()


class PixelFloor(nn.Module):
    """Area-downsampled pixels: (N, 3 * side * side), each image centred on its mean (side 8: D = 192)."""

    def __init__(self, side: int = 8) -> None:
        super().__init__()
        self.side = side
        self.embed_dim = 3 * side * side
        self.meta = {"agent": "pixels", "floor": True}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(_as_float_nchw(images), self.side).flatten(1)
        return x - x.mean(1, keepdim=True)


class ColourHistogramFloor(nn.Module):
    """Joint RGB histogram with ``bins`` per channel (8: D = 512), square-rooted.

    With cosine similarity, square-rooted histograms compare by the Bhattacharyya coefficient.
    """

    def __init__(self, bins: int = 8) -> None:
        super().__init__()
        self.bins = bins
        self.embed_dim = bins**3
        self.meta = {"agent": "colour histogram", "floor": True}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _as_float_nchw(images)
        q = (x * self.bins).long().clamp_(0, self.bins - 1)  # (N, 3, H, W) bin per channel
        code = (q[:, 0] * self.bins + q[:, 1]) * self.bins + q[:, 2]  # (N, H, W)
        n = code.shape[0]
        hist = torch.zeros(n, self.embed_dim, device=x.device)
        hist.scatter_add_(1, code.flatten(1), torch.ones_like(code.flatten(1), dtype=hist.dtype))
        return (hist / code[0].numel()).sqrt()


def floors() -> dict[str, nn.Module]:
    """The network-free floors by report name."""
    return {"pixels": PixelFloor(), "colour histogram": ColourHistogramFloor()}
