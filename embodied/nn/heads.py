"""Task heads on top of the trunk; each maps named trunk features to its task's output.

Depths follow Pinto et al.: grasp on conv4-level maps, push on conv3 of two weight-shared
towers, poke and identity (and SimCLR, the classifier) on the pooled embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from embodied.nn.trunk import TrunkConfig


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers[:-1])


class ConvPool(nn.Module):
    """(N, C, H, W) -> (N, C_out): one 3x3 conv (the head's own "conv5"), ReLU, global average pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EquivarianceMaps(nn.Module):
    """One linear map M_g (D x D) per motion class g, initialised to the identity.

    ``weight``: (G, D, D). Identity start = the slowness solution, from which the maps only have
    to learn how each motion moves the embedding. Two ways to fit them (``fit``):

    - "sgd": ``weight`` is a parameter trained by the loss's gradients, jointly with the trunk
      (the paper's formulation).
    - "ridge": ``weight`` is a buffer, the closed-form least-squares map of the recent pairs of
      each class, shrunk towards the identity: M_g^T = (S_ii + lam I)^-1 (S_ij + lam I), with
      S_ii = sum w z_i z_i^T, S_ij = sum w z_i z_j^T over past batches (weight ``memory``^age)
      and lam = ``ridge`` x (the class's weighted pair count). :meth:`update` refits after each
      batch. The maps then never lag the moving features nor chase the negatives: only the
      trunk learns from the contrastive terms. Statistics are buffers, so checkpoints resume exactly.

    ``gather``: None, or a function (N, ...) -> (M, ...) that :meth:`update` applies to z_i, z_j and
    g first (``embodied.distributed`` sets it to gather every rank's pairs: the global batch's fit).
    """

    gather: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(self, n_classes: int, dim: int, fit: str = "sgd") -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"need at least one motion class; got {n_classes}")
        if fit not in ("sgd", "ridge"):
            raise ValueError(f"fit={fit!r}; expected 'sgd' or 'ridge'")
        self.fit = fit
        eye = torch.eye(dim).repeat(n_classes, 1, 1)
        if fit == "sgd":
            self.weight = nn.Parameter(eye)
        else:
            self.register_buffer("weight", eye)
            self.register_buffer("s_ii", torch.zeros(n_classes, dim, dim))
            self.register_buffer("s_ij", torch.zeros(n_classes, dim, dim))
            self.register_buffer("count", torch.zeros(n_classes))

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    def forward(self, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """z: (N, D), g: (N,) int64 -> M_g z: (N, D)."""
        return torch.einsum("nij,nj->ni", self.weight[g], z)

    @torch.no_grad()
    def update(self, z_i: torch.Tensor, z_j: torch.Tensor, g: torch.Tensor, memory: float, ridge: float) -> None:
        """ "ridge" fit: fold a batch of pairs into the statistics and refit every map.

        z_i, z_j: (N, D) embeddings (detached here), g: (N,) int64 classes; memory in [0, 1): the
        statistics' decay per call; ridge >= 0: shrinkage towards I per unit of pair count."""
        if self.fit != "ridge":
            raise RuntimeError("update() refits 'ridge' maps; 'sgd' maps learn from gradients")
        z_i, z_j = z_i.detach().float(), z_j.detach().float()
        if self.gather is not None:
            z_i, z_j, g = self.gather(z_i), self.gather(z_j), self.gather(g)
        onehot = torch.nn.functional.one_hot(g.long(), self.n_classes).float()  # (N, G): no atomics, deterministic
        self.s_ii.mul_(memory).add_(torch.einsum("ng,ni,nj->gij", onehot, z_i, z_i))
        self.s_ij.mul_(memory).add_(torch.einsum("ng,ni,nj->gij", onehot, z_i, z_j))
        self.count.mul_(memory).add_(onehot.sum(0))
        eye = torch.eye(self.weight.shape[-1], device=z_i.device)
        lam = (ridge * self.count).clamp_min(1e-6)[:, None, None] * eye
        self.weight.copy_(torch.linalg.solve(self.s_ii + lam, self.s_ij + lam).transpose(1, 2))

    def drift(self) -> torch.Tensor:
        """Scalar: mean over g of ||M_g - I||_F / sqrt(D), how far the maps moved from the identity
        (0 at the start; a rotation by angle a in one plane of D dims gives 2 sin(a / 2) sqrt(2 / D))."""
        w = self.weight.detach()
        eye = torch.eye(w.shape[-1], device=w.device, dtype=w.dtype)
        return (w - eye).flatten(1).norm(dim=1).mean() / w.shape[-1] ** 0.5


class GraspHead(nn.Module):
    """Grasp patch features (default conv4) -> (N, 18) success logits, one per 10-degree angle bin."""

    def __init__(self, trunk: TrunkConfig, layer: str = "conv4", hidden: int = 256, bins: int = 18) -> None:
        super().__init__()
        self.layer = layer
        c = trunk.channels(layer)
        self.conv = ConvPool(c, c)
        self.fc = mlp([c, hidden, bins])

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """feats[layer]: (N, C, h, w) -> (N, bins) logits."""
        return self.fc(self.conv(feats[self.layer]))


class PushHead(nn.Module):
    """Siamese push: conv3-level maps of (before, after), from one shared trunk -> (N, A) push action.

    Each tower's map is reduced by a shared conv + pool, the two vectors are concatenated and
    regressed to the normalised action (start, direction, length).
    """

    def __init__(self, trunk: TrunkConfig, action_dim: int, layer: str = "conv3", hidden: int = 256) -> None:
        super().__init__()
        self.layer = layer
        c = trunk.channels(layer)
        self.conv = ConvPool(c, c)
        self.fc = mlp([2 * c, hidden, action_dim])

    def forward(self, before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> torch.Tensor:
        """before[layer], after[layer]: (N, C, h, w) -> (N, A)."""
        return self.fc(torch.cat([self.conv(before[self.layer]), self.conv(after[self.layer])], dim=1))


class EmbeddingHead(nn.Module):
    """An MLP on the pooled embedding: (N, D) -> (N, K). Poke regression, identity / SimCLR projection, classifier."""

    def __init__(self, dim: int, out: int, hidden: int | None = None) -> None:
        super().__init__()
        self.net = mlp([dim, out] if not hidden else [dim, hidden, out])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
