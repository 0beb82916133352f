"""Classification on frozen embeddings: linear probe, weighted kNN, few-shot; per-query outcomes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0, unbiased=False).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def linear_probe_predict(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    weight_decay: float = 1e-3,
    iters: int = 200,
) -> torch.Tensor:
    """(M,) labels predicted for ``test_x`` (M, D) by multinomial logistic regression (L-BFGS, L2)
    fitted on frozen (N, D) embeddings ``train_x`` with labels ``train_y`` (N,)."""
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
    return classes[(xt @ w + b).argmax(1)]


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    weight_decay: float = 1e-3,
    iters: int = 200,
) -> float:
    """Accuracy of :func:`linear_probe_predict` on (``test_x``, ``test_y``)."""
    pred = linear_probe_predict(train_x, train_y, test_x, weight_decay, iters)
    return (pred == test_y.to(pred.device)).double().mean().item()


def knn_predict(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, k: int = 20, temperature: float = 0.07
) -> torch.Tensor:
    """(M,) labels by similarity-weighted kNN voting (cosine similarity, weights exp(s / T))."""
    k = min(k, train_x.shape[0])
    a, b = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    sim, idx = (b @ a.T).topk(k, dim=1)
    classes = torch.unique(train_y)
    onehot = (train_y[idx][..., None] == classes).float()  # (M, k, C)
    votes = (onehot * (sim / temperature).exp()[..., None]).sum(1)
    return classes[votes.argmax(1)]


def knn_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Accuracy of :func:`knn_predict` on (``test_x``, ``test_y``)."""
    pred = knn_predict(train_x, train_y, test_x, k, temperature)
    return (pred == test_y.to(pred.device)).double().mean().item()


def few_shot_correct(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    n: int,
    draws: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """(M,) share of ``draws`` linear probes, each fitted on ``n`` random training examples per class,
    that label each test item correctly. A class with fewer than n examples contributes all it has."""
    rng = np.random.default_rng([seed, n])
    y = train_y.cpu().numpy()
    correct = np.zeros(len(test_y))
    for _ in range(draws):
        pick = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in np.unique(y)])
        idx = torch.from_numpy(pick).to(train_x.device)
        pred = linear_probe_predict(train_x[idx], train_y[idx], test_x)
        correct += (pred == test_y.to(pred.device)).cpu().numpy()
    return correct / draws
