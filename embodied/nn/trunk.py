"""The shared "root network": an AlexNet-like CNN scaled to 64-128 px inputs.

Both papers put one convolutional trunk under several heads. The heads attach
at different depths (Pinto et al.: grasp on conv4-level features, push on conv3
of two towers, poke and identity on the top embedding), so the trunk exposes
every intermediate map by name (``conv1`` .. ``conv{depth}``) besides its
pooled embedding ``embed`` of dimension D.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from embodied.config import check_keys

# AlexNet's channel ratios (96, 256, 384, 384, 256) rounded to multiples of the base width.
_WIDTH_MULT = (1, 2, 4, 4, 2, 2, 2)


@dataclass(frozen=True)
class TrunkConfig:
    """Architecture of the trunk; the same dataclass travels in every checkpoint.

    width: channels of conv1 (later layers use AlexNet's ratios 1:2:4:4:2).
    depth: number of conv layers, 3..7 (named conv1..conv{depth}).
    embed_dim: D, the dimension of the pooled embedding.
    norm: "batch", "group" or "none" after every conv.
    image_size: the side in pixels images are resized to before the trunk (preprocessing).
    """

    width: int = 32
    depth: int = 5
    embed_dim: int = 128
    norm: str = "batch"
    image_size: int = 64

    def __post_init__(self) -> None:
        if not 3 <= self.depth <= len(_WIDTH_MULT):
            raise ValueError(f"trunk depth={self.depth}; expected 3..{len(_WIDTH_MULT)}")
        if self.width < 1 or self.embed_dim < 1 or self.image_size < 16:
            raise ValueError(f"trunk width={self.width}, embed_dim={self.embed_dim}, image_size={self.image_size}")
        if self.norm not in ("batch", "group", "none"):
            raise ValueError(f"trunk norm={self.norm!r}; expected 'batch', 'group' or 'none'")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrunkConfig:
        raw = dict(raw or {})
        check_keys(raw, (f.name for f in fields(cls)), prefix="trunk.", expected="a trunk field")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def channels(self, layer: str) -> int:
        """Channels of the feature map ``conv<k>`` (or D for ``embed``)."""
        if layer == "embed":
            return self.embed_dim
        k = int(layer.removeprefix("conv"))
        if not 1 <= k <= self.depth:
            raise ValueError(f"trunk has no layer {layer!r}; it has conv1..conv{self.depth} and embed")
        return self.width * _WIDTH_MULT[k - 1]


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "group":
        return nn.GroupNorm(min(8, c), c)
    return nn.Identity()


class Trunk(nn.Module):
    """(N, 3, H, W) float, normalised -> (N, D) embedding, with named intermediate maps.

    Layout (AlexNet shape, strides scaled down for small images): conv1 5x5 stride 2
    + max-pool 2, conv2 3x3 + max-pool 2, conv3..conv{depth} 3x3, max-pool 2, global
    average pool, linear to D. At 64 px the maps are conv1 16x16, conv2 8x8, conv3+ 8x8.
    """

    def __init__(self, config: TrunkConfig | None = None) -> None:
        super().__init__()
        self.config = config or TrunkConfig()
        c = self.config
        self.layers = nn.ModuleDict()
        cin = 3
        for k in range(1, c.depth + 1):
            cout = c.width * _WIDTH_MULT[k - 1]
            kernel, stride = (5, 2) if k == 1 else (3, 1)
            # no conv bias under a norm layer: the norm's shift replaces it
            conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=c.norm == "none")
            block: list[nn.Module] = [conv, _norm(c.norm, cout), nn.ReLU(inplace=True)]
            if k in (1, 2):
                block.append(nn.MaxPool2d(2))
            self.layers[f"conv{k}"] = nn.Sequential(*block)
            cin = cout
        self.pool = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, c.embed_dim)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def features(self, x: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """Every intermediate map: {"conv1": (N, C1, H1, W1), ..., "embed": (N, D)}.

        ``upto`` stops after that layer (a head on conv3 need not pay for conv4..embed).
        """
        out: dict[str, torch.Tensor] = {}
        for name, layer in self.layers.items():
            x = layer(x)
            out[name] = x
            if name == upto:
                return out
        out["embed"] = self.fc(self.pool(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D)."""
        return self.features(x)["embed"]


class Preprocess(nn.Module):
    """Images as they come from datasets -> what the trunk eats.

    Accepts uint8 (N, H, W, 3) (values 0..255) or float (N, 3, H, W) (values 0..1);
    returns float (N, 3, S, S) normalised to about [-1, 1], S = ``image_size``
    (bilinear resize only when the input is another size).
    """

    def __init__(self, image_size: int, channels_last: bool = False) -> None:
        super().__init__()
        self.image_size = image_size
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            if x.ndim != 4 or x.shape[-1] != 3:
                raise ValueError(f"uint8 images must be (N, H, W, 3); got {tuple(x.shape)}")
            # permute is a view: the (N, H, W, 3) memory already is channels_last
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
        elif x.is_floating_point():
            if x.ndim != 4 or x.shape[1] != 3:
                raise ValueError(f"float images must be (N, 3, H, W); got {tuple(x.shape)}")
            x = x.float()
        else:
            raise ValueError(f"images must be uint8 (N, H, W, 3) or float (N, 3, H, W); got {x.dtype}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = nn.functional.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True
            )
        x = (x - 0.5) / 0.5
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
