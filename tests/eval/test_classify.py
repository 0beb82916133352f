import pytest
import torch

from embodied.eval.classify import few_shot, knn_accuracy, linear_probe


def blobs(n_per=30, classes=4, dim=8, spread=0.3, seed=0):
    """Gaussian blobs around fixed class centres; ``seed`` draws new points, not new centres."""
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(123)) * 3
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([c + spread * torch.randn(n_per, dim, generator=g) for c in centres])
    y = torch.arange(classes).repeat_interleave(n_per)
    return x, y


def test_separable_blobs_are_classified():
    x, y = blobs()
    xt, yt = blobs(seed=1)
    assert linear_probe(x, y, xt, yt) == 1.0
    assert knn_accuracy(x, y, xt, yt) == 1.0


def test_random_labels_are_at_chance():
    x, _ = blobs(n_per=100)
    y = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(1))
    xt, _ = blobs(n_per=100, seed=2)
    yt = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(3))
    assert linear_probe(x, y, xt, yt) < 0.4
    assert knn_accuracy(x, y, xt, yt) < 0.4


def test_knn_hand_example():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    labels = torch.tensor([0, 1, 1])
    # query near [1, 0]: with k=1 it takes the label of [1, 0]
    assert knn_accuracy(train, labels, torch.tensor([[1.0, 0.1]]), torch.tensor([0]), k=1) == 1.0
    # with k=3 the two label-1 neighbours at similarity ~0.10 and ~0.77 lose to 0.995 at T=0.07
    assert knn_accuracy(train, labels, torch.tensor([[1.0, 0.1]]), torch.tensor([0]), k=3) == 1.0


def test_few_shot_reports_mean_and_spread_and_improves_with_shots():
    x, y = blobs(n_per=40, spread=2.0)
    xt, yt = blobs(n_per=40, spread=2.0, seed=5)
    res = few_shot(x, y, xt, yt, shots=(1, 20), draws=4)
    assert set(res) == {1, 20}
    assert res[20][0] >= res[1][0]
    assert all(0.0 <= m <= 1.0 and s >= 0.0 for m, s in res.values())
    assert res[1][1] > 0.0  # different draws give different accuracies


def test_few_shot_is_seeded():
    x, y = blobs(spread=2.0)
    assert few_shot(x, y, x, y, shots=(1,), draws=3, seed=7) == few_shot(x, y, x, y, shots=(1,), draws=3, seed=7)
    assert linear_probe(x, y, x, y) == pytest.approx(linear_probe(x, y, x, y))
