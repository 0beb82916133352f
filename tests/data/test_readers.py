"""Shard layout, frame cache and readers (synthetic episodes: no simulator needed)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from embodied.data.cache import FrameCache
from embodied.data.episode import EpisodeRecorder
from embodied.data.manifest import SCHEMA_VERSION, save_manifest, shard_name
from embodied.data.motion import MotionClusters, kmeans
from embodied.data.readers import EgoPairDataset, FrameDataset
from embodied.data.shards import CorruptShardError, write_shard


def synthetic_dataset(root, episodes=3, steps=5, shards=2):
    """Episodes whose frame t of episode e is filled with 10 * e + t, motor = (1, 0, 0.1 * e, 0)."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for s in range(shards):
        eps = []
        for e in range(s * episodes, (s + 1) * episodes):
            rec = EpisodeRecorder(seed=100 + e, index=e)

            def frame(t, e=e):
                return {
                    "rgb": np.full((8, 8, 3), 10 * e + t, np.uint8),
                    "motor": np.array([1.0, 0.0, 0.1 * e, 0.0], np.float32),
                }

            rec.start(frame(0), {"scene_class_id": e % 2, "visible": np.arange(e)})
            for t in range(1, steps + 1):
                rec.add(
                    t % 3,
                    frame(t),
                    0.5,
                    False,
                    t == steps,
                    {"scene_class_id": e % 2, "visible": np.arange(t), "name": "room", "success": e == 1},
                )
            eps.append(rec.episode)
        info = write_shard(root / shard_name(s), eps)
        entries.append({"index": s, "name": shard_name(s), "frames": sum(ep.frames for ep in eps), **info})
    save_manifest(root, {"schema_version": SCHEMA_VERSION, "config": {}, "complete": True, "shards": entries})
    return root


def test_shard_layout(tmp_path):
    root = synthetic_dataset(tmp_path / "d")
    with h5py.File(root / shard_name(0)) as f:
        g = f["data/ep_000001"]
        assert g["obs/rgb"].shape == (6, 8, 8, 3) and g["obs/rgb"].chunks == (1, 8, 8, 3)
        assert g["actions"].shape == (5,) and g["rewards"][()].sum() == pytest.approx(2.5)
        assert list(g["infos/visible"][3]) == [0, 1, 2, 3]  # ragged rows survive
        assert g["infos/name"][0] == b"room"
        assert g.attrs["seed"] == 101 and g.attrs["length"] == 5 and g.attrs["outcome/success"]
        assert list(f["data"].attrs["episodes"]) == [0, 1, 2]


def test_same_episodes_same_bytes(tmp_path):
    a = synthetic_dataset(tmp_path / "a")
    b = synthetic_dataset(tmp_path / "b")
    assert (a / shard_name(1)).read_bytes() == (b / shard_name(1)).read_bytes()


def test_frame_cache_matches_shards_and_is_reused(tmp_path):
    root = synthetic_dataset(tmp_path / "d")
    cache = FrameCache(root, progress=False)
    assert len(cache) == 6 * 6
    assert isinstance(cache.obs["rgb"], np.memmap)
    row = cache.episodes[4][0] + 2
    assert cache.obs["rgb"][row].max() == 42 and cache.t[row] == 2 and cache.episode[row] == 4
    assert cache.labels["scene_class_id"][row] == 0 and cache.labels["outcome/success"][cache.episodes[1][0]] == 1
    mtime = (root / "cache" / "obs_rgb.npy").stat().st_mtime_ns
    FrameCache(root, progress=False)
    assert (root / "cache" / "obs_rgb.npy").stat().st_mtime_ns == mtime


def test_reader_refuses_a_corrupted_shard(tmp_path):
    root = synthetic_dataset(tmp_path / "d")
    data = bytearray((root / shard_name(1)).read_bytes())
    data[len(data) // 2] ^= 0x55
    (root / shard_name(1)).write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match=shard_name(1)):
        FrameDataset(root)


def test_frame_dataset_items(tmp_path):
    ds = FrameDataset(synthetic_dataset(tmp_path / "d"), labels=["scene_class_id"])
    item = ds[7]
    assert item["rgb"].dtype.is_floating_point is False and tuple(item["rgb"].shape) == (8, 8, 3)
    assert int(item["scene_class_id"]) == int(item["episode"]) % 2
    with pytest.raises(ValueError, match="no label"):
        FrameDataset(tmp_path / "d", labels=["nope"])


def test_ego_pairs_sum_the_motor_signal(tmp_path):
    ds = EgoPairDataset(synthetic_dataset(tmp_path / "d"), window=2, k=3)
    assert len(ds) == 6 * (5 + 4)  # per episode: 5 pairs at dt=1, 4 at dt=2
    for n in range(len(ds)):
        item = ds[n]
        e = int(item["x_i"][0, 0, 0]) // 10
        dt = int(item["dt"])
        assert int(item["x_j"][0, 0, 0]) - int(item["x_i"][0, 0, 0]) == dt
        np.testing.assert_allclose(item["motion"].numpy(), [dt, 0.0, 0.1 * e * dt, 0.0], atol=1e-5)
    again = EgoPairDataset(tmp_path / "d", window=2, k=3)  # clusters are stored and reused
    np.testing.assert_array_equal(again.g, ds.g)
    assert (tmp_path / "d" / "cache" / "motion_k3_w2.json").exists()


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(4, 3)) * 10
    x = np.concatenate([c + rng.normal(size=(50, 3)) * 0.1 for c in truth])
    centers, labels = kmeans(x, 4)
    for j in range(4):
        assert len(set(labels[j * 50 : (j + 1) * 50])) == 1
    assert np.min(np.linalg.norm(centers[:, None] - truth[None], axis=-1), axis=1).max() < 0.1
    mc = MotionClusters.fit(x, 4)
    assert len(set(mc.assign(x))) == 4
    with pytest.raises(ValueError, match="k=5"):
        kmeans(x[:4], 5)
