"""Shard layout, frame cache and readers (synthetic episodes: no simulator needed)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from embodied.data.cache import FrameCache
from embodied.data.episode import EpisodeRecorder
from embodied.data.manifest import SCHEMA_VERSION, save_manifest, shard_name
from embodied.data.motion import MotionClusters, kmeans, pair_snr, step_noise
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
    assert (tmp_path / "d" / "cache" / "motion_v2_k3_w2.json").exists()
    # motor (1, 0, 0.1 e, 0): channels 1 and 3 never vary, so only forward and yaw are clustered
    np.testing.assert_array_equal(ds.clusters.weight, [1, 0, 1, 0])
    np.testing.assert_array_equal(ds.episode, ds.cache.episode[ds.i])


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


FORWARD, LEFT, RIGHT, UP, DOWN = range(5)
#: true per-step motion of each command: forward_m, lateral_m, yaw_rad, pitch_rad (EgoMotion's MOTOR_FIELDS)
COMMANDS = np.array([(0.2, 0, 0, 0), (0, 0, 0.26, 0), (0, 0, -0.26, 0), (0, 0, 0, 0.1745), (0, 0, 0, -0.1745)])


def explore_motor(steps=3000, seed=0, lateral_noise=0.005):
    """Per-step odometry of an explorer: runs of forward / turns (mean 6 steps), 1-2 step glances up or down;
    2 % + 2 mm (rad) sensor noise, and a lateral channel that is pure noise (std ``lateral_noise`` m)."""
    rng = np.random.default_rng(seed)
    actions: list[int] = []
    while len(actions) < steps:
        a = int(rng.choice(5, p=[0.6, 0.15, 0.15, 0.05, 0.05]))
        actions += [a] * (1 + int(rng.geometric(1 / 6)) if a < UP else int(rng.integers(1, 3)))
    true = COMMANDS[np.array(actions[:steps])]
    motor = true + rng.normal(size=true.shape) * (0.02 * np.abs(true) + 0.002)
    motor[:, 1] = rng.normal(size=steps) * lateral_noise
    return motor


def window_sums(motor, window=3):
    i = np.concatenate([np.arange(len(motor) - dt) for dt in range(1, window + 1)])
    j = np.concatenate([np.arange(dt, len(motor)) for dt in range(1, window + 1)])
    cum = np.cumsum(motor, axis=0)
    return cum[j] - cum[i], j - i


def test_step_noise_recovers_white_noise_under_persistent_commands():
    rng = np.random.default_rng(1)
    levels = rng.choice([0.0, 1.0, -1.0], size=300).repeat(6)  # a command held 6 steps at a time
    motor = np.stack([levels + rng.normal(size=len(levels)) * 0.01, rng.normal(size=len(levels)) * 0.05], axis=1)
    # switches of command (1 step in 6 here) bias the median up a little: a conservative estimate
    est = step_noise(motor)
    assert 0.01 <= est[0] < 0.0125 and est[1] == pytest.approx(0.05, rel=0.1)
    # the first frame of each episode (a reset) is skipped: a huge first row changes nothing
    motor2 = motor.copy()
    motor2[[0, 900]] = 100.0
    np.testing.assert_allclose(step_noise(motor2, [(0, 900), (900, 900)]), step_noise(motor), rtol=0.05)
    # signal over noise of pair sums: a pure-noise channel has none, a commanded one plenty
    sums, dt = window_sums(motor)
    snr = pair_snr(sums, step_noise(motor), dt)
    assert snr[0] > 20 and snr[1] < 1


def test_motion_clusters_ignore_a_pure_noise_channel_and_find_look_up_and_down(tmp_path):
    motor = explore_motor()
    sums, dt = window_sums(motor)
    noise = step_noise(motor)
    assert noise[1] == pytest.approx(0.005, rel=0.15)
    mc = MotionClusters.fit(sums, 6, noise=noise, dt=dt)
    np.testing.assert_array_equal(mc.weight, [1, 0, 1, 1])  # lateral: pure noise, dropped
    assert mc.snr[1] < 1 and min(mc.snr[[0, 2, 3]]) > 10
    centers = mc.centers_in_units()
    pitch, yaw, forward = centers[:, 3], centers[:, 2], centers[:, 0]
    assert pitch.max() > np.radians(8) and pitch.min() < -np.radians(8)  # a look-up and a look-down class
    assert yaw.max() > np.radians(20) and yaw.min() < -np.radians(20) and forward.max() > 0.3
    g = mc.assign(sums)
    flipped = sums.copy()
    flipped[:, 1] = -flipped[:, 1] * 3  # the noise channel cannot move a pair to another class
    np.testing.assert_array_equal(mc.assign(flipped), g)
    # standardised at full weight (the old way), the same noise splits pairs by the sign of the noise
    old = MotionClusters.fit(sums, 6)
    assert old.weight[1] == 1 and (old.assign(flipped) != old.assign(sums)).mean() > 0.05
    # stored and loaded with its weights
    mc.save(tmp_path / "clusters.json")
    again = MotionClusters.load(tmp_path / "clusters.json")
    np.testing.assert_array_equal(again.assign(sums), g)
    np.testing.assert_array_equal(again.weight, mc.weight)


def test_motion_clusters_fall_back_to_every_channel_when_none_stands_out_of_the_noise():
    motor = np.random.default_rng(0).normal(size=(600, 3))  # white noise on every channel
    sums, dt = window_sums(motor)
    mc = MotionClusters.fit(sums, 4, noise=step_noise(motor), dt=dt)
    assert (mc.snr < 1).all() and mc.weight.tolist() == [1, 1, 1]
