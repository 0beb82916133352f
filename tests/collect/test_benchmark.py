import numpy as np
import pytest

from embodied.collect.benchmark import ObjectBenchSpec, SceneBenchSpec, load_benchmark, render_objects, render_scenes
from embodied.envs.scenes import SCENE_CLASSES
from embodied.sim import objects


def test_object_benchmark_uses_only_heldout_instances_and_is_repeatable():
    spec = ObjectBenchSpec(views=2, size=32)
    a = render_objects(spec, progress=False)
    heldout = {o.uid for o in objects.instances("heldout")}
    assert set(a["instance"].tolist()) == heldout
    assert a["images"].shape == (2 * len(heldout), 32, 32, 3) and a["images"].dtype == np.uint8
    assert set(a["category"].tolist()) == set(range(len(objects.CATEGORIES)))
    assert not np.array_equal(a["images"][0], a["images"][1])  # two different views of one instance
    b = render_objects(spec, progress=False)
    np.testing.assert_array_equal(a["images"], b["images"])


def test_scene_benchmark_labels_every_class():
    s = render_scenes(SceneBenchSpec(scenes_per_class=1, frames_per_scene=2, size=32), progress=False)
    assert s["images"].shape == (2 * len(SCENE_CLASSES), 32, 32, 3)
    assert sorted(set(s["scene_class"].tolist())) == list(range(len(SCENE_CLASSES)))


def test_bad_benchmark_names():
    with pytest.raises(ValueError, match="kind='faces'"):
        load_benchmark("faces")
    with pytest.raises(ValueError, match="size='huge'"):
        load_benchmark("objects", "huge")
