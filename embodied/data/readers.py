"""PyTorch datasets over a collected dataset's frame cache.

Items hold images as uint8 ``(H, W, 3)`` tensors; models do their own
preprocessing (``load_encoder`` puts it inside the network), so loaders stay cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from embodied.data.cache import FrameCache
from embodied.data.motion import MIN_SNR, MotionClusters, step_noise


class FrameDataset(Dataset):
    """(a) Single frames with their labels.

    Item: {"rgb": (H, W, 3) uint8, "episode": int64, "t": int64, <label>: float64 for each label}.
    ``labels`` picks which per-frame label columns to return (default: all).
    """

    def __init__(self, root: str | Path, labels: list[str] | None = None, key: str = "rgb") -> None:
        self.cache = FrameCache(root, keys=(key,))
        self.key = key
        names = list(self.cache.labels) if labels is None else labels
        missing = [n for n in names if n not in self.cache.labels]
        if missing:
            raise ValueError(f"dataset {root} has no label {missing}; it has {sorted(self.cache.labels)}")
        self.label_names = names

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {
            self.key: torch.from_numpy(np.array(self.cache.obs[self.key][i])),
            "episode": torch.tensor(self.cache.episode[i]),
            "t": torch.tensor(self.cache.t[i]),
        }
        for name in self.label_names:
            item[name] = torch.tensor(self.cache.labels[name][i])
        return item


class EgoPairDataset(Dataset):
    """(b) Ego-motion frame pairs (x_i, x_j), 1 <= j - i <= window, within one episode.

    motion: the motor signal summed over frames i+1..j (odometry is the motion *into*
    a frame), shape (D,) float32 in the motor's units; g: its motion class among ``k``
    k-means clusters on the *informative* channels only (a channel whose pair signal-to-noise
    ratio is below ``min_snr`` is left out, see :mod:`embodied.data.motion`; on EgoMotion data
    that drops ``lateral_m``, pure sensor noise), fitted once and stored under
    ``<dataset>/cache/motion_v2_k{k}_w{window}.json`` (``_snr<min_snr>`` added when not the default).
    Item: {"x_i", "x_j": (H, W, 3) uint8, "motion": (D,) float32, "g": int64, "dt": int64}.

    Attributes: ``episode`` (N,) int64, the episode of each pair; ``noise`` (D,) the per-step
    sensor-noise std estimated from the data; ``clusters`` the fitted :class:`MotionClusters`.

    The default window of 3 was chosen by measurement on a 10-episode explore dataset
    (1,000 steps): windows 1..6 give largest classes of 32, 31, 25, 36, 30 and 35 % of the pairs;
    3 is the most balanced, keeps look up and look down as classes of their own (5-6 % each,
    +-11 to 12 deg of pitch), turns of +-26 deg (a 6-7 px image shift at 64 px) and one- and
    multi-step forward classes (0.16 m, 0.46 m); longer windows turn by 40-50 deg, more than half
    the 70 deg field of view, so the two frames share little of the scene.
    """

    def __init__(self, root: str | Path, window: int = 3, k: int = 6, seed: int = 0, min_snr: float = MIN_SNR) -> None:
        if window <= 0:
            raise ValueError(f"window={window}; expected a positive number of frames")
        self.cache = FrameCache(root, keys=("rgb", "motor"))
        self.window = window
        motor = np.asarray(self.cache.obs["motor"], dtype=np.float64)
        # cumulative motor within each episode: sum over (i, j] = cum[j] - cum[i]
        cum = np.cumsum(motor, axis=0)
        first, second = [], []
        for start, n in self.cache.episodes.values():
            for dt in range(1, window + 1):
                i = np.arange(start, start + n - dt)
                first.append(i)
                second.append(i + dt)
        if not first or sum(len(a) for a in first) == 0:
            raise ValueError(f"dataset {root} has no frame pairs within window={window}")
        self.i = np.concatenate(first)
        self.j = np.concatenate(second)
        self.episode = np.asarray(self.cache.episode, dtype=np.int64)[self.i]
        self.motion = (cum[self.j] - cum[self.i]).astype(np.float32)
        self.noise = step_noise(motor, list(self.cache.episodes.values()))
        tag = "" if min_snr == MIN_SNR else f"_snr{min_snr:g}"
        path = self.cache.dir / f"motion_v2_k{k}_w{window}{tag}.json"
        if path.exists():
            self.clusters = MotionClusters.load(path)
        else:
            self.clusters = MotionClusters.fit(
                self.motion.astype(np.float64), k, seed, noise=self.noise, dt=self.j - self.i, min_snr=min_snr
            )
            self.clusters.save(path)
        self.g = self.clusters.assign(self.motion)

    def __len__(self) -> int:
        return len(self.i)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        rgb = self.cache.obs["rgb"]
        i, j = int(self.i[n]), int(self.j[n])
        return {
            "x_i": torch.from_numpy(np.array(rgb[i])),
            "x_j": torch.from_numpy(np.array(rgb[j])),
            "motion": torch.from_numpy(self.motion[n]),
            "g": torch.tensor(self.g[n]),
            "dt": torch.tensor(j - i),
        }


class StepTable:
    """Per-step arrays of a dataset: actions and infos, aligned with frame-cache rows.

    ``frame[s]`` is the cache row of the observation before step s, ``next_frame[s]``
    the one after it; ``fields`` maps a name to a path inside an episode group
    ("actions", "infos/success", ...). Built once from the shards and stored in
    ``<dataset>/cache/steps_<names>.npz`` (rebuilt with the frame cache).
    """

    def __init__(self, cache: FrameCache, fields: dict[str, str]) -> None:
        import json

        import h5py

        from embodied.data.shards import open_shard

        path = cache.dir / f"steps_{'_'.join(sorted(fields))}.npz"
        stamp = json.dumps({"shards": [s["sha256"] for s in cache.manifest["shards"]], "fields": fields})
        if path.exists():
            with np.load(path) as f:
                if str(f["stamp"]) == stamp:
                    self._set({k: f[k] for k in f.files if k != "stamp"})
                    return
        cols: dict[str, list[np.ndarray]] = {k: [] for k in (*fields, "frame", "next_frame", "episode", "t")}
        for entry in cache.manifest["shards"]:
            with open_shard(cache.root / entry["name"], size=entry["bytes"]) as f:
                for g in f["data"].values():
                    n = int(g.attrs["length"])
                    start = cache.episodes[int(g.attrs["index"])][0]
                    for name, where in fields.items():
                        if where not in g:
                            raise ValueError(
                                f"dataset {cache.root} has no {where!r} in its episodes; "
                                f"this reader needs it (wrong env?)"
                            )
                        ds = g[where]
                        cols[name].append(np.asarray(ds[()]) if isinstance(ds, h5py.Dataset) else np.empty(0))
                    cols["frame"].append(start + np.arange(n))
                    cols["next_frame"].append(start + 1 + np.arange(n))
                    cols["episode"].append(np.full(n, int(g.attrs["index"])))
                    cols["t"].append(np.arange(n))
        arrays = {k: np.concatenate(v) if v else np.empty(0) for k, v in cols.items()}
        np.savez(path, stamp=np.array(stamp), **arrays)
        self._set(arrays)

    def _set(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["frame"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def _nonempty(ds: Dataset, root: str | Path, what: str) -> None:
    if len(ds) == 0:
        raise ValueError(f"dataset {root} has no {what}")


def cut_patch(img: np.ndarray, u: int, v: int, side: int) -> np.ndarray:
    """(H, W, C) image -> (side, side, C) square centred at pixel (u = column, v = row), edges replicated."""
    h, w = img.shape[:2]
    half = side // 2
    rows = np.clip(np.arange(v - half, v - half + side), 0, h - 1)
    cols = np.clip(np.arange(u - half, u - half + side), 0, w - 1)
    return np.ascontiguousarray(img[rows][:, cols])


class GraspPatchDataset(Dataset):
    """(c) Grasp attempts: a patch centred at the grasp point, the tried angle bin, the outcome.

    Item: {"patch": (P, P, 3) uint8 cut from the image before the attempt (edges replicated
    beyond the image), "angle_bin": int64 in 0..17, "success": float32 0 / 1}.
    """

    def __init__(self, root: str | Path, patch: int = 64) -> None:
        if patch <= 0:
            raise ValueError(f"patch={patch}; expected a positive number of pixels")
        self.cache = FrameCache(root, keys=("rgb",))
        self.steps = StepTable(self.cache, {"action": "actions", "success": "infos/success"})
        self.patch = patch
        _nonempty(self, root, "grasp attempts")

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        u, v, angle_bin = (int(x) for x in self.steps["action"][n][:3])
        img = self.cache.obs["rgb"][int(self.steps["frame"][n])]
        return {
            "patch": torch.from_numpy(cut_patch(img, u, v, self.patch)),
            "angle_bin": torch.tensor(angle_bin, dtype=torch.int64),
            "success": torch.tensor(float(self.steps["success"][n]), dtype=torch.float32),
        }


class PushPairDataset(Dataset):
    """(d) Pushes: the image before and after, and the push action as the env took it
    (start u, v, direction, length, each normalised to [-1, 1]).

    Item: {"before", "after": (H, W, 3) uint8, "action": (4,) float32}.
    """

    def __init__(self, root: str | Path) -> None:
        self.cache = FrameCache(root, keys=("rgb",))
        self.steps = StepTable(self.cache, {"action": "actions"})
        _nonempty(self, root, "pushes")

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        rgb = self.cache.obs["rgb"]
        return {
            "before": torch.from_numpy(np.array(rgb[int(self.steps["frame"][n])])),
            "after": torch.from_numpy(np.array(rgb[int(self.steps["next_frame"][n])])),
            "action": torch.from_numpy(np.asarray(self.steps["action"][n], dtype=np.float32)),
        }


class PokeDataset(Dataset):
    """(e) Pokes: the image before, the fingertip's normal-force profile, its line fit and how the press ended.

    Item: {"rgb": (H, W, 3) uint8, "force": (L,) float32 newtons, "line": (2,) float32 (slope N/s, intercept N),
    "press": (2,) float32 (peak normal force N, depth pressed below the surface m)}. With ``patch`` (px), "rgb"
    is the (patch, patch, 3) square of that image centred at the poked pixel (edges replicated), as grasp
    patches are: what was poked, not the whole scene.
    """

    def __init__(self, root: str | Path, patch: int | None = None) -> None:
        if patch is not None and (isinstance(patch, bool) or not isinstance(patch, int) or patch <= 0):
            raise ValueError(f"patch={patch!r}; expected a positive number of pixels or None (the whole image)")
        self.patch = patch
        self.cache = FrameCache(root, keys=("rgb",))
        fields = {
            "pixel": "actions",
            "force": "infos/force_profile",
            "line": "infos/fit",
            "peak": "infos/peak_force",
            "depth": "infos/depth",
        }
        self.steps = StepTable(self.cache, fields)
        _nonempty(self, root, "pokes")

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        img = np.array(self.cache.obs["rgb"][int(self.steps["frame"][n])])
        if self.patch is not None:
            u, v = (int(x) for x in self.steps["pixel"][n][:2])
            img = cut_patch(img, u, v, self.patch)
        return {
            "rgb": torch.from_numpy(img),
            "force": torch.from_numpy(np.asarray(self.steps["force"][n], dtype=np.float32)),
            "line": torch.from_numpy(np.asarray(self.steps["line"][n], dtype=np.float32)),
            "press": torch.tensor([self.steps["peak"][n], self.steps["depth"][n]], dtype=torch.float32),
        }


class IdentityDataset(Dataset):
    """(f) Multi-view identity triplets: two views of one instance and a view of another.

    Item n: anchor = frame n, positive = a view of the same instance from *another* episode when
    the dataset has one (another backdrop, room and light: matching on the background cannot
    solve it), else another frame of the same episode; negative = a frame of an episode showing a
    different instance; drawn from a generator seeded by (seed, n), so items are reproducible.
    ``cross_episode=False`` always takes the positive from the anchor's episode.
    Also "instance" and "category" of the anchor.
    Item: {"anchor", "positive", "negative": (H, W, 3) uint8, "instance": int64, "category": int64}.
    """

    def __init__(self, root: str | Path, seed: int = 0, cross_episode: bool = True) -> None:
        self.cache = FrameCache(root, keys=("rgb",))
        self.cross_episode = cross_episode
        for label in ("outcome/instance", "outcome/category_id"):
            if label not in self.cache.labels:
                raise ValueError(f"dataset {root} has no {label!r} labels; identity needs multi-view (Look) data")
        self.instance = self.cache.labels["outcome/instance"].astype(np.int64)
        self.category = self.cache.labels["outcome/category_id"].astype(np.int64)
        self.seed = seed
        if len(np.unique(self.instance)) < 2:
            raise ValueError(f"dataset {root} shows fewer than 2 object instances; identity needs negatives")
        self.rows = np.flatnonzero(np.array([self.cache.episodes[int(e)][1] > 1 for e in self.cache.episode]))
        _nonempty(self, root, "episodes with two or more views")
        self.episodes_of: dict[int, list[int]] = {}  # instance -> its episodes, in dataset order
        for e, (start, _) in self.cache.episodes.items():
            self.episodes_of.setdefault(int(self.instance[start]), []).append(int(e))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, n))
        i = int(self.rows[n])
        start, length = self.cache.episodes[int(self.cache.episode[i])]
        episode = int(self.cache.episode[i])
        others = [e for e in self.episodes_of[int(self.instance[i])] if e != episode] if self.cross_episode else []
        if others:
            o_start, o_length = self.cache.episodes[others[int(rng.integers(len(others)))]]
            j = o_start + int(rng.integers(o_length))
        else:
            j = start + (i - start + 1 + int(rng.integers(length - 1))) % length  # any other view
        while True:
            k = int(rng.integers(len(self.instance)))
            if self.instance[k] != self.instance[i]:
                break
        rgb = self.cache.obs["rgb"]
        return {
            "anchor": torch.from_numpy(np.array(rgb[i])),
            "positive": torch.from_numpy(np.array(rgb[j])),
            "negative": torch.from_numpy(np.array(rgb[k])),
            "instance": torch.tensor(self.instance[i]),
            "category": torch.tensor(self.category[i]),
        }
