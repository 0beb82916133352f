"""The floor: an untrained trunk (seeded initialisation), no data, no steps.

Its checkpoint loads like any other, so evaluation treats it as one more agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from embodied.agents.base import Agent


class RandomAgent(Agent):
    defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def open_datasets(cls, dirs: list[Path], options: dict[str, Any]) -> dict[str, Dataset]:
        return {}  # data is ignored

    def loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise RuntimeError("the random agent has no task to train")
