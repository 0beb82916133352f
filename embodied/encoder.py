"""``load_encoder``: the one way evaluation, retrieval and RL feature extractors get a representation.

enc = load_encoder("runs/equivariant")            # run dir or checkpoint.pt
enc = load_encoder("random", seed=0)              # the untrained baseline, same architecture
z = enc(images)   # uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1]  ->  (N, D) float32
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from embodied.agents.registry import load_preset
from embodied.checkpoint import load_checkpoint
from embodied.nn.trunk import Preprocess, Trunk, TrunkConfig


class Encoder(nn.Module):
    """A frozen trunk with its preprocessing: images -> (N, D) float32 embeddings.

    Always in eval mode (batch-norm statistics fixed; ``.train()`` is ignored) with
    ``requires_grad`` off. ``embed_dim`` is D, ``config`` the TrunkConfig, ``meta`` where it came from.
    """

    def __init__(self, trunk: Trunk, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = trunk.config
        self.preprocess = Preprocess(trunk.config.image_size)
        self.trunk = trunk
        self.meta = dict(meta or {})
        self.requires_grad_(False)
        super().train(False)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def train(self, mode: bool = True) -> Encoder:  # frozen: stays in eval mode
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1] -> (N, D) float32."""
        device = next(self.trunk.parameters()).device
        return self.trunk(self.preprocess(images.to(device))).float()


def load_encoder(
    path: str | Path,
    device: str | torch.device = "cpu",
    seed: int = 0,
    trunk: dict[str, Any] | None = None,
) -> Encoder:
    """The frozen encoder of a checkpoint (file, or run directory holding ``checkpoint.pt``).

    ``path == "random"`` builds the untrained baseline: the ``random`` preset's trunk (or
    ``trunk`` overrides, e.g. ``{"width": 64}`` to match a checkpoint) initialised from ``seed``.
    """
    if str(path) == "random":
        raw = {**load_preset("random").trunk, **(trunk or {})}
        gen_state = torch.get_rng_state()
        torch.manual_seed(seed)  # the same seed gives the same floor, without disturbing the caller's RNG
        try:
            net = Trunk(TrunkConfig.from_dict(raw))
        finally:
            torch.set_rng_state(gen_state)
        return Encoder(net, {"agent": "random", "seed": seed, "step": 0}).to(device)
    ckpt = load_checkpoint(path, map_location="cpu")
    preset = ckpt["preset"]
    net = Trunk(TrunkConfig.from_dict(preset["trunk"]))
    state = {k[len("trunk.") :]: v for k, v in ckpt["model"].items() if k.startswith("trunk.")}
    net.load_state_dict(state)
    meta = {"agent": preset["name"], "path": str(path), "step": int(ckpt["step"]), "options": preset.get("options", {})}
    meta["metrics"] = ckpt.get("metrics") or {}  # the last logged row: held-out numbers such as val/*
    return Encoder(net, meta).to(device)
