"""The evaluation image sets, as rendered (small size; cached after the first test that needs one)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from embodied.eval.embed import embed
from embodied.eval.floors import ColourHistogramFloor
from embodied.eval.metrics import SHOTS, object_split, scene_split, score_objects
from embodied.eval.sets import OBJECT_SETS, describe, load_set
from embodied.sim import objects


@pytest.fixture(scope="module")
def small():
    return {name: load_set(name, "small", progress=False) for name in (*OBJECT_SETS, "scenes")}


def test_object_sets_show_only_heldout_instances_twelve_per_category(small):
    heldout = {o.uid for o in objects.instances("heldout")}
    train = {o.uid for o in objects.instances("train")}
    assert len(train) >= 20 * len(objects.CATEGORIES)  # the train split is no smaller than before
    for name in OBJECT_SETS:
        d = small[name]
        assert set(d["instance"].tolist()) == heldout
        per_cat = np.bincount(np.unique(d["instance"]) // objects.INSTANCES_PER_CATEGORY)
        assert per_cat.min() >= 12
        assert d["images"].dtype == np.uint8 and d["images"].shape[1:] == (64, 64, 3)


def test_centric_views_fill_40_to_70_percent_and_circle_the_object(small):
    for name in ("centric", "shape"):
        d = small[name]
        assert d["fill"].min() >= 0.40 and d["fill"].max() <= 0.70
        for uid in np.unique(d["instance"])[:20]:
            v = d["view"][d["instance"] == uid]
            az = np.sort(v[:, 0])
            gaps = np.diff(np.concatenate([az, az[:1] + 2 * np.pi]))
            assert gaps.max() < np.pi  # azimuths around the full circle, not one side
            assert len(np.unique(np.round(v[:, 1], 3))) >= 3  # several elevations
    # the context set keeps the object small
    assert np.median(small["context"]["fill"]) < 0.4


def test_shape_set_recolouring_defeats_the_colour_histogram(small):
    scores = {}
    for name in ("centric", "shape"):
        d = small[name]
        z = embed(ColourHistogramFloor(), d["images"])
        scores[name] = score_objects(z, d, draws=1)["instance R@1"].mean
    d = small["shape"]
    views = np.bincount(np.unique(d["instance"], return_inverse=True)[1])
    chance = float(np.mean((views - 1) / (len(d["instance"]) - 1)))
    assert scores["shape"] <= 2 * chance
    assert scores["centric"] > 5 * chance  # on centric the object's own colours do identify it


def test_every_scored_class_has_more_examples_than_the_largest_shot(small):
    for name in OBJECT_SETS:
        d = small[name]
        train, _ = object_split(d["instance"], d["category"])
        assert np.bincount(d["category"][train]).min() > max(SHOTS)
    s = small["scenes"]
    train, test = scene_split(s["scene_id"], s["scene_class"])
    assert test.sum() >= 500
    assert np.bincount(s["scene_class"][train]).min() > max(SHOTS)
    assert sorted(np.unique(s["scene_class"])) == list(range(5))


def test_describe_says_how_many_images_and_how_long(small):
    line = describe("centric", small["centric"])
    assert line.startswith("centric: 2016 images of 168 held-out instances of 14 categories, rendered in")


RENDER = textwrap.dedent(
    """
    import hashlib, sys
    from embodied.eval import sets
    sets.SPECS["small"]["centric"] = sets.ObjectSetSpec("centric", (1, 2), 32)
    sets.SPECS["small"]["context"] = sets.ObjectSetSpec("context", (1, 0), 32)
    for name in ("centric", "context"):
        data = sets.load_set(name, "small", progress=False)
        print("sha256", hashlib.sha256(open(data["_meta"]["path"], "rb").read()).hexdigest())
    """
)


def test_same_seed_gives_byte_identical_cached_sets_in_two_processes(tmp_path):
    digests = []
    for run in ("a", "b"):
        env = {"EMBODIED_CACHE": str(tmp_path / run), "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", RENDER], capture_output=True, text=True, env=env, check=True)
        digests.append([ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("sha256 ")])
    assert len(digests[0]) == 2 and digests[0] == digests[1]


def test_bad_set_names_are_named():
    with pytest.raises(ValueError, match="evaluation set = 'faces'"):
        load_set("faces")
    with pytest.raises(ValueError, match="size = 'huge'"):
        load_set("centric", "huge")


def test_floors_take_uint8_and_float_images_alike():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    hist = ColourHistogramFloor()
    a = hist(torch.from_numpy(imgs))
    b = hist(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0)
    torch.testing.assert_close(a, b)
    assert torch.allclose(a.norm(dim=1), torch.ones(3))  # square-rooted histograms are unit vectors
    with pytest.raises(ValueError, match="expected"):
        hist(torch.zeros(3, 16, 16))
