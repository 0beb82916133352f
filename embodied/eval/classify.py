"""Classification on frozen embeddings: linear probe, weighted kNN, few-shot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0, unbiased=False).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    weight_decay: float = 1e-3,
    iters: int = 200,
) -> float:
    """Accuracy of multinomial logistic regression (L-BFGS, L2) fitted on frozen (N, D) embeddings."""
    xs, xt = _standardise(train_x.double(), test_x.double())
    classes = torch.unique(train_y)
    remap = {int(c): i for i, c in enumerate(classes)}
    y = torch.tensor([remap[int(c)] for c in train_y], device=xs.device)
    w = torch.zeros(xs.shape[1], len(classes), dtype=torch.float64, device=xs.device, requires_grad=True)
    b = torch.zeros(len(classes), dtype=torch.float64, device=xs.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xs @ w + b, y) + weight_decay * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    pred = classes[(xt @ w + b).argmax(1)]
    return (pred == test_y.to(pred.device)).double().mean().item()


def knn_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Accuracy of similarity-weighted kNN voting (cosine similarity, weights exp(s / T))."""
    k = min(k, train_x.shape[0])
    a, b = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    sim, idx = (b @ a.T).topk(k, dim=1)
    classes = torch.unique(train_y)
    onehot = (train_y[idx][..., None] == classes).float()  # (M, k, C)
    votes = (onehot * (sim / temperature).exp()[..., None]).sum(1)
    pred = classes[votes.argmax(1)]
    return (pred == test_y.to(pred.device)).double().mean().item()


def few_shot(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    shots: Sequence[int] = (1, 6, 20),
    draws: int = 5,
    seed: int = 0,
) -> dict[int, tuple[float, float]]:
    """Linear-probe accuracy with n labelled examples per class: {n: (mean, std over draws)}.

    A class with fewer than n training examples contributes all it has.
    """
    rng = np.random.default_rng(seed)
    y = train_y.cpu().numpy()
    out = {}
    for n in shots:
        accs = []
        for _ in range(draws):
            pick = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in np.unique(y)])
            idx = torch.from_numpy(pick).to(train_x.device)
            accs.append(linear_probe(train_x[idx], train_y[idx], test_x, test_y))
        out[int(n)] = (float(np.mean(accs)), float(np.std(accs)))
    return out
