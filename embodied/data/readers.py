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
from embodied.data.motion import MotionClusters


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
    a frame), shape (D,) float32; g: its motion class among ``k`` k-means clusters,
    fitted once and stored under ``<dataset>/cache/motion_k{k}_w{window}.json``.
    Item: {"x_i", "x_j": (H, W, 3) uint8, "motion": (D,) float32, "g": int64, "dt": int64}.
    """

    def __init__(self, root: str | Path, window: int = 3, k: int = 6, seed: int = 0) -> None:
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
        self.motion = (cum[self.j] - cum[self.i]).astype(np.float32)
        path = self.cache.dir / f"motion_k{k}_w{window}.json"
        if path.exists():
            self.clusters = MotionClusters.load(path)
        else:
            self.clusters = MotionClusters.fit(self.motion.astype(np.float64), k, seed)
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
