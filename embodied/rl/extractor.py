"""The SB3 features extractor: a learned, random or NatureCNN trunk for the image of a Dict observation.

The extractor wraps ``embodied.load_encoder`` for the image key of a Dict observation and
passes every other key (proprioception, last action, motor signals) through a small MLP, as
SB3's ``CombinedExtractor`` does::

    from stable_baselines3 import PPO
    from embodied.rl import policy_kwargs
    model = PPO("MultiInputPolicy", env, policy_kwargs=policy_kwargs("runs/curious"))

Encoder kinds: a checkpoint file or run directory (the trunk of a trained agent),
``"random"`` (the same architecture, untrained: the floor) and ``"nature"`` (SB3's own
NatureCNN, trained from scratch with the policy: the familiar reference). Trunks are
frozen unless ``finetune=True``; either way their batch-norm statistics stay fixed
(PPO alternates rollout and update modes, and moving statistics would change the
policy between the two). Saved models come back with :func:`embodied.rl.load_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

from embodied.encoder import load_encoder
from embodied.rl.exemplar import ExemplarMatch, expected_xy
from embodied.rl.feature_cache import FeatureCache
from embodied.rl.glimpse import GLIMPSES, PACKED, GlimpseAttention, crop, pack, propose
from embodied.rl.optim import ScaledAdam, check_lr_scale, set_lr_scale

BUILTIN_ENCODERS = ("random", "nature")
FEATURES = ("embed", "keypoints", "glimpses")
NATURE_MIN_SIZE = 36  # px: NatureCNN's 8/4, 4/2, 3/1 convolutions need at least this
NATURE_RESIZE = 64  # px NatureCNN images are resized to when they are too small and resize=True
IMAGE_KEY = "rgb"
CACHE_MB = 512  # frozen-trunk outputs kept by image (64 px, last conv map: 16 kB each, ~32k images)
EXEMPLAR_CACHE_MB = 16  # exemplars' glimpses (one per episode)


def _image_layout(space: spaces.Box) -> tuple[bool, int, int]:
    """(channels_first, H, W) of an RGB image space shaped (3, H, W) or (H, W, 3)."""
    shape = tuple(space.shape)
    if len(shape) == 3 and shape[0] == 3 and shape[-1] != 3:
        return True, shape[1], shape[2]
    if len(shape) == 3 and shape[-1] == 3:
        return False, shape[0], shape[1]
    raise ValueError(f"the image observation has shape {shape}; expected (H, W, 3) or (3, H, W) RGB")


def _dict_image_layout(observation_space: spaces.Space, image_key: str) -> tuple[bool, int, int]:
    """(channels_first, H, W) of the image under ``image_key`` of a Dict space; ValueError for any other space."""
    if not isinstance(observation_space, spaces.Dict) or image_key not in observation_space.spaces:
        raise ValueError(
            f"EmbodiedExtractor needs a Dict observation space with an {image_key!r} image; got {observation_space}"
        )
    image_space = observation_space[image_key]
    if not isinstance(image_space, spaces.Box):
        raise ValueError(f"observation {image_key!r} is {image_space}; expected an image Box")
    return _image_layout(image_space)


def _to_nchw(x: torch.Tensor, channels_first: bool) -> torch.Tensor:
    """Float images (N, 3, H, W) in [0, 1] from SB3's preprocessed batch (either layout)."""
    x = x.float()
    return x if channels_first else x.permute(0, 3, 1, 2)


class SpatialSoftmax(nn.Module):
    """Learned keypoints on a feature map (Levine et al., JMLR 2016): where, not what.

    A 1x1 convolution turns the (N, C, H, W) map into K score maps; a softmax over each
    map's H*W cells (temperature learned) gives an attention map whose expected image
    coordinates are the keypoint. Output (N, 2K): x_1..x_K, y_1..y_K in [-1, 1] (x grows
    to the right, y downwards). Global average pooling throws positions away; control
    from a frozen trunk needs them.

    With ``cond_dim`` > 0, ``forward(x, cond)`` adds to the convolution's weights a linear function
    of ``cond`` (N, cond_dim): for a one-hot goal, every goal has its own K filters, so keypoint k
    can follow the goal's object whichever goal it is, and the policy need not learn which
    keypoint belongs to which goal (a binding PPO does not learn in 100k steps even from
    privileged state: ``docs/rl.md``).
    """

    def __init__(self, channels: int, keypoints: int = 32, cond_dim: int = 0) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.cond: nn.Linear | None = None
        if cond_dim:
            self.cond = nn.Linear(cond_dim, keypoints * (channels + 1), bias=False)
            bound = channels**-0.5  # the scale of the shared filters (Conv2d's default initialisation)
            nn.init.uniform_(self.cond.weight, -bound, bound)
        self.n_keypoints = keypoints

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        scores = self.proj(x).flatten(2)  # (N, K, H*W)
        if self.cond is not None:
            if cond is None:
                raise ValueError("these keypoints are conditioned; pass cond=")
            wb = self.cond(cond.float().flatten(1)).view(n, self.n_keypoints, c + 1)
            scores = scores + torch.einsum("nkc,ncp->nkp", wb[..., :c], x.flatten(2)) + wb[..., c:]
        attn = (scores / self.log_temperature.exp()).softmax(-1)
        return expected_xy(attn, h, w)


