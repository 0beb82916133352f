"""Equivariance as in Jayaraman & Grauman: held-out gain, L2-normalised embedding, few-label presets.

Synthetic data only: frames of one uniform colour whose hue a "motion" rotates (a linear map of
RGB about the grey axis), and small on-disk EgoMotion-like datasets with scene labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from embodied.agents import apply_overrides, build_agent, load_preset, open_datasets
from embodied.agents.equivariant import hold_out_episodes, pair_groups
from embodied.agents.synthetic import TensorItems
from embodied.data.episode import EpisodeRecorder
from embodied.data.manifest import SCHEMA_VERSION, save_manifest, shard_name
from embodied.data.shards import write_shard
from embodied.train import train

TINY = ["trunk.width=4", "trunk.embed_dim=8", "trunk.image_size=16", "trunk.depth=3"]
RUN = ["train.num_workers=0", "train.warmup=0", "train.threads=1"]


def hue_pairs(episodes=16, per_episode=16, size=16, seed=0):
    """Pairs (x_i, x_j) of uniformly coloured frames, x_j's hue = x_i's + delta_g (3 classes).

    A hue rotation is a rotation of the RGB vector about the grey axis, a linear map: an encoder
    that embeds (cos hue, sin hue) makes every motion exactly a linear M_g."""
    gen = torch.Generator().manual_seed(seed)
    deltas = torch.tensor([0.7, -0.7, 1.8])  # radians of hue
    n = episodes * per_episode
    hue = torch.rand(n, generator=gen) * 2 * math.pi
    g = torch.randint(0, 3, (n,), generator=gen)

    def frames(h: torch.Tensor) -> torch.Tensor:
        phases = torch.tensor([0.0, 2 * math.pi / 3, -2 * math.pi / 3])
        rgb = 0.5 + 0.35 * torch.cos(h[:, None] - phases)
        noise = 0.03 * torch.randn(len(h), size, size, 3, generator=gen)
        x = rgb[:, None, None, :].expand(len(h), size, size, 3) + noise
        return (x.clamp(0, 1) * 255).round().to(torch.uint8)

    items = {"x_i": frames(hue), "x_j": frames(hue + deltas[g]), "g": g, "episode": torch.arange(n) // per_episode}
    return TensorItems(items, n_classes=3)


def test_hold_out_is_by_episode_deterministic_and_disjoint():
    ds = hue_pairs()
    train_set = hold_out_episodes(ds, 0.25)
    held = train_set.heldout
    groups = pair_groups(ds)
    assert set(groups[held.indices]) == {0, 5, 10, 15}  # 4 of 16 episodes, evenly spread
    assert not set(groups[held.indices]) & set(groups[train_set.indices])
    assert len(train_set) + len(held) == len(ds) and train_set.n_classes == 3
    assert hold_out_episodes(ds, 0.25).indices == train_set.indices
    assert len(hold_out_episodes(ds, 0.01).heldout) == 16  # at least one episode
    one = TensorItems({**ds.tensors, "episode": torch.zeros(len(ds), dtype=torch.long)})
    assert hold_out_episodes(one, 0.25) is one  # a single episode: nothing to hold out
    assert hold_out_episodes(ds, 0.0) is ds


def test_equivariance_gain_is_positive_and_rising_when_motions_are_linear_maps(tmp_path):
    data = {"ego": hold_out_episodes(hue_pairs(), 0.25)}
    p = apply_overrides(
        load_preset("equivariant"),
        [*TINY, *RUN, "trunk.width=8", "train.steps=40", "train.batch_size=32", "train.log_every=10", "train.lr=3e-3"],
    )
    train(p, data, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    gains = [r["val/equivariance_gain"] for r in rows]
    assert all(np.isfinite(gains)) and len(gains) == 4
    assert min(gains) > 0 and gains[-1] > gains[0] and gains[-1] > 0.5, gains  # positive and rising
    assert all(r["val/dist_mapped"] < r["val/dist_identity"] for r in rows[1:])
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["metrics"]["val/equivariance_gain"] == gains[-1]  # the report reads it from here
    assert ckpt["spec"]["val_pairs"] == 64  # 4 held-out episodes x 16 pairs


def test_embedding_is_l2_normalised_for_the_loss_and_slowness_gain_is_zero_equivariance():
    data = {"ego": hold_out_episodes(hue_pairs(episodes=4, per_episode=4), 0.25)}
    for name in ("equivariant", "slowness"):
        agent = build_agent(apply_overrides(load_preset(name), TINY), data)
        x = data["ego"].heldout[0]["x_i"][None]
        assert agent._z(x).norm(dim=-1).item() == pytest.approx(1.0, abs=1e-5)
        agent.eval()
        with torch.no_grad():
            val = agent.validation_metrics()
        assert set(val) >= {"equivariance_gain", "slowness_gain", "dist_identity", "dist_random"}
        assert all(np.isfinite(v) for v in val.values())
        if name == "slowness":
            assert val["equivariance_gain"] == 0.0  # M_g = I: 0 by definition
    raw = build_agent(apply_overrides(load_preset("equivariant"), [*TINY, "options.normalize=false"]), data)
    assert raw._z(x).norm(dim=-1).item() != pytest.approx(1.0, abs=1e-3)


# -- the paper's semi-supervised protocol ------------------------------------------------------


def ego_dataset(root: Path, episodes=6, steps=9, size=16, classes=3):
    """On-disk EgoMotion-like data: random frames and motor, scene class = episode % classes."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    eps = []
    for e in range(episodes):
        rec = EpisodeRecorder(seed=e, index=e)

        def frame():
            return {
                "rgb": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                "motor": rng.normal(size=4).astype(np.float32),
            }

        rec.start(frame(), {"scene_class_id": e % classes})
        for t in range(1, steps + 1):
            rec.add(0, frame(), 0.0, False, t == steps, {"scene_class_id": e % classes})
        eps.append(rec.episode)
    info = write_shard(root / shard_name(0), eps)
    entry = {"index": 0, "name": shard_name(0), "frames": sum(ep.frames for ep in eps), **info}
    config = {"env_id": "embodied/EgoMotion-v0"}
    save_manifest(root, {"schema_version": SCHEMA_VERSION, "config": config, "complete": True, "shards": [entry]})
    return root


