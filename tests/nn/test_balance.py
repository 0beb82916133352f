"""Target normalisation and multi-task balance (synthetic tensors)."""

import json

import numpy as np
import pytest
import torch

from embodied.agents import apply_overrides, build_agent, load_preset
from embodied.agents.synthetic import synthetic_datasets
from embodied.nn.balance import LossBalancer, TargetScaler, target_column
from embodied.train import load_checkpoint, train

TINY = ["trunk.width=4", "trunk.embed_dim=16", "trunk.image_size=32", "options.hidden=32", "train.num_workers=0"]


def test_target_scaler_round_trips_and_standardises():
    rng = np.random.default_rng(0)
    values = rng.normal([3.0, -200.0], [457.0, 70.0], size=(500, 2))
    scaler = TargetScaler(values)
    x = torch.as_tensor(values, dtype=torch.float32)
    z = scaler(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(scaler.inverse(z), x, rtol=1e-5, atol=1e-3)
    # a constant channel is left unscaled rather than divided by ~0
    const = TargetScaler(np.c_[np.full(10, 5.0), np.arange(10.0)])
    assert const.std[0] == 1.0
    with pytest.raises(ValueError, match="finite"):
        TargetScaler(np.array([[np.nan]]))


def test_target_column_reads_tensors_without_images():
    ds = synthetic_datasets("curious", n=6)["poke"]
    np.testing.assert_allclose(target_column(ds, "line"), ds.tensors["line"].double().numpy())


def test_mean_balance_is_blind_to_a_task_rescaled_by_1e4():
    bal = LossBalancer(["a", "b"], "mean")
    x = torch.tensor(2.0, requires_grad=True)
    for scale in (1.0, 1e4):
        la, _ = bal("a", x**2)
        lb, norm = bal("b", scale * x**2)
        (ga,) = torch.autograd.grad(la, x)
        (gb,) = torch.autograd.grad(lb, x)
        assert gb.item() == pytest.approx(ga.item(), rel=1e-3)  # each task's first loss sets its scale
        assert norm.item() == pytest.approx(1.0)
        bal = LossBalancer(["a", "b"], "mean")
    with pytest.raises(ValueError, match="balance = 'gradnorm'"):
        LossBalancer(["a"], "gradnorm")


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("balance", ["mean", "uncertainty"])
def test_a_target_scaled_by_1e4_still_trains_every_head_and_takes_no_trunk(tmp_path, balance):
    datasets = synthetic_datasets("curious", n=16, size=32, seed=1)
    datasets["poke"].tensors["line"] = datasets["poke"].tensors["line"] * 1e4  # raw N/s-like scale
    datasets["push"].tensors["action"] = datasets["push"].tensors["action"] * 1e-4
    over = [*TINY, "train.steps=60", "train.batch_size=16", "train.log_every=10", "train.lr=3e-3", "train.warmup=0"]
    # equal task weights: the check is that balancing, not a weight chosen for identity, keeps shares in bounds
    equal = ["options.weights.identity=1.0"]
    preset = apply_overrides(load_preset("curious"), [*over, *equal, f'options.balance="{balance}"'])
    train(preset, datasets, tmp_path / "run", progress=False)
    r = rows(tmp_path / "run")
    for task in ("grasp", "push", "poke", "identity"):
        assert r[-1][f"{task}/raw"] < r[0][f"{task}/raw"], task
        assert all(row[f"{task}/grad_share"] <= 0.9 for row in r), (task, [row[f"{task}/grad_share"] for row in r])
    assert abs(sum(r[-1][f"{t}/grad_share"] for t in ("grasp", "push", "poke", "identity")) - 1.0) < 1e-6
    # the statistics travel in the checkpoint: predictions come back in the data's units
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    agent = build_agent(preset, datasets)
    agent.load_state_dict(ckpt["model"])
    line = datasets["poke"].tensors["line"]
    torch.testing.assert_close(agent.poke_scale.mean, line.mean(0))
    assert agent.predict_poke(datasets["poke"].tensors["rgb"][:4]).abs().mean() > 100  # N/s, not z-scores


def test_recolour_permutes_and_scales_channels_of_the_chosen_share():
    from embodied.agents.curious import recolour

    torch.manual_seed(0)
    images = torch.randint(1, 256, (32, 4, 4, 3), dtype=torch.uint8)
    assert torch.equal(recolour(images, 0.0), images)
    out, x = recolour(images, 1.0).double(), images.double()
    for i in range(len(images)):
        sources = []
        for c in range(3):  # output channel c is input channel k times a gain g in [0.6, 1], rounded
            fits = [(k, out[i, ..., c].sum() / x[i, ..., k].sum()) for k in range(3)]
            k, g = min(fits, key=lambda kg: (out[i, ..., c] - kg[1] * x[i, ..., kg[0]]).abs().max())
            assert (out[i, ..., c] - g * x[i, ..., k]).abs().max() <= 1.0 and 0.59 <= g <= 1.01
            sources.append(k)
        assert sorted(sources) == [0, 1, 2]  # a permutation of the channels
    changed = (recolour(images, 0.5) != images).flatten(1).any(1).double().mean()
    assert 0.2 < changed < 0.8


def test_lowres_blurs_the_chosen_share_to_the_drawn_side():
    import torch.nn.functional as F

    from embodied.agents.curious import lowres

    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 64, 64, 3), dtype=torch.uint8)
    assert torch.equal(lowres(images, 0.0, (12, 32)), images)
    out = lowres(images, 1.0, (16, 16))  # one side: the result is known exactly
    x = images.permute(0, 3, 1, 2).float()
    small = F.interpolate(x, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    want = F.interpolate(small, size=(64, 64), mode="bilinear", align_corners=False).round().clamp(0, 255)
    assert out.dtype == torch.uint8 and torch.equal(out, want.permute(0, 2, 3, 1).to(torch.uint8))
    # white noise loses most of its pixel-to-pixel variation at 16 px, keeps its mean
    assert out.float().diff(dim=2).abs().mean() < 0.3 * images.float().diff(dim=2).abs().mean()
    assert abs(out.float().mean() - images.float().mean()) < 2.0
    assert torch.equal(lowres(images[:, :8, :8], 1.0, (16, 16)), images[:, :8, :8])  # no larger than the side
    changed = (lowres(images, 0.5, (12, 32)) != images).flatten(1).any(1).double().mean()
    assert 0.2 < changed < 0.8
