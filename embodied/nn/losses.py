"""Losses of every learner, as plain functions of tensors (shapes in each docstring).

Each is small enough to check by hand; ``tests/nn/test_losses.py`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Euclidean distance per row. a, b: (N, D) -> (N,). ``eps`` keeps the sqrt's gradient finite at 0."""
    return torch.sqrt(((a - b) ** 2).sum(-1) + eps)


def apply_maps(z: torch.Tensor, g: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
    """M_g z per row. z: (N, D); g: (N,) int64; maps: (G, D, D) or None (identity) -> (N, D)."""
    if maps is None:
        return z
    return torch.einsum("nij,nj->ni", maps[g], z)


def equivariance_loss(
    z_i: torch.Tensor,
    z_j: torch.Tensor,
    g: torch.Tensor,
    maps: torch.Tensor | None,
    margin: float,
    neg_frames: torch.Tensor | None = None,
    neg_g: torch.Tensor | None = None,
    class_margin: float | torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Contrastive ego-motion equivariance (Jayaraman & Grauman 2015), DrLIM form.

    z_i, z_j: (N, D) embeddings of the two frames of pairs related by motion class g: (N,) int64.
    maps: (G, D, D) one linear map per class, or None for M_g = I (slowness / DrLIM).
    Positives pull M_g z_i to z_j:                 0.5 * ||M_g z_i - z_j||^2.
    Negatives push pairs *not* related by g beyond the margin, 0.5 * max(0, m - ||.||)^2:
      neg_frames: (N, D) embeddings of unrelated frames, compared with M_g z_i;
      neg_g: (N,) int64 wrong classes g' != g, compared as ||M_g' z_i - z_j||, pushed beyond
        ``class_margin`` (a float or scalar tensor; default ``margin``).
    Returns {"loss": scalar (mean positive + mean of each negative term), "pos", "neg", "dist_pos", "dist_neg"}.
    """
    pred = apply_maps(z_i, g, maps)
    d_pos = pair_distance(pred, z_j)
    pos = 0.5 * (d_pos**2).mean()
    negs: list[tuple[torch.Tensor, float | torch.Tensor]] = []
    if neg_frames is not None:
        negs.append((pair_distance(pred, neg_frames), margin))
    if neg_g is not None and maps is not None:
        d = pair_distance(apply_maps(z_i, neg_g, maps), z_j)
        negs.append((d, margin if class_margin is None else class_margin))
    if negs:
        d_neg = torch.cat([d for d, _ in negs])
        neg = torch.stack([0.5 * (F.relu(m - d) ** 2).mean() for d, m in negs]).sum()
    else:
        d_neg = d_pos.new_zeros(0)
        neg = d_pos.new_zeros(())
    return {
        "loss": pos + neg,
        "pos": pos.detach(),
        "neg": neg.detach(),
        "dist_pos": d_pos.detach().mean(),
        "dist_neg": d_neg.detach().mean() if len(d_neg) else d_pos.new_zeros(()),
    }


def equivariance_gain(
    z_i: torch.Tensor, z_j: torch.Tensor, g: torch.Tensor, maps: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """How much of the change z_i -> z_j the maps explain (equivariance health, on held-out pairs).

    z_i, z_j: (N, D) embeddings of pairs related by motion class g: (N,) int64; maps: (G, D, D) or
    None (M_g = I). With d_map = mean ||M_g z_i - z_j|| and d_id = mean ||z_i - z_j||:
      equivariance_gain = 1 - d_map / d_id   (0 for identity maps, 1 when M_g z_i = z_j exactly,
                                              negative when the maps predict worse than no map);
      slowness_gain = 1 - d_id / d_rand, d_rand = mean ||z_i - z_k|| with z_k the partner of
        another pair (z_j rolled by N // 2): how much closer a frame is to its partner than to a
        random frame (0 when time carries no information).
    Returns scalars {"equivariance_gain", "slowness_gain", "dist_mapped", "dist_identity", "dist_random"}.
    """
    d_map = pair_distance(apply_maps(z_i, g, maps), z_j, eps=0.0).mean()
    d_id = pair_distance(z_i, z_j, eps=0.0).mean()
    n = len(z_j)
    d_rand = pair_distance(z_i, z_j.roll(max(1, n // 2), 0), eps=0.0).mean() if n > 1 else d_id
    tiny = torch.finfo(d_id.dtype).tiny
    return {
        "equivariance_gain": 1.0 - d_map / d_id.clamp_min(tiny),
        "slowness_gain": 1.0 - d_id / d_rand.clamp_min(tiny),
        "dist_mapped": d_map,
        "dist_identity": d_id,
        "dist_random": d_rand,
    }


def grasp_loss(logits: torch.Tensor, angle_bin: torch.Tensor, success: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on the tried angle bin only (Pinto et al.: the other 17 bins get no signal).

    logits: (N, 18); angle_bin: (N,) int64 in 0..17; success: (N,) float 0/1 -> scalar mean.
    """
    tried = logits.gather(1, angle_bin.long().view(-1, 1)).squeeze(1)
    return F.binary_cross_entropy_with_logits(tried.float(), success.float())


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Push action / poke force regression. pred, target: (N, K) -> scalar mean over N and K.

    kind: "mse" (mean squared error) or "smooth_l1" (Huber with beta 1).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if kind == "mse":
        return F.mse_loss(pred.float(), target.float())
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred.float(), target.float())
    raise ValueError(f"regression loss {kind!r}; expected 'mse' or 'smooth_l1'")


def cosine_embedding_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.5
) -> torch.Tensor:
    """Identity: views of one instance close, other instances apart (cosine embedding, as in Pinto et al.).

    anchor, positive, negative: (N, D). Per row: (1 - cos(a, p)) + max(0, cos(a, n) - margin).
    Returns the scalar mean over rows.
    """
    pos = 1.0 - F.cosine_similarity(anchor.float(), positive.float(), dim=-1)
    neg = F.relu(F.cosine_similarity(anchor.float(), negative.float(), dim=-1) - margin)
    return (pos + neg).mean()


def triplet_margin_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Identity, margin variant. (N, D) x3 -> scalar mean of max(0, ||a - p|| - ||a - n|| + margin)."""
    return F.relu(pair_distance(anchor, positive) - pair_distance(anchor, negative) + margin).mean()


def nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy over 2N views.

    z1, z2: (N, K) projections of two views of the same N things (two augmentations of one
    image, or two views of one object instance). For each of the 2N views the positive is its
    partner and the 2N - 2 other views are negatives. groups: optional (N,) int64 labels (e.g.
    instance ids): views of another row of the same group are neither positive nor negative
    (left out of the softmax), so a batch holding one instance twice does not push it from itself.
    Returns the scalar mean over the 2N views.
    """
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=-1)
    sim = z @ z.t() / temperature
    drop = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    if groups is not None:
        g = torch.cat([groups, groups]).to(z.device)
        same = g[:, None] == g[None, :]
        partner = torch.roll(torch.eye(2 * n, dtype=torch.bool, device=z.device), n, dims=1)
        drop = drop | (same & ~partner)
    sim = sim.masked_fill(drop, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Supervised cross-entropy. logits: (N, C); labels: (N,) int64 -> scalar mean."""
    return F.cross_entropy(logits.float(), labels.long())
