"""The object library: procedural and shipped tabletop objects, categories x instances.

Every instance is a pure function of ``(category, index)``: its random numbers come from
``np.random.default_rng([FIXED_LIBRARY_SEED, category_id, index])``, so any process on any
machine builds the same mesh bytes, texture bytes and physical properties.

Contents:

- ``CATEGORIES`` (fixed order; ``category_id`` is the position) x ``INSTANCES_PER_CATEGORY`` = 32.
- Surfaces of revolution with random profile parameters: cup, bowl, bottle, vase, plate, can,
  ball, torus; cuboids: box, brick; meshes shipped in ``pybullet_data`` (decimated to a few hundred
  triangles, re-centred, z up): duck, teddy, mug, bunny, varied per instance by scale and colour.
- Per instance: shape parameters, size, colour, procedural texture (plain / checker / stripes /
  dots / noise), mass, frictions, restitution and contact softness. Each category has a physical
  profile (see ``_PROFILES``): teddy, ball (foam), duck, torus (rubber) are soft; brick, mug, vase,
  plate, can are hard, so a poke gives each category its own force profile.

Split rule: among the first ``TRAIN_POOL`` = 24 indices, ``index % HELDOUT_EVERY == HELDOUT_EVERY - 1``
(4, 9, 14, 19) is ``"heldout"`` and every other index ``"train"`` (20 per category); indices 24..31 are
all ``"heldout"``. So each category has 20 train and 12 held-out instances: the evaluation probes
train on 6 held-out instances of a category and test on the other 6. The train instances are the
library's first version unchanged (same meshes, textures and physics: an instance depends only
on ``(category, index)``).

Frames: z up; an object's origin (= its centre of mass, = pybullet's base position) is at mid-height
of its axis-aligned bounding box at rest, so to put it on a surface at height ``h`` use
``z = h + spec.extents[2] / 2``. Horizontally the origin is the AABB centre for every generated
(symmetric) shape; for the shipped meshes it is their surface centroid (a mug's handle would
otherwise put the centre of mass off the cup and tip it over), and ``spec.aabb_offset`` gives the
AABB centre in the object frame (zero for generated shapes, a few cm at most otherwise).

Units: metres, kilograms, seconds; contact stiffness in N/m, damping in N s/m.

Generated meshes and textures live in the asset cache (``$EMBODIED_CACHE`` or
``~/.cache/embodied``, subfolders ``meshes/`` and ``textures/``), written once, atomically.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import pybullet as p
import pybullet_data

from embodied.sim.assets import cache_dir, procedural_texture, write_mesh, write_texture
from embodied.sim.bullet import BulletSim
from embodied.sim.meshes import SEGMENTS, decimate, euler_matrix, generate, parse_obj, signed_volume  # noqa: F401

FIXED_LIBRARY_SEED = 20160908
LIBRARY_VERSION = 1  # bump when generation changes: it is part of every asset's cache key

CATEGORIES: tuple[str, ...] = (
    "cup",
    "bowl",
    "bottle",
    "vase",
    "plate",
    "can",
    "ball",
    "torus",
    "box",
    "brick",
    "duck",
    "teddy",
    "mug",
    "bunny",
)
INSTANCES_PER_CATEGORY: int = 32
TRAIN_POOL: int = 24  # indices below this follow the every-5th rule; the rest are held out
HELDOUT_EVERY: int = 5
SPLITS = ("train", "heldout", "all")


@dataclass(frozen=True)
class ObjectSpec:
    """One object instance. Lengths in metres, mass in kg, stiffness N/m, damping N s/m.

    ``rgba`` is the dominant colour; when ``texture`` is set the texture carries the colours
    and the body is drawn with a white tint. ``collision_mesh`` None means "use ``mesh``"
    (PyBullet uses the convex hull of a mesh for a dynamic body). ``mesh_scale`` is applied to
    both meshes; ``extents`` already includes it. ``softness`` in [0, 1], 1 = softest.
    ``aabb_offset``: centre of the rest AABB in the object frame (the origin is the centre of mass).
    """

    category: str
    category_id: int
    index: int
    uid: int
    split: str
    mesh: str | None
    collision_mesh: str | None
    mesh_scale: tuple[float, float, float]
    rgba: tuple[float, float, float, float]
    texture: str | None
    mass: float
    lateral_friction: float
    spinning_friction: float
    rolling_friction: float
    restitution: float
    contact_stiffness: float
    contact_damping: float
    softness: float
    extents: tuple[float, float, float]
    aabb_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _Profile:
    """Physical profile of a category: ranges drawn uniformly per instance."""

    log10_stiffness: float  # centre of log10(contact stiffness / (N/m)); +-0.15 per instance
    density: float  # kg/m^3 of the (solid) mesh volume
    friction: tuple[float, float]
    restitution: tuple[float, float]
    hue: tuple[float, float]  # HSV hue range in [0, 1]
    sat: tuple[float, float]
    patterns: tuple[str, ...]


# softness = (6 - log10_stiffness) / 3: 1e6 N/m -> 0 (rigid), 1e3 N/m -> 1 (soft)
_PROFILES: dict[str, _Profile] = {
    "cup": _Profile(4.7, 1200.0, (0.5, 0.8), (0.1, 0.3), (0.0, 1.0), (0.4, 0.9), ("plain", "stripes", "dots")),
    "bowl": _Profile(5.2, 1800.0, (0.4, 0.7), (0.1, 0.3), (0.0, 1.0), (0.2, 0.8), ("plain", "dots", "checker")),
    "bottle": _Profile(4.5, 400.0, (0.4, 0.7), (0.1, 0.3), (0.2, 0.7), (0.3, 0.9), ("plain", "stripes")),
    "vase": _Profile(5.7, 1500.0, (0.5, 0.8), (0.05, 0.2), (0.0, 1.0), (0.3, 0.9), ("plain", "stripes", "noise")),
    "plate": _Profile(5.5, 2000.0, (0.3, 0.6), (0.1, 0.3), (0.0, 1.0), (0.0, 0.4), ("plain", "checker", "dots")),
    "can": _Profile(5.5, 500.0, (0.3, 0.5), (0.1, 0.3), (0.0, 1.0), (0.5, 1.0), ("stripes", "plain", "noise")),
    "ball": _Profile(3.4, 800.0, (0.7, 1.0), (0.3, 0.5), (0.0, 1.0), (0.6, 1.0), ("plain", "dots", "stripes")),
    "torus": _Profile(3.8, 900.0, (0.8, 1.1), (0.1, 0.3), (0.0, 1.0), (0.6, 1.0), ("plain", "stripes")),
    "box": _Profile(5.0, 350.0, (0.5, 0.8), (0.1, 0.2), (0.05, 0.15), (0.3, 0.7), ("plain", "noise", "checker")),
    "brick": _Profile(6.0, 1400.0, (0.8, 1.1), (0.0, 0.1), (0.0, 0.06), (0.5, 0.8), ("noise", "plain")),
    "duck": _Profile(3.5, 400.0, (0.7, 1.0), (0.2, 0.4), (0.1, 0.18), (0.7, 1.0), ("plain", "dots")),
    "teddy": _Profile(3.0, 300.0, (0.9, 1.2), (0.0, 0.05), (0.0, 0.12), (0.3, 0.7), ("noise", "plain")),
    "mug": _Profile(5.7, 600.0, (0.5, 0.8), (0.1, 0.3), (0.0, 1.0), (0.3, 0.9), ("plain", "dots", "stripes")),
    "bunny": _Profile(4.0, 900.0, (0.6, 0.9), (0.1, 0.3), (0.0, 1.0), (0.0, 0.6), ("plain", "noise")),
}

# Meshes shipped in pybullet_data: file, rotation to z-up (Euler xyz, radians), longest side in metres.
_SHIPPED: dict[str, tuple[str, tuple[float, float, float], tuple[float, float]]] = {
    "duck": ("duck.obj", (math.pi / 2, 0.0, 0.0), (0.08, 0.14)),
    "teddy": ("teddy2_VHACD_CHs.obj", (-0.2416, -0.3943, 0.0), (0.10, 0.18)),
    "mug": ("objects/mug.obj", (0.0, 0.0, 0.0), (0.09, 0.13)),
    "bunny": ("bunny.obj", (math.pi / 2, 0.0, 0.0), (0.08, 0.14)),
}
_DECIMATE_CELLS = 10  # vertex-clustering grid along the longest side of a shipped mesh


@functools.cache
def _shipped_mesh(category: str, root: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """Decimated, z-up, AABB-centred copy of a pybullet_data mesh with longest side 1.

    Returns (path, extents, AABB centre in the mesh frame)."""
    fname, euler, _ = _SHIPPED[category]
    v, f = parse_obj(Path(pybullet_data.getDataPath()) / fname)
    v = v @ euler_matrix(*euler).T
    lo, hi = v.min(0), v.max(0)
    v = (v - (lo + hi) / 2.0) / float((hi - lo).max())
    if len(f) > 600:
        v, f = decimate(v, f, _DECIMATE_CELLS)
    # cylindrical UVs: u around z, v up
    # origin horizontally at the area-weighted surface centroid (a proxy for the centre of mass)
    a, b, c = (v[f[:, k]] for k in range(3))
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    centroid = (area[:, None] * (a + b + c) / 3.0).sum(0) / area.sum()
    v = v - np.array([centroid[0], centroid[1], 0.0])
    uvs = np.stack([np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi) + 0.5, v[:, 2] - v[:, 2].min()], axis=1)
    params = {"lib": "objects", "version": LIBRARY_VERSION, "shipped": fname, "cells": _DECIMATE_CELLS}
    path = write_mesh(params, v, f, uvs)
    lo, hi = v.min(0), v.max(0)
    return str(path), tuple(float(x) for x in hi - lo), tuple(float(x) for x in (lo + hi) / 2.0)


# -- colour ---------------------------------------------------------------------------------
def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    pp, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, pp), (q, v, pp), (pp, v, t), (pp, q, v), (t, pp, v), (v, pp, q)][i])


# -- specs ----------------------------------------------------------------------------------
def _category_id(category: str | int) -> int:
    if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
        if not 0 <= int(category) < len(CATEGORIES):
            raise ValueError(f"category id {category!r} out of range; expected 0..{len(CATEGORIES) - 1}")
        return int(category)
    if isinstance(category, str) and category in CATEGORIES:
        return CATEGORIES.index(category)
    raise ValueError(f"unknown object category {category!r}; expected one of {', '.join(CATEGORIES)}")


def split_of(index: int) -> str:
    """``"heldout"`` for ``index >= TRAIN_POOL`` or ``index % HELDOUT_EVERY == HELDOUT_EVERY - 1``, else ``"train"``."""
    return "heldout" if index >= TRAIN_POOL or index % HELDOUT_EVERY == HELDOUT_EVERY - 1 else "train"


def object_spec(category: str | int, index: int) -> ObjectSpec:
    """The instance ``index`` (0..31) of ``category`` (name or id); writes its assets to the cache once."""
    cid = _category_id(category)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"instance index {index!r} is not an integer")
    if not 0 <= int(index) < INSTANCES_PER_CATEGORY:
        raise ValueError(f"instance index {index!r} out of range; expected 0..{INSTANCES_PER_CATEGORY - 1}")
    root = str(cache_dir())
    spec = _build(cid, int(index), root)
    if spec.mesh is not None and not os.path.exists(spec.mesh):  # cache emptied under us: rebuild
        _build.cache_clear()
        _shipped_mesh.cache_clear()
        spec = _build(cid, int(index), root)
    return spec


def _looks(prof: _Profile, rng: np.random.Generator, key: dict) -> tuple[tuple[float, float, float, float], str | None]:
    """An instance's dominant colour (rgba) and texture file (None: plain), drawn from ``rng``."""
    hue = rng.uniform(*prof.hue)
    sat = rng.uniform(*prof.sat)
    val = rng.uniform(0.55, 0.95)
    base = _hsv_to_rgb(hue % 1.0, sat, val)
    second = _hsv_to_rgb((hue + rng.uniform(0.2, 0.5)) % 1.0, rng.uniform(0.0, 1.0), rng.uniform(0.6, 1.0))
    pattern = str(rng.choice(prof.patterns))
    texture = None
    if pattern != "plain":
        image = procedural_texture(pattern, np.stack([second, base]), rng)
        texture = str(write_texture({**key, "pattern": pattern}, image))
        base = image.reshape(-1, 3).mean(0) / 255.0
    return (float(base[0]), float(base[1]), float(base[2]), 1.0), texture


