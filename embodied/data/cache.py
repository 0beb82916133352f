"""Frame cache: every observation of a dataset in memory-mapped ``.npy`` arrays, built once.

Random reads from a memory map run at hundreds of thousands of frames/s, against
tens of thousands from HDF5 one-frame chunks (and hundreds with h5py fancy
indexing), and the OS pages frames in and out, so a training process's memory
stays flat however large the dataset.

Layout under ``<dataset>/cache/``::

    obs_<key>.npy        (N, ...) every stored observation, episode after episode
    frames.npz           episode (N,) int64, t (N,) int64, and per-frame label columns
    stamp.json           the shard hashes the cache was built from (rebuilt when they change)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from embodied.data.manifest import load_manifest
from embodied.data.shards import open_shard


def _frame_labels(g: h5py.Group) -> dict[str, np.ndarray]:
    """Numeric scalar labels per stored frame (T+1): reset info then step infos, plus episode outcomes."""
    length = int(g.attrs["length"])
    cols: dict[str, np.ndarray] = {}
    for key, ds in g["infos"].items():
        if (
            not isinstance(ds, h5py.Dataset)
            or ds.dtype.kind not in "biuf"
            or ds.ndim != 1
            or key not in g["reset_info"]
        ):
            continue
        first = g["reset_info"][key]
        if first.dtype.kind in "biuf" and first.shape == (1,):
            cols[key] = np.concatenate([first[()], ds[()]]).astype(np.float64)
    for name, value in g.attrs.items():
        if name.startswith("outcome/") and np.ndim(value) == 0 and np.asarray(value).dtype.kind in "biuf":
            cols[name] = np.full(length + 1, float(value))
    return cols


class FrameCache:
    """Memory-mapped observations of the dataset at ``root`` (built on first use).

    Attributes:
        obs: key -> read-only (N, ...) memmap (``rgb`` is (N, H, W, 3) uint8).
        episode, t: (N,) int64 episode index and time step of every frame.
        labels: name -> (N,) float64 per-frame labels (e.g. ``scene_class_id``, ``outcome/success``).
        episodes: episode index -> (first frame row, number of frames).
    """

    def __init__(self, root: str | Path, keys: tuple[str, ...] | None = None, progress: bool = True) -> None:
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.dir = self.root / "cache"
        stamp = {"shards": [s["sha256"] for s in self.manifest["shards"]]}
        stamp_path = self.dir / "stamp.json"
        if not (stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp):
            self._build(stamp, progress)
        table = np.load(self.dir / "frames.npz")
        self.episode, self.t = table["episode"], table["t"]
        self.labels = {k[len("label:") :]: table[k] for k in table.files if k.startswith("label:")}
        self.obs = {p.stem[len("obs_") :]: np.load(p, mmap_mode="r") for p in sorted(self.dir.glob("obs_*.npy"))}
        if keys is not None:
            missing = [k for k in keys if k not in self.obs]
            if missing:
                raise ValueError(f"dataset {self.root} has no observation {missing}; it has {sorted(self.obs)}")
        starts = np.flatnonzero(np.r_[True, self.episode[1:] != self.episode[:-1]])
        lengths = np.diff(np.r_[starts, len(self.episode)])
        self.episodes = {int(self.episode[s]): (int(s), int(n)) for s, n in zip(starts, lengths, strict=True)}

    def __len__(self) -> int:
        return len(self.episode)

    def _build(self, stamp: dict[str, Any], progress: bool) -> None:
        """Stream every shard once into the memmaps (one episode in memory at a time)."""
        self.dir.mkdir(exist_ok=True)
        entries = self.manifest["shards"]
        total = sum(s["frames"] for s in entries)
        shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for entry in entries:  # shapes from the first episode that has them
            with open_shard(self.root / entry["name"], size=entry["bytes"]) as f:
                for g in f["data"].values():
                    for key, ds in g["obs"].items():
                        shapes.setdefault(key, (ds.shape[1:], ds.dtype))
            if shapes:
                break
        tmp = {k: self.dir / f".obs_{k}.npy.tmp" for k in shapes}
        arrays = {
            k: np.lib.format.open_memmap(tmp[k], mode="w+", dtype=dt, shape=(total, *shape))
            for k, (shape, dt) in shapes.items()
        }
        episode = np.empty(total, np.int64)
        t = np.empty(total, np.int64)
        labels: dict[str, np.ndarray] = {}
        row = 0
        bar = tqdm(total=total, unit="frame", desc="frame cache", disable=not progress)
        for entry in entries:
            with open_shard(self.root / entry["name"], entry["sha256"], entry["bytes"]) as f:
                for name in f["data"]:
                    g = f["data"][name]
                    n = int(g.attrs["length"]) + 1
                    for key, arr in arrays.items():
                        g["obs"][key].read_direct(arr, dest_sel=np.s_[row : row + n])
                    episode[row : row + n] = int(g.attrs["index"])
                    t[row : row + n] = np.arange(n)
                    for key, col in _frame_labels(g).items():
                        labels.setdefault(key, np.full(total, np.nan))[row : row + n] = col
                    row += n
                    bar.update(n)
        bar.close()
        for arr in arrays.values():
            arr.flush()
        arrays.clear()
        for key, path in tmp.items():
            os.replace(path, self.dir / f"obs_{key}.npy")
        np.savez(self.dir / "frames.npz", episode=episode, t=t, **{f"label:{k}": v for k, v in labels.items()})
        (self.dir / "stamp.json").write_text(json.dumps(stamp))
