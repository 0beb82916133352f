"""SimCLR's standard augmentations, batched on the training device.

Per image: random resized crop (scale 0.2..1, aspect 3/4..4/3), horizontal flip (p 0.5),
colour jitter (brightness, contrast, saturation 0.4, p 0.8), grayscale (p 0.2). Blur is
left out, as in SimCLR's small-image (CIFAR) setting. One ``grid_sample`` does crop, flip and
resize for the whole batch, so augmentation costs about one extra conv layer, not a CPU worker.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def simclr_augment(x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """x: (N, 3, H, W) float in [0, 1] -> augmented (N, 3, H, W) in [0, 1] (draws from torch's global RNG)."""
    n, dev = len(x), x.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, device=dev) * (hi - lo) + lo

    scale = u(0.2, 1.0)
    log_r = u(math.log(3 / 4), math.log(4 / 3))
    ratio = torch.exp(log_r)
    w = torch.sqrt(scale * ratio).clamp(max=1.0)
    h = torch.sqrt(scale / ratio).clamp(max=1.0)
    cx = (1 - w) * (u(-1.0, 1.0))
    cy = (1 - h) * (u(-1.0, 1.0))
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    s = 0.4 * strength
    jitter = (torch.rand(n, 1, 1, 1, device=dev) < 0.8).float()

    def factor() -> torch.Tensor:
        return 1 + jitter * (torch.rand(n, 1, 1, 1, device=dev) * 2 - 1) * s

    x = x * factor()
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor() + mean
    g = _gray(x)
    x = (x - g) * factor() + g
    gray = (torch.rand(n, 1, 1, 1, device=dev) < 0.2).float()
    x = gray * _gray(x) + (1 - gray) * x
    return x.clamp(0, 1)