@functools.lru_cache(maxsize=4096)
def _build(cid: int, index: int, root: str) -> ObjectSpec:
    category = CATEGORIES[cid]
    prof = _PROFILES[category]
    rng = np.random.default_rng([FIXED_LIBRARY_SEED, cid, index])
    key = {"lib": "objects", "version": LIBRARY_VERSION, "seed": FIXED_LIBRARY_SEED, "category": category}
    key["index"] = index
    if category in _SHIPPED:
        path, unit_ext, unit_off = _shipped_mesh(category, root)
        lo, hi = _SHIPPED[category][2]
        size = rng.uniform(lo, hi)
        scale = tuple(float(size * s) for s in rng.uniform(0.9, 1.1, size=3))
        extents = tuple(float(e * s) for e, s in zip(unit_ext, scale, strict=True))
        offset = tuple(float(o * s) for o, s in zip(unit_off, scale, strict=True))
        volume = 0.5 * float(np.prod(extents))  # rough fill of the bounding box
        mesh = path
    else:
        v, f, uv = generate(category, rng)
        lo_v, hi_v = v.min(0), v.max(0)
        v = v - (lo_v + hi_v) / 2.0
        mesh = str(write_mesh(key, v, f, uv))
        scale = (1.0, 1.0, 1.0)
        offset = (0.0, 0.0, 0.0)
        extents = tuple(float(e) for e in hi_v - lo_v)
        volume = abs(signed_volume(v, f))
    rgba, texture = _looks(prof, rng, key)
    # physics
    mass = float(np.clip(prof.density * volume * rng.uniform(0.85, 1.15), 0.05, 1.0))
    log_k = prof.log10_stiffness + rng.uniform(-0.15, 0.15)
    stiffness = float(10.0**log_k)
    damping = float(2.0 * math.sqrt(stiffness * mass) * rng.uniform(0.8, 1.2))  # about critical
    return ObjectSpec(
        category=category,
        category_id=cid,
        index=index,
        uid=cid * INSTANCES_PER_CATEGORY + index,
        split=split_of(index),
        mesh=mesh,
        collision_mesh=None,
        mesh_scale=(float(scale[0]), float(scale[1]), float(scale[2])),
        rgba=rgba,
        texture=texture,
        mass=mass,
        lateral_friction=float(rng.uniform(*prof.friction)),
        spinning_friction=float(rng.uniform(0.001, 0.005)),
        rolling_friction=float(rng.uniform(0.0005, 0.002) if category != "ball" else rng.uniform(0.001, 0.003)),
        restitution=float(rng.uniform(*prof.restitution)),
        contact_stiffness=stiffness,
        contact_damping=damping,
        softness=float(np.clip((6.0 - prof.log10_stiffness) / 3.0, 0.0, 1.0)),
        extents=(float(extents[0]), float(extents[1]), float(extents[2])),
        aabb_offset=(float(offset[0]), float(offset[1]), float(offset[2])),
    )


