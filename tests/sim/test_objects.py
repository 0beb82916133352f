import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pybullet as p
import pytest

from embodied.sim import BulletSim
from embodied.sim import objects as O

SAMPLE = [("cup", 0), ("vase", 7), ("box", 23), ("duck", 4), ("teddy", 11), ("torus", 2)]

DUMP = """
import hashlib, json, sys
from embodied.sim import objects as O
out = []
for c, i in json.loads(sys.argv[1]):
    s = O.object_spec(c, i)
    d = {k: v for k, v in s.__dict__.items() if k not in ("mesh", "collision_mesh", "texture")}
    for k in ("mesh", "collision_mesh", "texture"):
        path = getattr(s, k)
        d[k] = None if path is None else hashlib.sha256(open(path, "rb").read()).hexdigest()
    out.append(d)
print(json.dumps(out))
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBODIED_CACHE", str(tmp_path / "cache"))


def _digest(spec: O.ObjectSpec) -> dict:
    d = dataclasses.asdict(spec)
    for k in ("mesh", "collision_mesh", "texture"):
        path = d.pop(k)
        d[k] = None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return json.loads(json.dumps(d))  # tuples -> lists, as after the round trip through a subprocess


def test_counts_and_uids():
    assert len(O.CATEGORIES) >= 12 and len(set(O.CATEGORIES)) == len(O.CATEGORIES)
    specs = O.instances()
    assert len(specs) == len(O.CATEGORIES) * O.INSTANCES_PER_CATEGORY
    assert O.INSTANCES_PER_CATEGORY == 32
    assert [s.uid for s in specs] == list(range(len(specs)))
    for s in specs:
        assert s.category == O.CATEGORIES[s.category_id]
        assert s.uid == s.category_id * O.INSTANCES_PER_CATEGORY + s.index
        assert 0.05 <= s.mass <= 1.0
        assert 0.0 <= s.softness <= 1.0
        assert all(0.01 <= e <= 0.25 for e in s.extents), (s.category, s.extents)
        assert s.contact_stiffness > 0 and s.contact_damping > 0
        assert Path(s.mesh).is_file() and (s.texture is None or Path(s.texture).is_file())
        assert len(s.rgba) == 4 and all(0.0 <= c <= 1.0 for c in s.rgba)


def test_split_rule():
    train, held = O.instances("train"), O.instances("heldout")
    assert all(s.index < O.TRAIN_POOL and s.index % O.HELDOUT_EVERY != O.HELDOUT_EVERY - 1 for s in train)
    assert all(s.split == "heldout" for s in held) and all(s.split == "train" for s in train)
    assert len(train) + len(held) == len(O.instances("all"))
    for c in O.CATEGORIES:  # 20 train instances (the first library's) and 12 held out per category
        assert [s.index for s in O.instances("heldout", [c])] == [4, 9, 14, 19, *range(24, 32)]
        assert len(O.instances("train", [c])) == 20


def test_same_instance_same_bytes_across_processes(tmp_path):
    here = [_digest(O.object_spec(c, i)) for c, i in SAMPLE]
    env = {**os.environ, "EMBODIED_CACHE": str(tmp_path / "other_cache")}
    res = subprocess.run(
        [sys.executable, "-c", DUMP, json.dumps(SAMPLE)], env=env, capture_output=True, text=True, check=True
    )
    there = json.loads(res.stdout.strip().splitlines()[-1])
    assert there == here
    assert (tmp_path / "other_cache" / "meshes").is_dir()


def test_same_instance_is_memoized_and_id_forms_agree():
    a = O.object_spec("bowl", 3)
    b = O.object_spec(O.CATEGORIES.index("bowl"), 3)
    assert a == b


def test_different_indices_differ():
    for c in O.CATEGORIES:
        specs = O.instances("all", [c])
        meshes = {(s.mesh, s.mesh_scale) for s in specs}
        looks = {(s.rgba, s.texture) for s in specs}
        assert len(meshes) == len(specs), c
        assert len(looks) >= len(specs) - 1, c
        assert len({s.mass for s in specs}) == len(specs), c


def test_soft_categories_are_softer_than_hard_ones():
    soft, hard = ("teddy", "ball", "duck"), ("box", "brick", "can", "plate", "mug")
    max_soft = max(s.contact_stiffness for s in O.instances("all", soft))
    min_hard = min(s.contact_stiffness for s in O.instances("all", hard))
    assert max_soft < 1e4 and min_hard >= 5e4 and max_soft < min_hard
    assert min(O.object_spec(c, 0).softness for c in soft) > max(O.object_spec(c, 0).softness for c in hard)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(("spoon", 0), "spoon"), (("cup", -1), "-1"), (("cup", 32), "32"), ((99, 0), "99"), (("cup", 1.5), "1.5")],
)
def test_bad_input_raises(args, needle):
    with pytest.raises(ValueError, match=needle):
        O.object_spec(*args)


def test_bad_split_and_category_filter():
    with pytest.raises(ValueError, match="validation"):
        O.instances("validation")
    with pytest.raises(ValueError, match="spoon"):
        O.instances("all", ["spoon"])


def test_every_category_falls_and_rests():
    with BulletSim() as sim:
        plane = sim.p.loadURDF("plane.urdf")
        for k, c in enumerate(O.CATEGORIES):
            spec = O.object_spec(c, k % O.INSTANCES_PER_CATEGORY)
            body = O.spawn(sim, spec, (0.3 * k, 0.0, 0.02 + spec.extents[2] / 2))
            assert sim.bodies[f"obj{spec.uid}_0"] == body
            assert sim.p.getDynamicsInfo(body, -1)[0] == pytest.approx(spec.mass)
        sim.step(360)
        for k, c in enumerate(O.CATEGORIES):
            spec = O.object_spec(c, k % O.INSTANCES_PER_CATEGORY)
            body = sim.bodies[f"obj{spec.uid}_0"]
            pos, orn = sim.p.getBasePositionAndOrientation(body)
            vel, ang = sim.p.getBaseVelocity(body)
            lo, hi = (np.asarray(v) for v in sim.p.getAABB(body))
            assert np.isfinite([*pos, *orn, *lo, *hi]).all(), c
            assert np.linalg.norm(vel) < 0.05, (c, vel)
            assert abs(pos[0] - 0.3 * k) < 0.1 and abs(pos[1]) < 0.1, (c, pos)
            contacts = sim.p.getContactPoints(body, plane)
            assert contacts and all(-0.005 < cp[5][2] < 0.005 for cp in contacts), c  # resting on the plane
            # the AABB is that of the extents box turned by the body's orientation (+ collision margin)
            rot = np.abs(np.asarray(p.getMatrixFromQuaternion(orn)).reshape(3, 3))
            bound = rot @ np.asarray(spec.extents)
            assert np.all(hi - lo <= bound + 0.012), (c, hi - lo, bound)
            assert np.all(hi - lo >= 0.8 * bound - 0.01), (c, hi - lo, bound)
            if c not in ("teddy",):  # everything but the teddy stays upright
                tilt = math.degrees(2 * math.acos(min(1.0, abs(orn[3]))))
                assert tilt < 10, (c, tilt)
                np.testing.assert_allclose(hi - lo, spec.extents, atol=0.012)
                assert -0.006 < lo[2] < 0.01, (c, lo)  # soft ones sink a little
                np.testing.assert_allclose((lo + hi) / 2, np.add(pos, spec.aabb_offset), atol=0.006)


def test_spawn_memoizes_shapes_and_static():
    spec = O.object_spec("mug", 2)
    with BulletSim() as sim:
        a = O.spawn(sim, spec, (0, 0, 0.1))
        shapes = sim.cache[("objects", spec.uid, 1.0)]
        b = O.spawn(sim, spec, (0.3, 0, 0.1), static=True, name="fixed_mug")
        assert sim.cache[("objects", spec.uid, 1.0)] == shapes and len(sim.cache) == 1
        assert sim.bodies == {f"obj{spec.uid}_0": a, "fixed_mug": b}
        assert sim.p.getDynamicsInfo(b, -1)[0] == 0.0
        sim.step(60)
        assert sim.p.getBasePositionAndOrientation(b)[0] == pytest.approx((0.3, 0, 0.1))
        c = O.spawn(sim, spec, (0.6, 0, 0.1))
        assert f"obj{spec.uid}_1" in sim.bodies and sim.bodies[f"obj{spec.uid}_1"] == c
        sim.reset_world()
        assert O.spawn(sim, spec, (0, 0, 0.1)) >= 0  # shapes are re-created in the new world


def test_textured_object_renders():
    from embodied.sim import Camera, look_at

    spec = next(s for s in O.instances("train", ["box"]) if s.texture is not None)
    with BulletSim() as sim:
        O.spawn(sim, spec, (0, 0, 0))
        rgb = Camera(width=32, height=32, fov=60).render(sim, look_at((0.3, 0.0, 0.1), (0, 0, 0))).rgb
    assert rgb.shape == (32, 32, 3) and rgb.std() > 5