class EmbodiedExtractor(BaseFeaturesExtractor):
    """Dict observation -> (N, features_dim) float features for SB3 policies.

    Args:
        observation_space: a Dict space with an RGB image under ``image_key`` (H, W, 3) or (3, H, W)
            (SB3 transposes channel-last images before the policy sees them).
        encoder: checkpoint file / run directory, ``"random"`` or ``"nature"``.
        finetune: train the trunk's weights with the policy (default: frozen). "nature" always trains.
        resize: resize images whose size differs from what the encoder was trained on
            (bilinear, inside the extractor); without it a mismatch is a ValueError at construction.
        trunk: TrunkConfig overrides for ``"random"`` (``policy_kwargs`` records a checkpoint's
            config here so a saved model can be rebuilt without the checkpoint).
        seed: initialisation seed of the ``"random"`` trunk.
        image_key: the Dict key of the image. proprio_dim: width of the MLP for all other keys; 0
            passes them on as they are (flattened, as SB3's ``CombinedExtractor`` does).
        nature_dim: output width of NatureCNN (SB3's default 512).
        features: what a trunk gives the policy: "embed", its pooled D-dim embedding; "keypoints", a
            learned :class:`SpatialSoftmax` on the map ``layer`` (2 x ``keypoints`` coordinates; trained
            with the policy even when the trunk is frozen); or "glimpses", the trunk's embedding of
            ``glimpses`` object-centred crops found without a network, weighed by how well each
            matches the goal (:mod:`embodied.rl.glimpse`: 3 + 3 x ``glimpses`` features; the trunk
            reads each object at the scale of its training views). "nature" ignores "embed" /
            "keypoints" and embeds the glimpses with "glimpses".
        layer: the trunk map for "keypoints" (default: the last conv layer).
        gate: an observation key (ReachObject's ``goal`` one-hot, say) whose value conditions the
            keypoint filters (:class:`SpatialSoftmax` ``cond``: each goal its own 1x1 filters over the
            map, in the spirit of gated attention, Chaplot et al., AAAI 2018), so the keypoints go
            where the key asks (the goal object) rather than to fixed features. Needs
            ``features="keypoints"`` or ``"glimpses"`` (then each goal learns a linear score of the
            glimpses' embeddings); ignored for "nature" but with glimpses.
        exemplar: an image observation key naming the goal by example (ReachObject ``goal_image=True``:
            ``goal_rgb``, another instance of the goal category alone on the table). The trunk maps it
            too, and :class:`embodied.rl.exemplar.ExemplarMatch` adds a keypoint at the scene cells whose
            features are most like it, and how alike (3 features; no weights but a temperature, so
            what it finds is what the trunk already knows). With ``features="glimpses"`` the exemplar's
            own glimpse is embedded and every glimpse scores its cosine with it. Needs ``features`` other
            than "embed" and an image of the main image's shape; "nature" leaves the key out but with glimpses.
        cache_mb: memory (MB) for a frozen trunk's outputs, looked up by image so PPO's update epochs
            (and SAC's replay) do not run the trunk again (:mod:`embodied.rl.feature_cache`); 0: off.
            Unused when the trunk trains, and for images on a GPU, where the trunk recomputes faster
            than the cache hashes (H200: 527 against 367 env steps/s on Reach, ``bench.py --only rl``).
        trunk_lr_scale: with ``finetune``, the trunk's parameters step at this multiple of the policy's
            learning rate (:class:`embodied.rl.optim.ScaledAdam` reads the mark; a pretrained trunk
            usually wants less than the freshly initialised heads). Ignored for a frozen trunk and "nature".

    ``features_dim`` = D of the trunk (2 x ``keypoints``, 3 + 3 x ``glimpses``, or ``nature_dim``) + 3 with
    ``exemplar`` and keypoints + ``proprio_dim`` (0: the other keys' total size) when other keys exist.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        encoder: str = "random",
        finetune: bool = False,
        resize: bool = False,
        trunk: dict[str, Any] | None = None,
        seed: int = 0,
        image_key: str = IMAGE_KEY,
        proprio_dim: int = 64,
        nature_dim: int = 512,
        features: str = "embed",
        keypoints: int = 32,
        layer: str | None = None,
        cache_mb: float = CACHE_MB,
        gate: str | None = None,
        exemplar: str | None = None,
        trunk_lr_scale: float = 1.0,
        glimpses: int = GLIMPSES,
    ) -> None:
        trunk_lr_scale = check_lr_scale(trunk_lr_scale)
        if features not in FEATURES:
            raise ValueError(f"features={features!r}; expected one of {FEATURES}")
        for name, value in (("keypoints", keypoints), ("glimpses", glimpses)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}; expected a positive integer")
        glimpsing = features == "glimpses"
        channels_first, h, w = _dict_image_layout(observation_space, image_key)
        encoder = str(encoder)
        gate = gate or None  # "" (train_rl.py --gate '') unsets a preset's gate
        if encoder == "nature" and not glimpsing:
            gate = None  # NatureCNN learns its own features with the policy; the key reaches it through the MLP
        if gate is not None:
            if features == "embed":
                raise ValueError(f"gate={gate!r} needs features='keypoints' or 'glimpses'; got features='embed'")
            if gate == image_key or gate not in observation_space.spaces:
                keys = [k for k in observation_space.spaces if k != image_key]
                raise ValueError(f"gate={gate!r}; expected a non-image observation key ({', '.join(keys) or 'none'})")
        exemplar = exemplar or None
        if exemplar is not None:
            if features == "embed" and encoder != "nature":
                need = "needs features='keypoints' or 'glimpses'; got features='embed'"
                raise ValueError(f"exemplar={exemplar!r} {need}")
            space = observation_space.spaces.get(exemplar)
            if exemplar == image_key or space is None or space.shape != observation_space[image_key].shape:
                raise ValueError(
                    f"exemplar={exemplar!r}; expected an image observation key other than {image_key!r}, "
                    f"of its shape {observation_space[image_key].shape}"
                )
        head: SpatialSoftmax | None = None  # keypoints on a trunk map; None: the trunk's embedding
        if encoder == "nature":
            # glimpses are cut at NatureCNN's resize size, whatever the env's
            net, img_dim, size = _nature(*((NATURE_RESIZE,) * 2 if glimpsing else (h, w)), resize, nature_dim)
        else:
            enc = load_encoder(encoder, seed=seed, trunk=trunk)
            size = enc.config.image_size
            if (h, w) != (size, size) and not resize and not glimpsing:  # glimpses are cut at the trunk's size
                raise ValueError(
                    f"encoder {encoder!r} takes {size}x{size} images but the env's {image_key!r} observations "
                    f"are {h}x{w}; pass resize=True (train_rl.py --resize) to resize them inside the "
                    f"extractor, or make the env at size={size} (train_rl.py --env-kwargs size={size})"
                )
            net, img_dim = enc, enc.embed_dim
            if features == "keypoints":
                layer = layer or f"conv{enc.config.depth}"
                cond_dim = spaces.flatdim(observation_space[gate]) if gate else 0
                head = SpatialSoftmax(enc.config.channels(layer), keypoints, cond_dim)  # checks the layer name
                img_dim = 2 * keypoints
        attend: GlimpseAttention | None = None
        if glimpsing:
            cond_dim = spaces.flatdim(observation_space[gate]) if gate else 0
            attend = GlimpseAttention(img_dim, glimpses, cond_dim, exemplar=exemplar is not None)
            img_dim = attend.out_dim
        others = [k for k in observation_space.spaces if k not in (image_key, exemplar)]
        extra_in = sum(spaces.flatdim(observation_space[k]) for k in others)
        match = ExemplarMatch() if exemplar and not glimpsing and encoder != "nature" else None
        img_dim += 3 if match else 0
        extra_dim = (proprio_dim or extra_in) if others else 0
        super().__init__(observation_space, img_dim + extra_dim)
        self.encoder_name, self.image_key, self.others = encoder, image_key, others
        self.channels_first, self.input_size, self.image_size = channels_first, (h, w), size
        self.finetune = bool(finetune) or encoder == "nature"
        if encoder == "nature":
            self.cnn: nn.Module = net
            self.preprocess: nn.Module | None = None
        else:
            # the trunk and its preprocessing, out of the frozen Encoder wrapper so gradients can flow
            self.preprocess = net.preprocess
            self.cnn = net.trunk
            self.cnn.requires_grad_(self.finetune)
            self.cnn.eval()
            if self.finetune:
                set_lr_scale(self.cnn.parameters(), trunk_lr_scale)
        self.cache = FeatureCache(cache_mb) if not self.finetune else None
        self.exemplar_cache = FeatureCache(min(cache_mb, EXEMPLAR_CACHE_MB)) if attend and not self.finetune else None
        self.keypoints = head
        self.glimpse = attend
        self.gate = gate
        self.exemplar = exemplar if match or attend else None  # else (nature) the key is left out
        self.match = match
        self.layer = layer if head is not None else None
        self.extra: nn.Module | None = None
        if others:
            self.extra = nn.Sequential(nn.Linear(extra_in, proprio_dim), nn.ReLU()) if proprio_dim else nn.Identity()

    def apply(self, fn: Callable[[nn.Module], None]) -> EmbodiedExtractor:
        """``fn`` on every submodule but the trunk's, which keeps its weights.

        SB3's actor-critic policies (PPO, A2C) re-initialise their features extractor with
        ``extractor.apply(init_weights)`` (orthogonal weights for every Conv2d and Linear,
        ``ortho_init=True`` by default). Reaching the trunk, that would replace a trained trunk's
        convolutions by random ones (and a "random" trunk's initialisation by another), so the
        policy would never see what the trunk learned. NatureCNN, which trains from scratch, gets it.
        The glimpse attention keeps its initialisation too (the identity map and zero goal scores: its
        first choice is the trunk's own zero-shot match).
        """
        for child in self.children():
            if child is self.glimpse or (child is self.cnn and self.preprocess is not None):
                continue
            child.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True) -> EmbodiedExtractor:
        """Trunks keep fixed batch-norm statistics (eval mode) even while their weights train."""
        super().train(mode)
        if self.preprocess is not None:
            self.cnn.eval()
        return self

    def image_features(
        self, image: torch.Tensor, gate: torch.Tensor | None = None, exemplar: torch.Tensor | None = None
    ) -> torch.Tensor:
        """SB3-preprocessed images (N, 3, H, W) or (N, H, W, 3) float in [0, 1] -> (N, D) (or (N, 2K) keypoints,
        then the exemplar match's 3).

        gate: (N, G) values of the ``gate`` key; exemplar: (N, 3, H, W) or (N, H, W, 3) images of the
        ``exemplar`` key; each required when the extractor has one.
        """
        x = _to_nchw(image, self.channels_first)
        if self.glimpse is not None:
            if self.gate is not None and gate is None:
                raise ValueError(f"this extractor is gated by {self.gate!r}; pass its values as gate=")
            if self.exemplar is not None and exemplar is None:
                raise ValueError(f"this extractor matches the exemplar {self.exemplar!r}; pass its images as exemplar=")
            rows = self._glimpses(x, self.glimpse.glimpses, self.cache)
            goal = None
            if exemplar is not None:
                goal = self._glimpses(_to_nchw(exemplar, self.channels_first), 1, self.exemplar_cache)[:, 0, PACKED:]
            return self.glimpse(rows, gate, goal)
        if self.preprocess is None:  # NatureCNN
            if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
                x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear")
            return self.cnn(x)
        out = self._trunk(x)
        if self.keypoints is None:
            return out
        if self.gate is not None and gate is None:
            raise ValueError(f"this extractor is gated by {self.gate!r}; pass its values as gate=")
        points = self.keypoints(out, gate)
        if self.match is None:
            return points
        if exemplar is None:
            raise ValueError(f"this extractor matches the exemplar {self.exemplar!r}; pass its images as exemplar=")
        return torch.cat([points, self.match(out, self._trunk(_to_nchw(exemplar, self.channels_first)))], dim=1)

    def _glimpses(self, x: torch.Tensor, n: int, cache: FeatureCache | None) -> torch.Tensor:
        """(N, 3, H, W) images -> (N, n, 3 + D) packed glimpses (:func:`embodied.rl.glimpse.pack`), from the
        cache for a frozen trunk on the CPU."""

        def compute(images: torch.Tensor) -> torch.Tensor:
            centres, valid = propose(images, n)
            crops = crop(images, centres, self.image_size)
            embedded = self.cnn(crops) if self.preprocess is None else self.trunk_output(crops)
            return pack(centres, valid, embedded)

        if cache is None or x.device.type != "cpu":
            return compute(x)
        return cache(x, compute)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache is None or x.device.type != "cpu":
            return self.trunk_output(x)
        return self.cache(x, self.trunk_output)

    def trunk_output(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float images -> the trunk's (N, D) embedding, or its (N, C, h, w) map ``layer``."""
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            if self.layer is None:
                return self.cnn(self.preprocess(x))
            return self.cnn.features(self.preprocess(x), upto=self.layer)[self.layer]

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = self.image_features(
            observations[self.image_key],
            observations.get(self.gate) if self.gate else None,
            observations.get(self.exemplar) if self.exemplar else None,
        )
        if self.extra is None:
            return feats
        extra = torch.cat([observations[k].float().flatten(1) for k in self.others], dim=1)
        return torch.cat([feats, self.extra(extra)], dim=1)


def _nature(h: int, w: int, resize: bool, dim: int) -> tuple[nn.Module, int, int]:
    """NatureCNN on (3, S, S) images: the module, its output width and S."""
    size = h
    if h != w or h < NATURE_MIN_SIZE:
        if not resize:
            raise ValueError(
                f"NatureCNN needs square images of at least {NATURE_MIN_SIZE} px; the env gives {h}x{w}. "
                f"Pass resize=True (train_rl.py --resize) to resize them to {NATURE_RESIZE} px"
            )
        size = NATURE_RESIZE
    space = spaces.Box(0, 255, shape=(3, size, size), dtype=np.uint8)
    return NatureCNN(space, features_dim=dim), dim, size


def encoder_trunk_config(encoder: str, seed: int = 0) -> dict[str, Any] | None:
    """The TrunkConfig dict of ``encoder`` (None for "nature"); raises a clear error for a bad path."""
    if encoder == "nature":
        return None
    if encoder != "random" and not Path(encoder).exists():
        raise FileNotFoundError(
            f"encoder {encoder!r} is neither {' nor '.join(BUILTIN_ENCODERS)} "
            "nor an existing checkpoint / run directory"
        )
    return load_encoder(encoder, seed=seed).config.to_dict()


def policy_kwargs(
    encoder: str = "random",
    *,
    finetune: bool = False,
    resize: bool = False,
    seed: int = 0,
    net_arch: list[int] | dict[str, list[int]] | None = None,
    proprio_dim: int = 64,
    nature_dim: int = 512,
    features: str = "embed",
    keypoints: int = 32,
    layer: str | None = None,
    cache_mb: float = CACHE_MB,
    gate: str | None = None,
    exemplar: str | None = None,
    trunk_lr_scale: float = 1.0,
    glimpses: int = GLIMPSES,
) -> dict[str, Any]:
    """``policy_kwargs`` for SB3 ``MultiInputPolicy`` (PPO, SAC, ...) with an ``EmbodiedExtractor``.

    The trunk's config is recorded in the kwargs so :func:`embodied.rl.models.load_model` can rebuild a saved
    policy without the original checkpoint. ``net_arch`` defaults to SB3's own (64, 64 / 256, 256).
    ``features`` / ``keypoints`` / ``layer`` / ``cache_mb`` / ``gate`` / ``exemplar`` / ``trunk_lr_scale`` /
    ``glimpses``: see
    :class:`EmbodiedExtractor`. A fine-tuned trunk with ``trunk_lr_scale`` != 1 gets ``optimizer_class``
    :class:`~embodied.rl.optim.ScaledAdam` (for PPO add ``optimizer_kwargs={"eps": 1e-5}``, what SB3 gives its
    Adam there; :func:`embodied.rl.models.config_policy_kwargs` does).
    """
    encoder = str(encoder)
    kwargs: dict[str, Any] = {
        "encoder": encoder,
        "finetune": bool(finetune),
        "resize": bool(resize),
        "seed": int(seed),
        "proprio_dim": int(proprio_dim),
        "nature_dim": int(nature_dim),
        "features": features,
        "keypoints": int(keypoints),
        "layer": layer,
        "cache_mb": cache_mb,
        "gate": gate,
        "exemplar": exemplar,
        "trunk_lr_scale": check_lr_scale(trunk_lr_scale),
        "glimpses": int(glimpses),
    }
    config = encoder_trunk_config(encoder, seed=seed)
    if config is not None:
        kwargs["trunk"] = config
    out: dict[str, Any] = {"features_extractor_class": EmbodiedExtractor, "features_extractor_kwargs": kwargs}
    if net_arch is not None:
        out["net_arch"] = net_arch
    if finetune and encoder != "nature" and kwargs["trunk_lr_scale"] != 1.0:
        out["optimizer_class"] = ScaledAdam
    return out


__all__ = [
    "BUILTIN_ENCODERS",
    "FEATURES",
    "EmbodiedExtractor",
    "SpatialSoftmax",
    "encoder_trunk_config",
    "policy_kwargs",
]
