"""Every loss against a value computed by hand on a tiny example; equivariance learns known linear maps."""

from __future__ import annotations

import math

import pytest
import torch

from embodied.nn import (
    EquivarianceMaps,
    classification_loss,
    cosine_embedding_loss,
    equivariance_loss,
    grasp_loss,
    nt_xent,
    regression_loss,
    triplet_margin_loss,
)
from embodied.nn.losses import equivariance_gain


def test_equivariance_loss_by_hand():
    z_i = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_j = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    g = torch.tensor([0, 1])
    maps = torch.stack([torch.tensor([[0.0, -1.0], [1.0, 0.0]]), 2 * torch.eye(2)])  # 90 deg rotation; scale 2
    # positives: M0 z_i0 = (0, 1) = z_j0 -> d 0; M1 z_i1 = (0, 2) vs (0, 0) -> d 2: 0.5 * mean(0, 4) = 1
    # frame negatives (z_j rolled): d((0,1),(0,0)) = 1, d((0,2),(0,1)) = 1 -> 0.5 * (2 - 1)^2 each = 0.5
    # class negatives g' = (1, 0): M1 z_i0 = (2, 0) vs (0, 1): sqrt 5 > 2 -> 0; M0 z_i1 = (-1, 0) vs (0, 0): 1 -> 0.5
    out = equivariance_loss(z_i, z_j, g, maps, 2.0, z_j.roll(1, 0), torch.tensor([1, 0]))
    assert out["pos"].item() == pytest.approx(1.0, abs=1e-6)
    assert out["neg"].item() == pytest.approx(0.5 + 0.25, abs=1e-6)
    assert out["loss"].item() == pytest.approx(1.75, abs=1e-6)
    # class negatives with their own margin 1: sqrt 5 > 1 -> 0; 1 >= 1 -> 0; only the frame negatives' 0.5 stay
    scaled = equivariance_loss(z_i, z_j, g, maps, 2.0, z_j.roll(1, 0), torch.tensor([1, 0]), class_margin=1.0)
    assert scaled["neg"].item() == pytest.approx(0.5, abs=1e-6)
    assert scaled["loss"].item() == pytest.approx(1.5, abs=1e-6)
    # a tensor margin (the agent's: a multiple of the batch's mean pair distance) gives the same
    as_tensor = equivariance_loss(z_i, z_j, g, maps, 2.0, z_j.roll(1, 0), torch.tensor([1, 0]), torch.tensor(1.0))
    assert as_tensor["loss"].item() == pytest.approx(1.5, abs=1e-6)
    # slowness: M = I, positives only -> 0.5 * mean(||(1,-1)||^2, ||(0,1)||^2) = 0.5 * 1.5
    assert equivariance_loss(z_i, z_j, g, None, 2.0)["loss"].item() == pytest.approx(0.75, abs=1e-6)


def test_grasp_loss_uses_only_the_tried_bin():
    logits = torch.zeros(2, 18)
    logits[0, 3], logits[1, 5] = 2.0, -1.0
    logits[0, 4] = 100.0  # an untried bin: must not matter
    want = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2  # -log s(2), -log(1 - s(-1))
    got = grasp_loss(logits, torch.tensor([3, 5]), torch.tensor([1.0, 0.0]))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_regression_losses_by_hand():
    pred, target = torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)
    assert regression_loss(pred, target, "mse").item() == pytest.approx(2.5)
    assert regression_loss(pred, target, "smooth_l1").item() == pytest.approx((0.5 + 1.5) / 2)
    with pytest.raises(ValueError, match="differ"):
        regression_loss(pred, torch.zeros(1, 3))


def test_identity_losses_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    n = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    # row 0: 1 - cos45 + max(0, 0 - 0.5); row 1: 0 + max(0, cos45 - 0.5)
    want = ((1 - 2**-0.5) + (2**-0.5 - 0.5)) / 2
    assert cosine_embedding_loss(a, p, n, 0.5).item() == pytest.approx(want, rel=1e-6)
    # ||a - p|| = 5, ||a - n|| = 1, margin 1 -> 5
    got = triplet_margin_loss(torch.zeros(1, 2), torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]]), 1.0)
    assert got.item() == pytest.approx(5.0, rel=1e-5)


def test_nt_xent_by_hand():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    t = 0.5
    views = [(v[0] / math.hypot(*v), v[1] / math.hypot(*v)) for v in [(1.0, 0.0), (0.0, 2.0), (1.0, 1.0), (-1.0, 0.0)]]

    def sim(a, b):
        return (a[0] * b[0] + a[1] * b[1]) / t

    total = 0.0
    for i in range(4):
        partner = (i + 2) % 4
        denom = sum(math.exp(sim(views[i], views[k])) for k in range(4) if k != i)
        total += -math.log(math.exp(sim(views[i], views[partner])) / denom)
    assert nt_xent(z1, z2, t).item() == pytest.approx(total / 4, rel=1e-5)


