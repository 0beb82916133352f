"""Evaluation image sets, rendered once from the simulator and cached as ``.npz``.

* objects: every **held-out** library instance (never in training data) seen in
  several views under varied pose, distance, elevation, lighting and background,
  labelled with instance and category: the simulated counterpart of the papers'
  retrieval / recognition benchmarks.
* scenes: ego-motion frames from fresh rooms (held-out objects, seeds far from
  any collection seed) labelled by scene class: the few-label scene test.

Fixed seeds; the cache key is the full set of parameters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pybullet as p
from tqdm import tqdm

from embodied.envs.scenes import SCENE_CLASSES, build_scene
from embodied.sim import BulletSim, Camera, look_at, objects
from embodied.sim.assets import asset_path, procedural_texture, write_texture

BENCH_SEED = 2015  # fixed: every run of every agent is scored on the same images
SCENE_SEED_BASE = 1_000_000_000  # far above any collection seed range


@dataclass(frozen=True)
class ObjectBenchSpec:
    """views per instance, image size in pixels."""

    views: int = 6
    size: int = 64
    split: str = "heldout"


@dataclass(frozen=True)
class SceneBenchSpec:
    """scenes per class, frames per scene, image size in pixels."""

    scenes_per_class: int = 6
    frames_per_scene: int = 5
    size: int = 64


SIZES = {
    "small": (ObjectBenchSpec(views=6), SceneBenchSpec(scenes_per_class=6, frames_per_scene=5)),
    "full": (ObjectBenchSpec(views=24), SceneBenchSpec(scenes_per_class=30, frames_per_scene=10)),
}


def _backdrop(sim: BulletSim, rng: np.random.Generator) -> None:
    """A textured table top and a back wall in random colours."""
    for half, pos in (((1.0, 1.0, 0.01), (0.0, 0.0, -0.01)), ((0.01, 1.0, 0.8), (-0.6, 0.0, 0.8))):
        colors = rng.uniform(0.2, 0.95, size=(2, 3))
        pattern = str(rng.choice(["plain", "checker", "stripes", "noise", "dots"]))
        tex_seed = int(rng.integers(2**31))
        image = procedural_texture(pattern, colors, np.random.default_rng(tex_seed), size=64)
        path = write_texture({"bench": pattern, "colors": np.round(colors, 4).tolist(), "seed": tex_seed}, image)
        col = sim.p.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        vis = sim.p.createVisualShape(p.GEOM_BOX, halfExtents=half)
        body = sim.p.createMultiBody(0, col, vis, pos)
        sim.p.changeVisualShape(body, -1, textureUniqueId=sim.p.loadTexture(str(path)))


def render_objects(spec: ObjectBenchSpec, progress: bool = True) -> dict[str, np.ndarray]:
    """images (N, S, S, 3) uint8, instance (N,) uid, category (N,) id,
    view (N, 4): azimuth rad, elevation rad, distance m, object yaw rad;
    scene_class (N,): the room's class for views inside an ego-motion room, -1 on the table."""
    rng = np.random.default_rng(BENCH_SEED)
    camera = Camera(spec.size, spec.size, fov=40.0, near=0.02, far=5.0)
    images, inst, cat, views, scenes = [], [], [], [], []
    with BulletSim() as sim:
        for obj in tqdm(objects.instances(spec.split), desc="benchmark objects", unit="instance", disable=not progress):
            for _ in range(spec.views):
                sim.reset_world()
                yaw = float(rng.uniform(-math.pi, math.pi))
                origin = np.zeros(3)
                scene_class = -1
                if len(views) % 2:  # every other view: on the floor of an ego-motion room, not on a table
                    scene_class = int(rng.integers(len(SCENE_CLASSES)))
                    room = build_scene(sim, int(rng.integers(2**31 - 1)), SCENE_CLASSES[scene_class], "heldout")
                    origin = np.array([room.start[0], room.start[1], 0.0])
                else:
                    _backdrop(sim, rng)
                orn = p.getQuaternionFromEuler((0, 0, yaw))
                objects.spawn(sim, obj, origin + (0.0, 0.0, obj.extents[2] / 2), orn, static=True)
                size = max(obj.extents)
                az = float(rng.uniform(-0.8, 0.8))  # keep the back wall behind the object
                el = float(rng.uniform(0.25, 1.0))
                dist = float(rng.uniform(2.0, 3.2)) * size / (2 * math.tan(math.radians(20)))
                target = origin + (0.0, 0.0, obj.extents[2] / 2)
                eye = target + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
                camera.light_direction = tuple(rng.uniform([-1, -1, 0.3], [1, 1, 1.5]))
                images.append(camera.render(sim, look_at(eye, target)).rgb)
                inst.append(obj.uid)
                cat.append(obj.category_id)
                views.append((az, el, dist, yaw))
                scenes.append(scene_class)
    return {
        "images": np.stack(images),
        "instance": np.array(inst),
        "category": np.array(cat),
        "view": np.array(views, dtype=np.float32),
        "scene_class": np.array(scenes),
    }


def render_scenes(spec: SceneBenchSpec, progress: bool = True) -> dict[str, np.ndarray]:
    """images (N, S, S, 3) uint8, scene_class (N,), scene_id (N,) from the ego-motion env, held-out objects."""
    from embodied.collect.explore import ExplorePolicy
    from embodied.envs.ego_motion import EgoMotionEnv

    env = EgoMotionEnv(size=spec.size, split="heldout", motor_noise=0.0)
    policy = ExplorePolicy(env.action_space)
    images, classes, scene_ids = [], [], []
    total = spec.scenes_per_class * len(SCENE_CLASSES)
    bar = tqdm(total=total, desc="benchmark scenes", unit="scene", disable=not progress)
    for c, name in enumerate(SCENE_CLASSES):
        for s in range(spec.scenes_per_class):
            seed = SCENE_SEED_BASE + c * 10_000 + s
            obs, info = env.reset(seed=seed, options={"scene_class": name})
            policy.reset(seed)
            for f in range(spec.frames_per_scene * 4):
                obs, _, _, _, info = env.step(policy(obs, info))
                if f % 4 == 3:  # every 4th step: frames of one room differ
                    images.append(obs["rgb"])
                    classes.append(c)
                    scene_ids.append(info["scene_id"])
            bar.update()
    bar.close()
    env.close()
    return {"images": np.stack(images), "scene_class": np.array(classes), "scene_id": np.array(scene_ids)}


def load_benchmark(kind: str, size: str = "small", progress: bool = True) -> dict[str, np.ndarray]:
    """The cached benchmark ``kind`` ("objects" or "scenes") of ``size`` ("small" or "full"), built if absent."""
    if kind not in ("objects", "scenes"):
        raise ValueError(f"benchmark kind={kind!r}; expected 'objects' or 'scenes'")
    if size not in SIZES:
        raise ValueError(f"benchmark size={size!r}; expected one of {sorted(SIZES)}")
    spec = SIZES[size][0 if kind == "objects" else 1]
    params = {"kind": kind, **asdict(spec), "seed": BENCH_SEED, "library": objects.LIBRARY_VERSION, "v": 3}
    path = asset_path("benchmarks", params, ".npz")
    if not path.exists():
        data = render_objects(spec, progress) if kind == "objects" else render_scenes(spec, progress)
        tmp = Path(str(path) + ".tmp.npz")
        np.savez(tmp, **data)
        tmp.replace(path)
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
