"""Rendering the evaluation image sets (the one module of ``embodied.eval`` that drives the simulator).

Object sets show one library instance per image, labelled with its instance uid and category:

* ``centric``: the camera orbits the object over the full circle of azimuths at several
  elevations, at the distance where the object's image spans a target fraction (40-70 %) of the
  frame side (measured from the segmentation mask, then corrected), on a textured table in front
  of a textured back wall, under a random light: the simulated UW RGB-D turntable.
* ``shape``: ``centric`` views in which the object is recoloured and retextured, view by view,
  from one small palette shared by every instance, so neither colour nor texture identifies it.
* ``context``: the object small (its bounding box a third to a half of the frame side at most,
  often less), every other view on the floor of an ego-motion room among furniture, the rest on a
  textured table in front of a textured wall: the hard set.

The scene set is ego-motion frames from fresh rooms, labelled by scene class and room.

Every instance's views come from its own generator ``default_rng([seed, set code, uid])``, so a
set is the same whatever order or process renders it. Backdrop and palette textures are pools
drawn once from the set seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pybullet as p
from tqdm import tqdm

from embodied.envs.scenes import SCENE_CLASSES, build_scene
from embodied.sim import BulletSim, Camera, look_at, objects
from embodied.sim.assets import procedural_texture, write_texture
from embodied.sim.objects import ObjectSpec

FOV = 40.0  # degrees, vertical and horizontal (square images)
FILL = (0.45, 0.65)  # centric / shape: target share of the frame side the object spans
FILL_LIMITS = (0.40, 0.70)  # accepted after correction
CONTEXT_DISTANCE = (2.0, 3.2)  # context: camera distance in units of the distance at which the object fills the frame
BACKDROP_POOL = 48
# context rooms: seeds above every training room (collection seeds, Look's < 1e8) and the scene set's
CONTEXT_ROOM_SEEDS = (1_500_000_000, 500_000_000)  # (first, count)
PALETTE = np.array(  # shape set: every object's colours come from these, whatever its own
    [[0.85, 0.2, 0.2], [0.2, 0.65, 0.3], [0.2, 0.35, 0.85], [0.9, 0.8, 0.2], [0.6, 0.6, 0.6], [0.6, 0.3, 0.75]]
)
PALETTE_PATTERNS = ("plain", "stripes", "checker", "dots")
SET_CODES = {"centric": 1, "shape": 2, "context": 3}


def _texture_pool(seed: int, tag: str, n: int, colors: np.ndarray | None = None) -> list[str]:
    """``n`` texture files: random colours (or pairs from ``colors``) in random patterns, fixed by ``seed``."""
    rng = np.random.default_rng([seed, sum(map(ord, tag))])
    paths = []
    for i in range(n):
        if colors is None:
            pair = rng.uniform(0.15, 0.95, size=(2, 3))
            pattern = str(rng.choice(["plain", "checker", "stripes", "noise", "dots"]))
        else:
            pair = colors[rng.choice(len(colors), size=2, replace=False)]
            pattern = PALETTE_PATTERNS[i % len(PALETTE_PATTERNS)]
        tex_seed = int(rng.integers(2**31))
        image = procedural_texture(pattern, pair, np.random.default_rng(tex_seed), size=64)
        key = {"eval": tag, "i": i, "colors": np.round(pair, 4).tolist(), "pattern": pattern, "seed": tex_seed}
        paths.append(str(write_texture(key, image)))
    return paths


def _load_texture(sim: BulletSim, path: str) -> int:
    """A texture id in ``sim``'s current world, loaded once per world."""
    key = ("eval-texture", path)
    if key not in sim.cache:
        sim.cache[key] = sim.p.loadTexture(path)
    return sim.cache[key]


def _box(sim: BulletSim, half: Sequence[float]) -> int:
    vis = sim.p.createVisualShape(p.GEOM_BOX, halfExtents=list(half))
    return sim.p.createMultiBody(0, -1, vis, [0.0, 0.0, 0.0])


def _fill(seg: np.ndarray, body: int) -> float:
    """The share of the frame side spanned by ``body``'s pixels (larger of width and height); 0 if unseen."""
    ys, xs = np.nonzero(seg == body)
    if len(xs) == 0:
        return 0.0
    return max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / seg.shape[0]


