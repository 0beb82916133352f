"""Trunk shapes and named feature maps, preprocessing, heads."""

from __future__ import annotations

import pytest
import torch

from embodied.nn import EmbeddingHead, GraspHead, Preprocess, PushHead, Trunk, TrunkConfig
from embodied.nn.augment import simclr_augment


@pytest.mark.parametrize("size", [32, 64])
def test_trunk_exposes_named_maps_and_embedding(size):
    cfg = TrunkConfig(width=4, depth=5, embed_dim=12, image_size=size)
    feats = Trunk(cfg).features(torch.randn(2, 3, size, size))
    assert list(feats) == ["conv1", "conv2", "conv3", "conv4", "conv5", "embed"]
    assert feats["conv1"].shape == (2, 4, size // 4, size // 4)
    assert feats["conv3"].shape == (2, cfg.channels("conv3"), size // 8, size // 8)
    assert feats["embed"].shape == (2, 12)
    assert list(Trunk(cfg).features(torch.randn(2, 3, size, size), upto="conv3")) == ["conv1", "conv2", "conv3"]


@pytest.mark.parametrize("depth", [3, 7])
def test_trunk_depth_and_width_come_from_the_config(depth):
    cfg = TrunkConfig(width=2, depth=depth, embed_dim=5, norm="group")
    assert Trunk(cfg)(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    assert f"conv{depth}" in Trunk(cfg).layers
    with pytest.raises(ValueError, match="no layer"):
        cfg.channels(f"conv{depth + 1}")


def test_bad_trunk_config_is_refused():
    with pytest.raises(ValueError, match="depth"):
        TrunkConfig(depth=2)
    with pytest.raises(ValueError, match="trunk.widht = 3; expected a trunk field"):
        TrunkConfig.from_dict({"widht": 3})


def test_preprocess_uint8_and_float_agree_and_resize():
    pre = Preprocess(32)
    u8 = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    f = u8.permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(pre(u8), pre(f))
    assert pre(u8).min() >= -1 and pre(u8).max() <= 1
    assert pre(torch.rand(2, 3, 48, 48)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="uint8"):
        pre(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_heads_shapes():
    cfg = TrunkConfig(width=4, embed_dim=8)
    trunk = Trunk(cfg)
    f = trunk.features(torch.randn(3, 3, 64, 64))
    assert GraspHead(cfg, hidden=16)(f).shape == (3, 18)
    assert PushHead(cfg, 5, hidden=16)(f, f).shape == (3, 5)
    assert EmbeddingHead(8, 2, hidden=16)(f["embed"]).shape == (3, 2)


def test_simclr_augment_keeps_shape_and_range():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    y = simclr_augment(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.allclose(x, y)
