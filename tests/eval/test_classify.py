import numpy as np
import pytest
import torch

from embodied.eval.classify import few_shot_correct, knn_accuracy, linear_probe, linear_probe_predict


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


def test_few_shot_improves_with_shots_and_scores_each_query():
    x, y = blobs(n_per=40, spread=2.0)
    xt, yt = blobs(n_per=40, spread=2.0, seed=5)
    one = few_shot_correct(x, y, xt, yt, n=1, draws=4)
    twenty = few_shot_correct(x, y, xt, yt, n=20, draws=4)
    assert one.shape == twenty.shape == (len(yt),)
    assert twenty.mean() >= one.mean()
    # each query's score is the share of the 4 draws that got it right
    assert set(np.unique(one * 4)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert 0.0 < one.mean() < 1.0


def test_few_shot_matches_probes_fitted_by_hand():
    x, y = blobs(n_per=10, spread=2.0)
    xt, yt = blobs(n_per=10, spread=2.0, seed=3)
    got = few_shot_correct(x, y, xt, yt, n=2, draws=3, seed=7)
    rng = np.random.default_rng([7, 2])
    want = np.zeros(len(yt))
    for _ in range(3):
        pick = np.concatenate([rng.permutation(np.flatnonzero(y.numpy() == c))[:2] for c in np.unique(y.numpy())])
        want += (linear_probe_predict(x[pick], y[pick], xt) == yt).numpy()
    np.testing.assert_allclose(got, want / 3)
    assert linear_probe(x, y, x, y) == pytest.approx(linear_probe(x, y, x, y))
