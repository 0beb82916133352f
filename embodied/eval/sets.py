"""The evaluation image sets: specs, sizes, the on-disk cache.

Four sets, each in a ``small`` size (what the main job uses) and a ``full`` one:

* ``centric``, ``shape``, ``context``: views of **held-out** library instances (never in any
  training data), labelled by instance uid and category (see :mod:`embodied.eval.render`).
* ``scenes``: ego-motion frames from rooms no collection seed reaches, labelled by scene class
  and room.

Training images for the supervised ceiling come from :func:`load_ceiling_views`: the same
renderers over the *train* instances, with another seed.

A set is rendered once and cached as ``.npz`` under the asset cache; its cache key is every
parameter that shapes it, so the same key gives byte-identical files in any process. Render
time goes beside it in a ``.json`` (it varies from run to run; the images do not).
Importing this module does not import pybullet: only rendering a missing set does.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

EVAL_SEED = 2015  # fixed: every run of every agent is scored on the same images
SCENE_SEED_BASE = 1_000_000_000  # far above any collection seed range
RENDER_VERSION = 3  # bump when rendering changes: part of every cache key
OBJECT_SETS = ("centric", "shape", "context")
SETS = (*OBJECT_SETS, "scenes")
SET_SIZES = ("small", "full")


@dataclass(frozen=True)
class ObjectSetSpec:
    """views: (elevations, azimuths) for centric / shape, (views, 0) for context; image side in pixels."""

    kind: str
    views: tuple[int, int]
    image_size: int = 64


@dataclass(frozen=True)
class SceneSetSpec:
    """Rooms per scene class, frames per room, image side in pixels."""

    rooms_per_class: int
    frames_per_room: int
    image_size: int = 64


SPECS: dict[str, dict[str, ObjectSetSpec | SceneSetSpec]] = {
    "small": {
        "centric": ObjectSetSpec("centric", (3, 4)),
        "shape": ObjectSetSpec("shape", (3, 4)),
        "context": ObjectSetSpec("context", (6, 0)),
        "scenes": SceneSetSpec(24, 10),
    },
    "full": {
        "centric": ObjectSetSpec("centric", (4, 12)),
        "shape": ObjectSetSpec("shape", (4, 12)),
        "context": ObjectSetSpec("context", (24, 0)),
        "scenes": SceneSetSpec(60, 10),
    },
}
# the supervised ceiling's training images: train instances in every object set's style
CEILING_VIEWS: dict[str, tuple[ObjectSetSpec, ...]] = {
    "small": (ObjectSetSpec("centric", (2, 3)), ObjectSetSpec("shape", (2, 3)), ObjectSetSpec("context", (4, 0))),
    "full": (ObjectSetSpec("centric", (3, 8)), ObjectSetSpec("shape", (3, 8)), ObjectSetSpec("context", (12, 0))),
}


def _check(name: str, size: str) -> None:
    if name not in SETS:
        raise ValueError(f"evaluation set = {name!r}; expected one of {', '.join(SETS)}")
    if size not in SET_SIZES:
        raise ValueError(f"evaluation set size = {size!r}; expected one of {', '.join(SET_SIZES)}")


def _cache_key(spec: ObjectSetSpec | SceneSetSpec, split: str, seed: int) -> dict[str, Any]:
    from embodied.sim.objects import INSTANCES_PER_CATEGORY, LIBRARY_VERSION, TRAIN_POOL

    library = {"version": LIBRARY_VERSION, "per_category": INSTANCES_PER_CATEGORY, "train_pool": TRAIN_POOL}
    return {"spec": asdict(spec), "split": split, "seed": seed, "library": library, "render": RENDER_VERSION}


def _render(spec: ObjectSetSpec | SceneSetSpec, split: str, seed: int, progress: bool) -> dict[str, np.ndarray]:
    from embodied.eval import render

    if isinstance(spec, SceneSetSpec):
        return render.render_scene_set(spec.rooms_per_class, spec.frames_per_room, seed, spec.image_size, progress)
    return render.render_object_set(spec.kind, split, seed, spec.views, spec.image_size, progress=progress)


def _cached(spec: ObjectSetSpec | SceneSetSpec, split: str, seed: int, progress: bool) -> dict[str, Any]:
    """The set's arrays plus ``"_meta"``: {"seconds": render time, "cached": whether it was on disk}."""
    from embodied.sim.assets import asset_path

    path = asset_path("eval_sets", _cache_key(spec, split, seed), ".npz")
    meta_path = path.with_suffix(".json")
    cached = path.exists()
    if not cached:
        t = time.perf_counter()
        data = _render(spec, split, seed, progress)
        seconds = time.perf_counter() - t
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **data)
        tmp.replace(path)
        meta_path.write_text(json.dumps({"seconds": round(seconds, 2)}))
    with np.load(path) as f:
        out: dict[str, Any] = {k: f[k] for k in f.files}
    seconds = json.loads(meta_path.read_text())["seconds"] if meta_path.exists() else float("nan")
    out["_meta"] = {"seconds": seconds, "cached": cached, "path": str(path)}
    return out


def _seed(name: str) -> int:
    return SCENE_SEED_BASE if name == "scenes" else EVAL_SEED


def render_set(name: str, size: str = "small", progress: bool = False) -> dict[str, np.ndarray]:
    """The set ``name`` at ``size`` rendered afresh, bypassing the cache (for timing)."""
    _check(name, size)
    return _render(SPECS[size][name], "heldout", _seed(name), progress)


def load_set(name: str, size: str = "small", progress: bool = True) -> dict[str, Any]:
    """The evaluation set ``name`` at ``size``, rendered (once) if not cached.

    Object sets: images (N, S, S, 3) uint8, instance (N,) uid, category (N,), view (N, 4),
    fill (N,), scene_class (N,). ``scenes``: images, scene_class (N,), scene_id (N,).
    ``"_meta"``: render seconds and whether it came from the cache.
    """
    _check(name, size)
    return _cached(SPECS[size][name], "heldout", _seed(name), progress)


def load_ceiling_views(size: str = "small", progress: bool = True) -> dict[str, Any]:
    """Training images for the supervised ceiling: *train* instances in the style of every object set.

    images (N, S, S, 3) uint8, instance (N,), category (N,); another seed than the evaluation sets.
    """
    _check("centric", size)
    parts = [_cached(spec, "train", EVAL_SEED + 1, progress) for spec in CEILING_VIEWS[size]]
    out: dict[str, Any] = {k: np.concatenate([p[k] for p in parts]) for k in ("images", "instance", "category")}
    out["_meta"] = {
        "seconds": sum(p["_meta"]["seconds"] for p in parts),
        "cached": all(p["_meta"]["cached"] for p in parts),
    }
    return out


def describe(name: str, data: dict[str, Any]) -> str:
    """One line: how many images the set has, of what, and how long it took to render."""
    n = len(data["images"])
    if name == "scenes":
        what = f"{len(np.unique(data['scene_id']))} rooms of {len(np.unique(data['scene_class']))} classes"
    else:
        what = f"{len(np.unique(data['instance']))} held-out instances of {len(np.unique(data['category']))} categories"
    seconds = data.get("_meta", {}).get("seconds", float("nan"))
    return f"{name}: {n} images of {what}, rendered in {seconds:.1f} s"
