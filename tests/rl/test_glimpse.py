"""Object-centred glimpses: proposals against known blobs and ReachObject's masks, crops against slicing,
the attention against hand-computed weights, the extractor's glimpse pathway under SB3, clear errors."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from embodied.rl import EmbodiedExtractor, policy_kwargs
from embodied.rl.glimpse import GlimpseAttention, crop, pack, propose

TABLE = torch.tensor([0.62, 0.52, 0.42])


def blobs_image(squares, size=64):
    """A table-coloured (1, 3, size, size) image with flat squares (row, col, side, rgb) drawn on it."""
    img = TABLE.view(1, 3, 1, 1).repeat(1, 1, size, size)
    for r, c, side, rgb in squares:
        img[0, :, r : r + side, c : c + side] = torch.tensor(rgb).view(3, 1, 1)
    return img


def to_px(centres, size=64):
    return (centres + 1) * size / 2 - 0.5  # [-1, 1] (align_corners=False) -> pixel index coordinates


def test_proposals_find_each_blob_biggest_first_and_mark_the_rest_invalid():
    squares = [(40, 8, 6, (0.1, 0.2, 0.9)), (10, 44, 12, (0.9, 0.9, 0.1)), (20, 20, 9, (0.62, 0.3, 0.42))]
    centres, valid = propose(blobs_image(squares), n=5)
    assert valid.tolist() == [[True, True, True, False, False]]
    want = [(44 + 5.5, 10 + 5.5), (20 + 4, 20 + 4), (8 + 2.5, 40 + 2.5)]  # (x, y) centres, biggest first
    torch.testing.assert_close(to_px(centres[0, :3]), torch.tensor(want), atol=1e-4, rtol=0)
    assert centres[0, 3:].abs().max() == 0
    assert not propose(blobs_image([]), n=2)[1].any()  # an empty table: no glimpse


def test_proposals_cover_every_reach_object_object():
    """Every object of 40 ReachObject scenes (both splits) has a valid glimpse within 2 px of its mask's centre."""
    from embodied.rl.object_probe import render_scenes

    for split, seed in (("train", 0), ("heldout", 10**6)):
        scenes = render_scenes(20, split, seed)
        centres, valid = propose(scenes.images, n=4)
        assert (valid.sum(1) >= 3).all()  # 3 objects (and the fingertip, unless an object's square clipped it)
        ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        m = scenes.masks.float()
        area = m.sum((-1, -2))
        truth = torch.stack([(m * xs).sum((-1, -2)) / area, (m * ys).sum((-1, -2)) / area], dim=-1)  # (S, 3, 2)
        dist = (truth[:, :, None] - to_px(centres)[:, None]).norm(dim=-1).amin(-1)
        assert dist.max() < 2.0, dist.max()


def test_crop_is_the_square_round_the_centre():
    img = torch.rand(2, 3, 64, 64)
    centres = torch.tensor([[[0.0, 0.0], [-0.5, 0.25]], [[0.25, -0.75], [0.0, 0.0]]])  # pixel boundaries
    out = crop(img, centres, size=16)
    assert out.shape == (4, 3, 16, 16)
    for i in range(2):
        for k in range(2):
            c, r = (int(v) for v in ((centres[i, k] + 1) * 32))  # the boundary's pixel index
            torch.testing.assert_close(out[2 * i + k], img[i, :, r - 8 : r + 8, c - 8 : c + 8], atol=1e-5, rtol=0)
    assert crop(img, centres, size=64).shape == (4, 3, 64, 64)


