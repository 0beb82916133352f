"""Object-centred glimpses: a trunk read at the scale of the objects, for a policy that must tell them apart.

On ReachObject's 64 px view an object is 5-14 px across, one or two cells of the trunk's 8x8 last
map, and what the map holds there says little about the category: a linear probe on the map under
an object reads 0.44 (untrained trunk, chance 0.25), on the same object's 16 px crop resized to the
trunk's input 0.63 (``scripts/probe_objects.py``, ``docs/rl.md``). A glimpse pathway gives the
policy the second:

1. **where** (:func:`propose`, no network, the same for every encoder): the table is one colour,
   the image's per-channel median; pixels that differ from it by more than ``FG_THRESHOLD`` are
   figure; the figure density (a box mean over ``DENSITY_KERNEL`` px) is searched ``n`` times for
   its peak, each peak's neighbourhood (``SUPPRESS`` px) cleared of figure before the next (non-maximum
   suppression, as object proposals by background subtraction in Pinto & Gupta, ICRA 2016).
   Glimpses are found biggest first; the fingertip is one of them;
2. **what** (:func:`crop`): the ``2 x RADIUS`` px square round each peak, resampled to the trunk's
   input size, goes through the trunk to its pooled embedding (D);
3. **which** (:class:`GlimpseAttention`): each glimpse scores how well it matches the goal, a
   cosine with the exemplar's glimpse (the goal by example: zero-shot, what the trunk already
   says) and/or a learned linear score per goal one-hot; a softmax over the glimpses gives the
   attended position, which, with every glimpse's position and weight, is what the policy reads.

Positions are in [-1, 1] image coordinates (x to the right, y downwards, pixel centres as
``grid_sample`` with ``align_corners=False`` places them), as :class:`SpatialSoftmax`'s keypoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GLIMPSES = 4  # ReachObject: 3 objects and the fingertip
RADIUS = 8  # px at 64 px: half a glimpse's side, the object probe's crop (covers the largest footprint)
FG_THRESHOLD = 0.06  # largest channel difference from the table's colour (in [0, 1]) that counts as figure
DENSITY_KERNEL = 7  # px: box mean over the figure mask; its peaks are the blobs' centres (5 px splits a torus)
SUPPRESS = 8  # px: half the side of the square a found peak clears (objects stand >= 14 px apart)
MIN_DENSITY = 0.3  # a peak whose box holds less figure than this is no glimpse (valid = False)
PACKED = 3  # x, y, valid ahead of the embedding in a packed glimpse row
TEMPERATURE = 0.05  # initial softmax temperature over the glimpses' scores (cosines differ by ~0.1-0.3)


def background(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images -> (N, 3): each channel's median over pixels, the table's colour when it fills
    most of the view."""
    return images.flatten(2).median(-1).values


def at_size(px: int, width: int) -> int:
    """A length given in px of a 64 px image, at ``width`` px (at least 1)."""
    return max(1, round(px * width / 64))


def propose(
    images: torch.Tensor, n: int = GLIMPSES, threshold: float = FG_THRESHOLD, min_density: float = MIN_DENSITY
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) images in [0, 1] -> centres (N, n, 2) in [-1, 1] (x, y) and valid (N, n) bool.

    Peaks of the figure density, biggest first (see the module docstring); a glimpse past the
    last blob is invalid, its centre (0, 0). Lengths in px scale with the image's width. Without
    gradient: where to look is not learned.
    """
    kernel = at_size(DENSITY_KERNEL, images.shape[-1]) | 1  # odd, so the box mean stays centred
    suppress = at_size(SUPPRESS, images.shape[-1])
    with torch.no_grad():
        x = images.float()
        figure = ((x - background(x)[..., None, None]).abs().amax(1) > threshold).float()  # (N, H, W)
        nb, h, w = figure.shape
        rows = torch.arange(h, device=x.device)[None, :, None]
        cols = torch.arange(w, device=x.device)[None, None, :]
        centres = torch.zeros(nb, n, 2, device=x.device)
        valid = torch.zeros(nb, n, dtype=torch.bool, device=x.device)
        for k in range(n):
            density = F.avg_pool2d(figure[:, None], kernel, stride=1, padding=kernel // 2, count_include_pad=True)
            peak, idx = density.flatten(1).max(-1)
            valid[:, k] = peak >= min_density
            # the blob's centre: the figure's centroid in the peak's square (a box-mean peak can sit
            # anywhere on a plateau); the square round it is then cleared of figure, so what is left
            # of this blob at its edges is no peak of its own
            near = _square(rows, cols, idx // w, idx % w, suppress)
            mass = figure * near
            total = mass.flatten(1).sum(-1).clamp_min(1.0)
            cx = (mass * cols).flatten(1).sum(-1) / total
            cy = (mass * rows).flatten(1).sum(-1) / total
            centres[:, k, 0] = (2 * cx + 1) / w - 1
            centres[:, k, 1] = (2 * cy + 1) / h - 1
            figure = figure * ~(near | _square(rows, cols, cy.round(), cx.round(), suppress))
        centres = centres * valid[..., None]
    return centres, valid


def _square(rows: torch.Tensor, cols: torch.Tensor, r: torch.Tensor, c: torch.Tensor, half: int) -> torch.Tensor:
    """(N, H, W) bool: the pixels within ``half`` (Chebyshev) of (r, c), per image ((N,) rows and columns)."""
    return ((rows - r[:, None, None]).abs() <= half) & ((cols - c[:, None, None]).abs() <= half)


def crop(images: torch.Tensor, centres: torch.Tensor, size: int = 64) -> torch.Tensor:
    """(N, 3, H, W) images, (N, n, 2) centres in [-1, 1] -> (N * n, 3, size, size): the square of side
    2 ``RADIUS`` (px of a 64 px image) round each centre, bilinearly resampled (edge pixels repeated past the
    border); row ``i * n + k`` is glimpse k of image i."""
    nb, n = centres.shape[:2]
    h, w = images.shape[-2:]
    radius = at_size(RADIUS, w)
    theta = torch.zeros(nb * n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = 2 * radius / w
    theta[:, 1, 1] = 2 * radius / h
    theta[:, :, 2] = centres.reshape(-1, 2).to(images.dtype)
    grid = F.affine_grid(theta, [nb * n, 3, size, size], align_corners=False)
    src = images.repeat_interleave(n, dim=0)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)


def pack(centres: torch.Tensor, valid: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """(N, n, 2), (N, n), (N * n, D) -> (N, n, 3 + D) rows x, y, valid, embedding: one tensor, so a frozen
    trunk's glimpses can be cached by image (:class:`embodied.rl.feature_cache.FeatureCache`)."""
    nb, n = valid.shape
    return torch.cat([centres, valid[..., None].to(centres.dtype), embeddings.reshape(nb, n, -1)], dim=-1)