def _orbit_eye(target: np.ndarray, az: float, el: float, dist: float) -> np.ndarray:
    return target + dist * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def _aim(
    sim: BulletSim, camera: Camera, body: int, target: np.ndarray, az: float, el: float, radius: float, fill: float
) -> tuple[np.ndarray, float, float]:
    """Render from (az, el) at the distance where ``body`` spans ``fill`` of the frame.

    Starts from the bounding sphere's distance and rescales by measured / wanted span (span
    is about inversely proportional to distance) until it lies in ``FILL_LIMITS`` (at most 4
    renders). Returns (rgb, distance m, measured fill).
    """
    dist = radius / (fill * math.tan(math.radians(FOV / 2)))
    for _ in range(4):
        frame = camera.render(sim, look_at(_orbit_eye(target, az, el, dist), target), seg=True)
        got = _fill(frame.seg, body)
        if FILL_LIMITS[0] <= got <= FILL_LIMITS[1] and got < 1.0 - 2.0 / camera.width:  # not cut by the border
            break
        dist *= max(got, 0.05) / fill if got < 1.0 - 2.0 / camera.width else 1.6
    return frame.rgb, dist, got


def _views(n_elevations: int, n_azimuths: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(azimuth, elevation) radians: ``n_azimuths`` evenly around the circle (random phase) per elevation."""
    lo, hi = math.radians(10.0), math.radians(65.0)
    els = [lo + (hi - lo) * (i + 0.5) / n_elevations for i in range(n_elevations)]
    out = []
    for el in els:
        phase = rng.uniform(0, 2 * math.pi)
        out += [((phase + 2 * math.pi * j / n_azimuths) % (2 * math.pi) - math.pi, el) for j in range(n_azimuths)]
    return out


def _centric_instance(
    sim: BulletSim,
    camera: Camera,
    obj: ObjectSpec,
    rng: np.random.Generator,
    n_el: int,
    n_az: int,
    backdrops: list[str],
    palette: list[str] | None,
) -> list[tuple[np.ndarray, tuple[float, ...], float]]:
    sim.reset_world()
    table, wall = _box(sim, (1.5, 1.5, 0.01)), _box(sim, (0.01, 2.0, 1.5))
    sim.p.resetBasePositionAndOrientation(table, [0.0, 0.0, -0.01], [0, 0, 0, 1])
    yaw = float(rng.uniform(-math.pi, math.pi))
    body = objects.spawn(sim, obj, (0.0, 0.0, obj.extents[2] / 2), p.getQuaternionFromEuler((0, 0, yaw)), static=True)
    lo, hi = (np.array(v) for v in sim.p.getAABB(body))
    target, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo) / 2)
    out = []
    for az, el in _views(n_el, n_az, rng):
        for surface in (table, wall):
            tex = _load_texture(sim, backdrops[int(rng.integers(len(backdrops)))])
            tint = rng.uniform(0.75, 1.0, size=3)
            sim.p.changeVisualShape(surface, -1, textureUniqueId=tex, rgbaColor=[*tint, 1.0])
        back = -0.9 * np.array([math.cos(az), math.sin(az)])  # the wall stands behind the object
        sim.p.resetBasePositionAndOrientation(wall, [back[0], back[1], 1.0], p.getQuaternionFromEuler((0, 0, az)))
        if palette is not None:
            tex = _load_texture(sim, palette[int(rng.integers(len(palette)))])
            sim.p.changeVisualShape(body, -1, textureUniqueId=tex, rgbaColor=[1.0, 1.0, 1.0, 1.0])
        camera.light_direction = tuple(rng.uniform([-1, -1, 0.3], [1, 1, 1.5]))
        rgb, dist, got = _aim(sim, camera, body, target, az, el, radius, float(rng.uniform(*FILL)))
        out.append((rgb, (az, el, dist, yaw), got))
    return out


def _context_instance(
    sim: BulletSim, camera: Camera, obj: ObjectSpec, rng: np.random.Generator, n_views: int, backdrops: list[str]
) -> list[tuple[np.ndarray, tuple[float, ...], float, int]]:
    out = []
    for v in range(n_views):
        sim.reset_world()
        scene_class = -1
        origin = np.zeros(3)
        if v % 2:  # every other view: on the floor of an ego-motion room, among its furniture
            scene_class = int(rng.integers(len(SCENE_CLASSES)))
            room_seed = CONTEXT_ROOM_SEEDS[0] + int(rng.integers(CONTEXT_ROOM_SEEDS[1]))
            room = build_scene(sim, room_seed, SCENE_CLASSES[scene_class], "heldout")
            origin = np.array([room.start[0], room.start[1], 0.0])
            az = float(rng.uniform(-math.pi, math.pi))
        else:
            for half, pos in (((1.0, 1.0, 0.01), (0.0, 0.0, -0.01)), ((0.01, 1.0, 0.8), (-0.6, 0.0, 0.8))):
                box = _box(sim, half)
                sim.p.resetBasePositionAndOrientation(box, list(pos), [0, 0, 0, 1])
                tex = _load_texture(sim, backdrops[int(rng.integers(len(backdrops)))])
                sim.p.changeVisualShape(box, -1, textureUniqueId=tex)
            az = float(rng.uniform(-0.8, 0.8))  # keep the back wall behind the object
        yaw = float(rng.uniform(-math.pi, math.pi))
        orn = p.getQuaternionFromEuler((0, 0, yaw))
        body = objects.spawn(sim, obj, origin + (0.0, 0.0, obj.extents[2] / 2), orn, static=True)
        lo, hi = (np.array(x) for x in sim.p.getAABB(body))
        target = (lo + hi) / 2
        el = float(rng.uniform(0.25, 1.0))
        dist = float(rng.uniform(*CONTEXT_DISTANCE)) * max(obj.extents) / (2 * math.tan(math.radians(FOV / 2)))
        camera.light_direction = tuple(rng.uniform([-1, -1, 0.3], [1, 1, 1.5]))
        frame = camera.render(sim, look_at(_orbit_eye(target, az, el, dist), target), seg=True)
        out.append((frame.rgb, (az, el, dist, yaw), _fill(frame.seg, body), scene_class))
    return out


def render_object_set(
    kind: str,
    split: str,
    seed: int,
    views: tuple[int, int],
    size: int = 64,
    uids: Sequence[int] | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """The object set ``kind`` over the instances of ``split`` (or only ``uids`` of it).

    views: (elevations, azimuths) for ``centric`` / ``shape``; (views, unused) for ``context``.
    Returns images (N, S, S, 3) uint8, instance (N,) uid, category (N,) id,
    view (N, 4) float32: azimuth rad, elevation rad, camera distance m, object yaw rad;
    fill (N,) float32: share of the frame side the object spans; scene_class (N,): the room's
    class for views inside a room, -1 on a table.
    """
    if kind not in SET_CODES:
        raise ValueError(f"object set kind={kind!r}; expected one of {sorted(SET_CODES)}")
    camera = Camera(size, size, fov=FOV, near=0.01, far=6.0)
    backdrops = _texture_pool(seed, "backdrop", BACKDROP_POOL)
    palette = _texture_pool(seed, "palette", 24, PALETTE) if kind == "shape" else None
    pool = [o for o in objects.instances(split) if uids is None or o.uid in set(uids)]
    images, inst, cat, view, fill, scenes = [], [], [], [], [], []
    with BulletSim() as sim:
        for obj in tqdm(pool, desc=f"{kind} set ({split})", unit="instance", disable=not progress):
            rng = np.random.default_rng([seed, SET_CODES[kind], obj.uid])
            if kind == "context":
                rows = _context_instance(sim, camera, obj, rng, views[0], backdrops)
            else:
                rows = [(*r, -1) for r in _centric_instance(sim, camera, obj, rng, *views, backdrops, palette)]
            for rgb, v, got, scene_class in rows:
                images.append(rgb)
                inst.append(obj.uid)
                cat.append(obj.category_id)
                view.append(v)
                fill.append(got)
                scenes.append(scene_class)
    return {
        "images": np.stack(images),
        "instance": np.array(inst, dtype=np.int64),
        "category": np.array(cat, dtype=np.int64),
        "view": np.array(view, dtype=np.float32),
        "fill": np.array(fill, dtype=np.float32),
        "scene_class": np.array(scenes, dtype=np.int64),
    }


def render_scene_set(
    rooms_per_class: int, frames_per_room: int, seed_base: int, size: int = 64, progress: bool = True
) -> dict[str, np.ndarray]:
    """Ego-motion frames from fresh rooms with held-out objects.

    Returns images (N, S, S, 3) uint8, scene_class (N,), scene_id (N,) (the room; rooms of the
    probes' train and test halves never share one).
    """
    from embodied.collect.explore import ExplorePolicy
    from embodied.envs.ego_motion import EgoMotionEnv

    env = EgoMotionEnv(size=size, split="heldout", motor_noise=0.0)
    policy = ExplorePolicy(env.action_space)
    images, classes, scene_ids = [], [], []
    bar = tqdm(total=rooms_per_class * len(SCENE_CLASSES), desc="scene set", unit="room", disable=not progress)
    for c, name in enumerate(SCENE_CLASSES):
        for s in range(rooms_per_class):
            seed = seed_base + c * 10_000 + s
            obs, info = env.reset(seed=seed, options={"scene_class": name})
            policy.reset(seed)
            for f in range(frames_per_room * 4):
                obs, _, _, _, info = env.step(policy(obs, info))
                if f % 4 == 3:  # every 4th step: frames of one room differ
                    images.append(obs["rgb"])
                    classes.append(c)
                    scene_ids.append(info["scene_id"])
            bar.update()
    bar.close()
    env.close()
    return {
        "images": np.stack(images),
        "scene_class": np.array(classes, dtype=np.int64),
        "scene_id": np.array(scene_ids, dtype=np.int64),
    }