class _Seen(Dataset):
    """Records every labelled item handed out: (episode, t) -> its label."""

    def __init__(self, ds: Dataset, label: str) -> None:
        self.ds, self.label, self.seen = ds, label, {}

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.ds[i]
        self.seen[(int(item["episode"]), int(item["t"]))] = int(item[self.label])
        return item


SEMI = {"labels_only": "frames", "slowness_labels": "labels", "equivariant_labels": "labels"}


@pytest.mark.parametrize("per_class", [2, 6])
def test_semi_supervised_presets_train_on_n_labels_per_class_and_no_more(tmp_path, per_class):
    data = ego_dataset(tmp_path / "ego")
    seen = {}
    for name, task in SEMI.items():
        p = apply_overrides(
            load_preset(name),
            [*TINY, *RUN, "train.steps=4", "train.batch_size=4", f"options.labels_per_class={per_class}"],
        )
        assert p.options["label"] == "scene_class_id"
        datasets = open_datasets(p, [data])
        assert set(datasets) == ({"frames"} if name == "labels_only" else {"ego", "labels"})
        datasets[task] = _Seen(datasets[task], "scene_class_id")
        train(p, datasets, tmp_path / name, progress=False)
        counts = np.bincount(list(datasets[task].seen.values()), minlength=3)
        assert counts.tolist() == [per_class] * 3, (name, counts)  # N per class were seen, no more
        if "ego" in datasets:  # the unsupervised task never carries labels; its health is logged
            assert "scene_class_id" not in datasets["ego"][0]
            row = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1])
            assert np.isfinite(row["val/equivariance_gain"]) and np.isfinite(row["val/slowness_gain"])
        seen[name] = set(datasets[task].seen)
    assert seen["labels_only"] == seen["slowness_labels"] == seen["equivariant_labels"]  # the same frames
    n_per = f"options.labels_per_class={per_class}"
    again = open_datasets(apply_overrides(load_preset("labels_only"), [n_per]), [data])
    other = open_datasets(
        apply_overrides(load_preset("labels_only"), [n_per, "options.label_seed=1"]),
        [data],
    )
    assert again["frames"].indices == sorted(again["frames"].indices)
    assert again["frames"].indices != other["frames"].indices and len(other["frames"]) == 3 * per_class


def test_semi_supervised_presets_weigh_the_unsupervised_loss_by_lambda():
    for name in ("slowness_labels", "equivariant_labels"):
        p = load_preset(name)
        assert p.options["label_weight"] > 0 and "unsupervised_weight" in p.options
    data = {"ego": hold_out_episodes(hue_pairs(episodes=4, per_episode=4), 0.25)}
    batch = {k: torch.stack([data["ego"][i][k] for i in range(8)]) for k in ("x_i", "x_j", "g")}
    losses = []
    for lam in (1.0, 0.25):
        torch.manual_seed(0)
        p = apply_overrides(load_preset("equivariant"), [*TINY, f"options.unsupervised_weight={lam}"])
        agent = build_agent(p, data)
        torch.manual_seed(1)
        losses.append(agent.loss("ego", batch)[0].item())
    assert losses[1] == pytest.approx(0.25 * losses[0], rel=1e-5)
