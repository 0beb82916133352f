"""Readers (c)-(f) on small real collections of the tabletop envs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from embodied.collect.runner import collect
from embodied.data.readers import GraspPatchDataset, IdentityDataset, PokeDataset, PushPairDataset

QUIET = dict(workers=1, progress=False, log=lambda *_: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabletop")
    for env, n, policy in (
        ("grasp", 6, "informed"),
        ("push", 4, "informed"),
        ("poke", 4, "informed"),
        ("look", 3, "random"),
    ):
        collect(env, n, root / env, policy=policy, **QUIET)
    return root


def test_grasp_patches_are_centred_on_the_grasp_point(data):
    ds = GraspPatchDataset(data / "grasp", patch=16)
    assert len(ds) == 6
    with h5py.File(data / "grasp" / "shard-00000.h5") as f:
        g = f["data/ep_000002"]
        u, v, angle_bin = g["actions"][0]
        image = g["obs/rgb"][0]
        success = bool(g["infos/success"][0])
    item = ds[2]
    assert item["patch"].shape == (16, 16, 3) and item["patch"].dtype.is_floating_point is False
    assert int(item["angle_bin"]) == angle_bin and float(item["success"]) == float(success)
    np.testing.assert_array_equal(item["patch"][8].numpy()[8], image[v, u])  # centre pixel


def test_push_pairs_are_before_and_after(data):
    ds = PushPairDataset(data / "push")
    with h5py.File(data / "push" / "shard-00000.h5") as f:
        g = f["data/ep_000001"]
        before, after, action = g["obs/rgb"][0], g["obs/rgb"][1], g["actions"][0]
    item = ds[1]
    np.testing.assert_array_equal(item["before"].numpy(), before)
    np.testing.assert_array_equal(item["after"].numpy(), after)
    np.testing.assert_allclose(item["action"].numpy(), action)
    assert np.all(np.abs(item["action"].numpy()) <= 1.0)


def test_poke_items_carry_profile_and_line(data):
    ds = PokeDataset(data / "poke")
    item = ds[0]
    assert item["force"].ndim == 1 and item["line"].shape == (2,)
    from embodied.envs.poke import SAMPLE_EVERY, PokeEnv

    env = PokeEnv()
    seconds = np.arange(len(item["force"])) * env.scene.sim.timestep * SAMPLE_EVERY  # sample times
    env.close()
    slope, intercept = np.polyfit(seconds, item["force"].numpy().astype(np.float64), 1)  # newtons per second, N
    assert item["line"].numpy() == pytest.approx([slope, intercept], rel=1e-3, abs=1e-2)
    peak, depth = item["press"].numpy()
    assert peak == pytest.approx(item["force"].numpy().max(), rel=1e-4) and 0.0 <= depth <= 0.0201


def test_poke_patches_are_centred_on_the_poked_pixel(data):
    whole, ds = PokeDataset(data / "poke"), PokeDataset(data / "poke", patch=16)
    with h5py.File(data / "poke" / "shard-00000.h5") as f:
        u, v = (int(x) for x in f["data/ep_000001/actions"][0])
    item = ds[1]
    assert item["rgb"].shape == (16, 16, 3) and item["rgb"].dtype == whole[1]["rgb"].dtype
    h, w = whole[1]["rgb"].shape[:2]
    rows, cols = np.clip(np.arange(v - 8, v + 8), 0, h - 1), np.clip(np.arange(u - 8, u + 8), 0, w - 1)
    np.testing.assert_array_equal(item["rgb"].numpy(), whole[1]["rgb"].numpy()[rows][:, cols])
    np.testing.assert_array_equal(item["press"].numpy(), whole[1]["press"].numpy())  # only the image is cut
    from embodied.agents.curious import CuriousAgent

    opened = CuriousAgent.open_datasets([data / "poke"], {"tasks": ["poke"], "poke_patch": 16})["poke"]
    np.testing.assert_array_equal(opened[1]["rgb"].numpy(), item["rgb"].numpy())  # the learner's option reaches it
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=f"patch={bad!r}; expected a positive number of pixels"):
            PokeDataset(data / "poke", patch=bad)


def test_identity_triplets(data):
    ds = IdentityDataset(data / "look", seed=3)
    for n in range(len(ds)):
        item = ds[n]
        assert item["anchor"].shape == item["positive"].shape == item["negative"].shape
    again = IdentityDataset(data / "look", seed=3)
    np.testing.assert_array_equal(again[5]["negative"].numpy(), ds[5]["negative"].numpy())
    i = ds.rows[5]
    assert ds.instance[i] == int(ds[5]["instance"])


def test_readers_refuse_the_wrong_data(data):
    with pytest.raises(ValueError, match="infos/force_profile"):
        PokeDataset(data / "grasp")


def test_identity_positives_come_from_another_episode_of_the_instance(data):
    ds = IdentityDataset(data / "look", seed=3)
    (s0, n0), (s1, n1) = ds.cache.episodes[0], ds.cache.episodes[1]
    # pretend episodes 0 and 1 showed the same instance (as two Look sessions of one object do)
    ds.instance[s1 : s1 + n1] = ds.instance[s0]
    ds.episodes_of = {int(ds.instance[s0]): [0, 1]}
    rgb = ds.cache.obs["rgb"]
    other = [np.asarray(rgb[k]) for k in range(s1, s1 + n1)]
    for n in np.flatnonzero((ds.rows >= s0) & (ds.rows < s0 + n0)):
        positive = ds[int(n)]["positive"].numpy()
        assert any(np.array_equal(positive, f) for f in other)  # never a view of the anchor's own session
    same = IdentityDataset(data / "look", seed=3, cross_episode=False)
    item = same[0]
    assert any(np.array_equal(item["positive"].numpy(), np.asarray(rgb[k])) for k in range(s0 + 1, s0 + n0))
