"""On-disk cache of generated assets (meshes, textures).

Every asset is a pure function of its parameters, so its file name is a hash of
them; writing goes to a temporary name and is renamed, so concurrent workers
and killed processes never leave a half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np


def cache_dir() -> Path:
    """The asset cache: ``$EMBODIED_CACHE`` or ``~/.cache/embodied``."""
    root = Path(os.environ.get("EMBODIED_CACHE", Path.home() / ".cache" / "embodied"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def asset_path(kind: str, params: dict, suffix: str) -> Path:
    """Deterministic path for an asset of ``kind`` made from JSON-able ``params``."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]
    sub = cache_dir() / kind
    sub.mkdir(parents=True, exist_ok=True)
    return sub / f"{key}{suffix}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def obj_bytes(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None) -> bytes:
    """Wavefront OBJ text for a triangle mesh.

    vertices: (V, 3) metres; faces: (F, 3) zero-based vertex indices, counter-clockwise
    seen from outside; uvs: optional (V, 2) texture coordinates, one per vertex.
    Fixed-precision formatting keeps the bytes identical across processes.
    """
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, dtype=np.float64)]
    if uvs is not None:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in np.asarray(uvs, dtype=np.float64)]
        lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in faces]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return ("\n".join(lines) + "\n").encode()


def write_mesh(params: dict, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None) -> Path:
    """Write (once) and return the cached OBJ file for a mesh identified by ``params``."""
    path = asset_path("meshes", params, ".obj")
    if not path.exists():
        _atomic_write(path, obj_bytes(vertices, faces, uvs))
    return path


def write_texture(params: dict, image: np.ndarray) -> Path:
    """Write (once) and return the cached PNG for an (H, W, 3) uint8 RGB ``image``."""
    path = asset_path("textures", params, ".png")
    if not path.exists():
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
        if not ok:
            raise RuntimeError(f"could not encode texture {params}")
        _atomic_write(path, buf.tobytes())
    return path


def procedural_texture(pattern: str, colors: np.ndarray, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A small RGB texture: ``pattern`` in {"plain", "checker", "stripes", "noise", "dots"}.

    colors: (2, 3) floats in [0, 1] (foreground, background). Returns (size, size, 3) uint8.
    """
    a, b = (np.asarray(c, dtype=np.float64) * 255.0 for c in colors)
    yy, xx = np.mgrid[0:size, 0:size]
    if pattern == "plain":
        mask = np.zeros((size, size), bool)
    elif pattern == "checker":
        cell = int(rng.choice([4, 8, 16]))
        mask = ((xx // cell) + (yy // cell)) % 2 == 0
    elif pattern == "stripes":
        period = int(rng.choice([4, 8, 16]))
        mask = ((xx if rng.random() < 0.5 else yy) // (period // 2)) % 2 == 0
    elif pattern == "dots":
        period = int(rng.choice([8, 16]))
        mask = ((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2) < (period / 4) ** 2
    elif pattern == "noise":
        coarse = rng.random((8, 8))
        mask = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR) > 0.5
    else:
        raise ValueError(f"unknown texture pattern {pattern!r}; expected plain, checker, stripes, noise or dots")
    img = np.where(mask[..., None], a, b)
    return np.clip(img, 0, 255).astype(np.uint8)