def test_nt_xent_groups_leave_same_instance_views_out_of_the_softmax():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    groups = torch.tensor([7, 3, 7])  # rows 0 and 2 show one instance
    t = 0.5
    raw = [*z1.tolist(), *z2.tolist()]
    views = [(a / math.hypot(a, b), b / math.hypot(a, b)) for a, b in raw]
    g = [7, 3, 7, 7, 3, 7]

    def sim(a, b):
        return (a[0] * b[0] + a[1] * b[1]) / t

    total = 0.0
    for i in range(6):
        partner = (i + 3) % 6
        # the partner, and every view of another instance; never a view of the same instance's other row
        kept = [k for k in range(6) if k != i and (k == partner or g[k] != g[i])]
        denom = sum(math.exp(sim(views[i], views[k])) for k in kept)
        total += -math.log(math.exp(sim(views[i], views[partner])) / denom)
    assert nt_xent(z1, z2, t, groups=groups).item() == pytest.approx(total / 6, rel=1e-5)
    # distinct groups are plain NT-Xent
    assert nt_xent(z1, z2, t, groups=torch.tensor([0, 1, 2])).item() == pytest.approx(nt_xent(z1, z2, t).item())


def test_classification_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert classification_loss(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75), rel=1e-6)


def _fit_maps(z_i, z_j, g, n_classes, steps=400):
    maps = EquivarianceMaps(n_classes, z_i.shape[1])
    opt = torch.optim.Adam(maps.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        out = equivariance_loss(z_i, z_j, g, maps.weight, 1.0, z_j.roll(1, 0), (g + 1) % n_classes)
        out["loss"].backward()
        opt.step()
    return out


def _orthogonal(gen, n, d):
    q, _ = torch.linalg.qr(torch.randn(n, d, d, generator=gen))
    return q


def test_equivariance_loss_reaches_zero_for_known_linear_maps_and_not_for_random_ones():
    gen = torch.Generator().manual_seed(0)
    n, d, k = 256, 8, 3
    z_i = torch.randn(n, d, generator=gen)
    g = torch.randint(0, k, (n,), generator=gen)
    truth = _orthogonal(gen, k, d)
    fit = _fit_maps(z_i, torch.einsum("nij,nj->ni", truth[g], z_i), g, k)
    assert fit["loss"].item() < 1e-3
    # a fresh random map per pair: no M_g can explain them, the loss stays high
    random_maps = _orthogonal(gen, n, d)
    fit = _fit_maps(z_i, torch.einsum("nij,nj->ni", random_maps, z_i), g, k)
    assert fit["loss"].item() > 1.0


def test_equivariance_gain_by_hand():
    z_i = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_j = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])  # z_i rotated by +90 deg
    g = torch.tensor([0, 0])
    rot = torch.tensor([[[0.0, -1.0], [1.0, 0.0]]])
    # the true map: d_map = 0, d_id = sqrt 2 -> gain 1
    exact = equivariance_gain(z_i, z_j, g, rot)
    assert exact["equivariance_gain"].item() == pytest.approx(1.0, abs=1e-6)
    assert exact["dist_identity"].item() == pytest.approx(math.sqrt(2), rel=1e-6)
    # identity maps (slowness): 0 by definition
    assert equivariance_gain(z_i, z_j, g, None)["equivariance_gain"].item() == pytest.approx(0.0, abs=1e-7)
    # the inverse rotation: M z_i = -z_j, d_map = 2 -> gain 1 - 2 / sqrt 2 (worse than no map)
    worse = equivariance_gain(z_i, z_j, g, rot.transpose(1, 2))
    assert worse["equivariance_gain"].item() == pytest.approx(1 - math.sqrt(2), rel=1e-6)
    # slowness gain: partners rolled by N // 2 = 1: ||(1,0) - (-1,0)|| = 2, ||(0,1) - (0,1)|| = 0 -> d_rand 1
    assert exact["dist_random"].item() == pytest.approx(1.0, rel=1e-6)
    assert exact["slowness_gain"].item() == pytest.approx(1 - math.sqrt(2), rel=1e-6)


def test_equivariance_gain_is_positive_for_known_linear_maps_and_about_zero_for_random_ones():
    gen = torch.Generator().manual_seed(0)
    n, d, k = 512, 8, 4
    z_i = torch.randn(n, d, generator=gen)
    g = torch.randint(0, k, (n,), generator=gen)
    truth = _orthogonal(gen, k, d)
    z_j = torch.einsum("nij,nj->ni", truth[g], z_i) + 0.1 * torch.randn(n, d, generator=gen)
    assert equivariance_gain(z_i, z_j, g, truth)["equivariance_gain"].item() > 0.8
    wrong = _orthogonal(gen, k, d)  # maps that are not the motions: about as good as no map
    assert abs(equivariance_gain(z_i, z_j, g, wrong)["equivariance_gain"].item()) < 0.25


def test_map_drift_by_hand():
    maps = EquivarianceMaps(2, 4)
    assert maps.drift().item() == 0.0
    a = 0.5
    with torch.no_grad():
        maps.weight[0, :2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    # ||R - I||_F = 2 sqrt 2 sin(a / 2) for map 0, 0 for map 1; mean over maps / sqrt(D = 4)
    assert maps.drift().item() == pytest.approx(2 * math.sqrt(2) * math.sin(a / 2) / 2 / 2, rel=1e-6)
