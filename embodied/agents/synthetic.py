"""Tiny in-memory datasets with the item formats of every reader, for tests and benchmarks.

No simulator, no files: random images (uint8) and targets of the right shapes and dtypes.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorItems(Dataset):
    """Items ``{key: tensor[i]}`` from equal-length tensors; extra attributes (e.g. ``n_classes``) via kwargs."""

    def __init__(self, tensors: dict[str, torch.Tensor], **attrs: object) -> None:
        lengths = {len(v) for v in tensors.values()}
        if len(lengths) > 1:
            raise ValueError(f"tensors of different lengths {sorted(lengths)}")
        self.tensors = tensors
        self.n = lengths.pop() if lengths else 0
        for k, v in attrs.items():
            setattr(self, k, v)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


def _images(g: torch.Generator, n: int, size: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)


def synthetic_datasets(agent: str, n: int = 64, size: int = 32, seed: int = 0, k: int = 4) -> dict[str, Dataset]:
    """{task: Dataset} for the agent class name's tasks ("equivariant", "curious"...), ``n`` items each.

    Formats: ego {"x_i","x_j","motion","g","dt"}; frames {"rgb","scene_class_id"}; grasp {"patch",
    "angle_bin","success"}; push {"before","after","action" (5,)}; poke {"rgb","force" (16,),"line" (2,),"press" (2,)};
    identity {"anchor","positive","negative","instance","category"}.
    """
    g = torch.Generator().manual_seed(seed)

    def img() -> torch.Tensor:
        return _images(g, n, size)

    if agent in ("equivariant", "slowness"):
        return {
            "ego": TensorItems(
                {
                    "x_i": img(),
                    "x_j": img(),
                    "motion": torch.randn(n, 4, generator=g),
                    "g": torch.randint(0, k, (n,), generator=g),
                    "dt": torch.randint(1, 4, (n,), generator=g),
                },
                n_classes=k,
            )
        }
    if agent in ("simclr", "supervised"):
        return {
            "frames": TensorItems({"rgb": img(), "scene_class_id": torch.randint(0, 3, (n,), generator=g).double()})
        }
    if agent == "curious":
        return {
            "grasp": TensorItems(
                {
                    "patch": img(),
                    "angle_bin": torch.randint(0, 18, (n,), generator=g),
                    "success": torch.randint(0, 2, (n,), generator=g).float(),
                }
            ),
            "push": TensorItems({"before": img(), "after": img(), "action": torch.rand(n, 5, generator=g) * 2 - 1}),
            "poke": TensorItems(
                {
                    "rgb": img(),
                    "force": torch.rand(n, 16, generator=g),
                    "line": torch.randn(n, 2, generator=g),
                    # its own stream: the other items stay what they were before press existed
                    "press": torch.rand(n, 2, generator=torch.Generator().manual_seed(g.initial_seed() + 1))
                    * torch.tensor([300.0, 0.02]),  # N, m
                }
            ),
            "identity": TensorItems(
                {
                    "anchor": img(),
                    "positive": img(),
                    "negative": img(),
                    "instance": torch.randint(0, 8, (n,), generator=g),
                    "category": torch.randint(0, 4, (n,), generator=g),
                }
            ),
        }
    if agent == "random":
        return {}
    raise ValueError(f"no synthetic data for agent {agent!r}")