def test_attention_weights_are_the_softmax_of_exemplar_cosines_over_valid_glimpses():
    att = GlimpseAttention(dim=3, glimpses=3, exemplar=True)
    emb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [5.0, 5.0, 0.0]])
    centres = torch.tensor([[[0.5, -0.5], [-0.25, 0.75], [0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    exemplar = torch.tensor([[3.0, 1.0, 0.0]])
    out = att(pack(centres, valid, emb), exemplar=exemplar)
    t = 0.05
    cos = [3 / math.sqrt(10), 1 / math.sqrt(10)]
    w0 = 1 / (1 + math.exp((cos[1] - cos[0]) / t))
    want = [0.5 * w0 - 0.25 * (1 - w0), -0.5 * w0 + 0.75 * (1 - w0), w0, 0.5, -0.5, w0, -0.25, 0.75, 1 - w0, 0, 0, 0]
    torch.testing.assert_close(out[0], torch.tensor(want), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="pass its embedding as exemplar="):
        att(pack(centres, valid, emb))


def test_goal_scores_start_at_zero_and_learn_per_goal():
    att = GlimpseAttention(dim=4, glimpses=2, cond_dim=3)
    rows = pack(torch.zeros(2, 2, 2), torch.ones(2, 2, dtype=torch.bool), torch.randn(4, 4))
    goal = torch.eye(3)[:2]
    out = att(rows, cond=goal)
    torch.testing.assert_close(out[:, 2], torch.full((2,), 0.5))  # no goal score yet: even weights
    (out[:, 3:] * torch.randn_like(out[:, 3:])).sum().backward()
    grad = att.cond.weight.grad
    assert grad[:, :2].abs().sum() > 0 and grad[:, 2].abs().sum() == 0  # only the goals in the batch learn
    with pytest.raises(ValueError, match="pass its values as cond="):
        att(rows)


def reach_object_space():
    img = spaces.Box(0, 255, (3, 64, 64), np.uint8)
    return spaces.Dict(
        {
            "rgb": img,
            "goal_rgb": img,
            "proprio": spaces.Box(-1.0, 1.0, (4,), np.float32),
            "goal": spaces.Box(0.0, 1.0, (4,), np.float32),
        }
    )


@pytest.mark.parametrize("encoder", ["ckpt", "random", "nature"])
def test_extractor_glimpse_pathway(encoder, ckpt):
    """Declared size, the exemplar and goal reach the attention, the cache changes nothing, and a frozen
    trunk's glimpses carry no gradient while NatureCNN's do."""
    name = ckpt if encoder == "ckpt" else encoder
    kw = policy_kwargs(name, features="glimpses", glimpses=3, gate="goal", exemplar="goal_rgb")
    ext = EmbodiedExtractor(reach_object_space(), **kw["features_extractor_kwargs"])
    assert ext.features_dim == 3 + 3 * 3 + 64 and ext.exemplar == "goal_rgb" and ext.gate == "goal"
    blue, yellow = (0.1, 0.2, 0.9), (0.9, 0.9, 0.1)
    squares = [(40, 8, 6, blue), (10, 44, 12, yellow), (20, 20, 9, (0.9, 0.3, 0.4))]
    obs = {
        "rgb": blobs_image(squares).repeat(2, 1, 1, 1),
        "goal_rgb": torch.cat([blobs_image([(28, 28, 8, yellow)]), blobs_image([(26, 26, 12, blue)])]),
        "proprio": torch.zeros(2, 4),
        "goal": torch.eye(4)[:2],
    }
    out = ext(obs)
    assert out.shape == (2, ext.features_dim) and torch.isfinite(out).all()
    assert not torch.allclose(out[0, :12], out[1, :12])  # two exemplars, two choices
    torch.testing.assert_close(ext(obs), out)  # the second call reads the cache
    if encoder != "nature":
        assert len(ext.cache) == 1 and len(ext.exemplar_cache) == 2
    else:
        assert ext.cache is None
    with pytest.raises(ValueError, match="pass its images as exemplar="):
        ext.image_features(obs["rgb"], obs["goal"])


def test_ppo_keeps_the_glimpse_attentions_initialisation(ckpt):
    """SB3's orthogonal initialisation skips the attention: its first choice is the trunk's zero-shot match."""
    venv = make_vec_env("embodied/ReachObject-v0", n_envs=1, seed=0, env_kwargs={"goal_image": True})
    kw = policy_kwargs(ckpt, features="glimpses", gate="goal", exemplar="goal_rgb")
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=32, seed=0, device="cpu", policy_kwargs=kw)
    att = model.policy.features_extractor.glimpse
    torch.testing.assert_close(att.proj.weight.detach(), torch.eye(att.proj.weight.shape[0]))
    assert att.cond.weight.abs().sum() == 0
    venv.close()


def test_bad_glimpse_settings_are_clear_errors(ckpt):
    space = reach_object_space()
    kw = policy_kwargs(ckpt, features="glimpses")["features_extractor_kwargs"]
    with pytest.raises(ValueError, match="glimpses=0; expected a positive integer"):
        EmbodiedExtractor(space, **{**kw, "glimpses": 0})
    with pytest.raises(ValueError, match="gate='goal' needs features='keypoints' or 'glimpses'"):
        EmbodiedExtractor(space, **{**kw, "features": "embed", "gate": "goal"})