class GlimpseAttention(nn.Module):
    """Which glimpse is the goal: (N, n, 3 + D) packed glimpses -> (N, 3 + 3n) policy features.

    Each valid glimpse scores ``(cos(P e, P e_goal) + w_g . P e / |P e|) / T``: the cosine with the
    exemplar's glimpse embedding ``e_goal`` (with ``exemplar``; P a learned D x D map initialised to the
    identity, so the first score is the trunk's own zero-shot match) plus a linear score for the goal
    one-hot g (with ``cond_dim``; w initialised to zero, each goal learns its own), over a learned
    temperature T (from ``TEMPERATURE``; dividing by it lets the goal scores, whose weights Adam moves
    by about the learning rate per step, reach a decisive logit gap ~20x sooner: labelled fits on
    ReachObject's glimpses, ``docs/rl.md``). A softmax over valid glimpses weighs them. Output: the
    attended (x, y), the largest weight (how sure), then every glimpse's x, y and weight (0 for
    invalid ones).
    """

    def __init__(self, dim: int, glimpses: int = GLIMPSES, cond_dim: int = 0, exemplar: bool = False) -> None:
        super().__init__()
        self.glimpses = glimpses
        self.proj = nn.Linear(dim, dim)
        self.cond = nn.Linear(cond_dim, dim, bias=False) if cond_dim else None
        self.exemplar = exemplar
        self.log_temperature = nn.Parameter(torch.tensor(TEMPERATURE).log())
        self.reset_parameters()

    @property
    def out_dim(self) -> int:
        return 3 + 3 * self.glimpses

    def reset_parameters(self) -> None:
        """The identity map and zero goal scores (called again after SB3's orthogonal initialisation)."""
        with torch.no_grad():
            nn.init.eye_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
            if self.cond is not None:
                nn.init.zeros_(self.cond.weight)

    def forward(
        self, glimpses: torch.Tensor, cond: torch.Tensor | None = None, exemplar: torch.Tensor | None = None
    ) -> torch.Tensor:
        """glimpses (N, n, 3 + D) from :func:`pack`; cond (N, G) goal one-hot; exemplar (N, D) embedding."""
        pos, valid, emb = glimpses[..., :2], glimpses[..., 2] > 0.5, glimpses[..., PACKED:]
        u = F.normalize(self.proj(emb), dim=-1)  # (N, n, D)
        score = torch.zeros(valid.shape, device=glimpses.device, dtype=u.dtype)
        if self.exemplar:
            if exemplar is None:
                raise ValueError("this attention matches an exemplar; pass its embedding as exemplar=")
            score = score + torch.einsum("nkd,nd->nk", u, F.normalize(self.proj(exemplar), dim=-1))
        if self.cond is not None:
            if cond is None:
                raise ValueError("this attention is conditioned on the goal; pass its values as cond=")
            score = score + torch.einsum("nkd,nd->nk", u, self.cond(cond.float().flatten(1)))
        score = score / self.log_temperature.exp()
        weight = score.masked_fill(~valid, -1e4).softmax(-1) * valid
        point = (weight[..., None] * pos).sum(1)
        per_glimpse = torch.cat([pos, weight[..., None]], dim=-1).flatten(1)
        return torch.cat([point, weight.amax(-1, keepdim=True), per_glimpse], dim=1)


__all__ = ["GLIMPSES", "PACKED", "RADIUS", "GlimpseAttention", "at_size", "background", "crop", "pack", "propose"]
