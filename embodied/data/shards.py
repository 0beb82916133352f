"""HDF5 shards: many episodes per file, written atomically and byte-for-byte repeatable.

Layout (h5py / robomimic users find their way)::

    /data/ep_000042/obs/rgb        (T+1, H, W, 3) uint8, one frame per chunk
    /data/ep_000042/actions ...    see :mod:`embodied.data.episode`
    /data.attrs["episodes"]        the global episode indices in this shard

No timestamps are written (``track_times=False``), so the same episodes give the
same bytes, and a file only appears under its final name once complete.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from embodied.data.episode import Episode, stack_column


class CorruptShardError(RuntimeError):
    """A shard is missing, truncated or differs from its manifest checksum."""


def episode_key(index: int) -> str:
    return f"ep_{index:06d}"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _dataset(
    group: h5py.Group, name: str, data: np.ndarray, chunk_frames: bool = False, compression: str | None = None
) -> None:
    chunks = (1, *data.shape[1:]) if chunk_frames and data.ndim >= 2 and data.shape[0] > 0 else None
    group.create_dataset(name, data=data, chunks=chunks, track_times=False, compression=compression if chunks else None)


def _write_column(group: h5py.Group, name: str, values: list[Any]) -> None:
    kind, data = stack_column(values)
    if kind == "array":
        _dataset(group, name, np.asarray(data))
    elif kind == "str":
        group.create_dataset(name, data=np.array(data, dtype=object), dtype=h5py.string_dtype(), track_times=False)
    elif kind == "ragged":  # one write for all rows: row by row cost ~10 % of collection time
        rows = np.empty(len(data), dtype=object)
        for i, row in enumerate(data):  # element-wise: slice assignment would broadcast equal-length rows
            rows[i] = row
        group.create_dataset(name, data=rows, dtype=h5py.vlen_dtype(data[0].dtype), track_times=False)
    elif kind == "strlist":  # joined with "\n": a list of names per step (visible categories)
        joined = np.array(["\n".join(v) for v in data], dtype=object)
        ds = group.create_dataset(name, data=joined, dtype=h5py.string_dtype(), track_times=False)
        ds.attrs["encoding"] = "newline-joined list"


def _write_episode(root: h5py.Group, ep: Episode, compression: str | None) -> None:
    g = root.create_group(episode_key(ep.index), track_order=True)
    obs = g.create_group("obs")
    for key, frames in ep.obs.items():
        _dataset(obs, key, np.stack(frames), chunk_frames=frames[0].ndim >= 2, compression=compression)
    if ep.actions:
        _dataset(g, "actions", np.stack(ep.actions))
    else:
        g.create_dataset("actions", shape=(0,), dtype=np.float32, track_times=False)
    _dataset(g, "rewards", np.asarray(ep.rewards, dtype=np.float32))
    _dataset(g, "terminated", np.asarray(ep.terminated, dtype=bool))
    _dataset(g, "truncated", np.asarray(ep.truncated, dtype=bool))
    infos = g.create_group("infos")
    keys = sorted({k for info in ep.infos for k in info})
    for key in keys:
        if all(key in info for info in ep.infos):
            _write_column(infos, key, [info[key] for info in ep.infos])
    reset = g.create_group("reset_info")
    for key in sorted(ep.reset_info):
        _write_column(reset, key, [ep.reset_info[key]])
    g.attrs["seed"] = ep.seed
    g.attrs["index"] = ep.index
    g.attrs["length"] = ep.length
    g.attrs["return"] = float(np.sum(ep.rewards, dtype=np.float64))
    g.attrs["invalid"] = ep.invalid
    for key, value in sorted(ep.outcome().items()):
        g.attrs[f"outcome/{key}"] = value


def write_shard(path: Path, episodes: list[Episode], compression: str | None = None) -> dict[str, Any]:
    """Write ``episodes`` to ``path`` atomically; returns {"sha256", "bytes"}.

    The file is written as ``.<name>.tmp`` beside ``path`` and renamed when closed:
    a crash leaves at most a temporary file, never a half shard under the real name.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(tmp, "w", libver="earliest") as f:
            root = f.create_group("data", track_order=True)
            root.attrs["episodes"] = np.array([ep.index for ep in episodes], dtype=np.int64)
            for ep in episodes:
                _write_episode(root, ep, compression)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"sha256": digest, "bytes": size}


def open_shard(path: Path, sha256: str | None = None, size: int | None = None) -> h5py.File:
    """Open a shard read-only, refusing one that is missing, truncated or altered."""
    path = Path(path)
    if not path.exists():
        raise CorruptShardError(f"shard {path} is missing")
    if size is not None and path.stat().st_size != size:
        raise CorruptShardError(f"shard {path} has {path.stat().st_size} bytes; the manifest says {size} (truncated?)")
    if sha256 is not None and sha256_file(path) != sha256:
        raise CorruptShardError(f"shard {path} does not match its manifest sha256 (altered or corrupted)")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise CorruptShardError(f"shard {path} cannot be read as HDF5: {e}") from None