class InstancePool(Sequence[ObjectSpec]):
    """The instances of a split, in uid order; each spec is built on first access.

    An env draws a few objects per episode from a pool of hundreds: building every
    spec up front (meshes, textures, ~3 ms each) would cost each fresh worker ~1 s.
    """

    def __init__(self, keys: list[tuple[int, int]]) -> None:
        self._keys = keys  # (category id, index)

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, i: int) -> ObjectSpec: ...
    @overload
    def __getitem__(self, i: slice) -> list[ObjectSpec]: ...
    def __getitem__(self, i: int | slice) -> ObjectSpec | list[ObjectSpec]:
        if isinstance(i, slice):
            return [object_spec(*key) for key in self._keys[i]]
        return object_spec(*self._keys[i])


def instances(split: str = "all", categories: Sequence[str] | None = None) -> InstancePool:
    """Every instance of ``split`` ("train", "heldout" or "all") in ``categories`` (default: all), in uid order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(categories, str):
        categories = [categories]
    cids = sorted({_category_id(c) for c in categories}) if categories is not None else range(len(CATEGORIES))
    return InstancePool(
        [(cid, i) for cid in cids for i in range(INSTANCES_PER_CATEGORY) if split == "all" or split_of(i) == split]
    )


def spawn(
    sim: BulletSim,
    spec: ObjectSpec,
    position: Sequence[float],
    orientation: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
    *,
    static: bool = False,
    name: str | None = None,
    scale: float = 1.0,
) -> int:
    """Create ``spec`` in ``sim``'s world at ``position`` (m, AABB centre) / ``orientation`` (xyzw quaternion).

    Shapes and textures are created once per world and instance (memoized in ``sim.cache``).
    ``static=True`` gives mass 0 (immovable). The body is registered as ``name`` or
    ``f"obj{uid}_{n}"`` (n = first free number). ``scale`` enlarges the instance uniformly
    (its extents scale with it; dynamics are left as they are). Returns the pybullet body id.
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale={scale}; expected a finite number > 0")
    key = ("objects", spec.uid, float(scale))
    mesh_scale = [float(s) * scale for s in spec.mesh_scale]
    shapes = sim.cache.get(key)
    if shapes is None:
        col = sim.p.createCollisionShape(p.GEOM_MESH, fileName=spec.collision_mesh or spec.mesh, meshScale=mesh_scale)
        tint = (1.0, 1.0, 1.0, spec.rgba[3]) if spec.texture else spec.rgba
        vis = sim.p.createVisualShape(p.GEOM_MESH, fileName=spec.mesh, meshScale=mesh_scale, rgbaColor=tint)
        tex = sim.p.loadTexture(spec.texture) if spec.texture else -1
        if col < 0 or vis < 0 or (spec.texture and tex < 0):
            raise RuntimeError(f"pybullet could not load the shapes of {spec.category} #{spec.index} ({spec.mesh})")
        shapes = (col, vis, tex)
        sim.cache[key] = shapes  # type: ignore[assignment]
    col, vis, tex = shapes  # type: ignore[misc]
    body = sim.p.createMultiBody(
        baseMass=0.0 if static else spec.mass,
        baseCollisionShapeIndex=col,
        baseVisualShapeIndex=vis,
        basePosition=[float(x) for x in position],
        baseOrientation=[float(x) for x in orientation],
    )
    if name is None:
        n = 0
        while f"obj{spec.uid}_{n}" in sim.bodies:
            n += 1
        name = f"obj{spec.uid}_{n}"
    sim.add_body(name, body)
    if tex >= 0:
        sim.p.changeVisualShape(body, -1, textureUniqueId=tex, rgbaColor=(1.0, 1.0, 1.0, spec.rgba[3]))
    sim.p.changeDynamics(
        body,
        -1,
        lateralFriction=spec.lateral_friction,
        spinningFriction=spec.spinning_friction,
        rollingFriction=spec.rolling_friction,
        restitution=spec.restitution,
        contactStiffness=spec.contact_stiffness,
        contactDamping=spec.contact_damping,
    )
    return body


__all__ = [
    "CATEGORIES",
    "FIXED_LIBRARY_SEED",
    "HELDOUT_EVERY",
    "InstancePool",
    "INSTANCES_PER_CATEGORY",
    "TRAIN_POOL",
    "ObjectSpec",
    "instances",
    "object_spec",
    "spawn",
    "split_of",
]
