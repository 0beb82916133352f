"""Matching an exemplar's trunk features against a scene's: scores against hand-built maps and a loop,
the keypoint, the extractor's exemplar pathway, clear errors."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from embodied.rl import EmbodiedExtractor, policy_kwargs
from embodied.rl.exemplar import NORM_FLOOR, ExemplarMatch, match_scores


def hand_built(h=5, w=7):
    """Table features t everywhere; the exemplar's object v at the centre; the scene holds v at (1, 5),
    an unlike object u (orthogonal to v) at (3, 1)."""
    t, v, u = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 3.0])
    exemplar = t.view(1, 3, 1, 1).repeat(1, 1, h, w)
    exemplar[0, :, h // 2, w // 2] += v
    scene = t.view(1, 3, 1, 1).repeat(1, 1, h, w)
    scene[0, :, 1, 5] += v
    scene[0, :, 3, 1] += u
    return scene, exemplar


def test_scores_find_the_like_object_and_ignore_table_and_unlike():
    scene, exemplar = hand_built()
    s = match_scores(scene, exemplar)[0]
    assert s.shape == (5, 7)
    assert s[1, 5] == pytest.approx(1.0) and s[3, 1] == pytest.approx(0.0, abs=1e-6)
    s[1, 5] = s[3, 1] = 0.0
    assert s.abs().max() < 1e-6  # table cells: nothing left after taking the table out


def test_scores_match_a_brute_force_loop():
    torch.manual_seed(0)
    scene, exemplar = torch.randn(2, 4, 4, 5), torch.randn(2, 4, 4, 5)
    got = match_scores(scene, exemplar)
    for n in range(2):
        ring = [exemplar[n, :, i, j] for i in range(4) for j in range(5) if i in (0, 3) or j in (0, 4)]
        table = torch.stack(ring).mean(0)
        devs = [exemplar[n, :, i, j] - table for i in range(4) for j in range(5)]
        weights = [d.norm() for d in devs]
        proto = sum(wt * d for wt, d in zip(weights, devs, strict=True)) / sum(weights)
        for i in range(4):
            for j in range(5):
                rest = scene[n, :, i, j] - table
                want = rest @ proto / (max(rest.norm(), NORM_FLOOR * proto.norm()) * proto.norm())
                torch.testing.assert_close(got[n, i, j], want, rtol=1e-5, atol=1e-6)
    assert (got.abs() <= 1.0 + 1e-6).all()


def test_match_keypoint_points_at_the_like_cell():
    scene, exemplar = hand_built()
    match = ExemplarMatch()
    with torch.no_grad():
        match.log_temperature.fill_(np.log(1e-3))
    out = match(scene, exemplar)
    # column 5 of 7 -> x = 2/3; row 1 of 5 -> y = -0.5; best score 1
    torch.testing.assert_close(out, torch.tensor([[2 / 3, -0.5, 1.0]]), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "shapes, match",
    [(((1, 3, 5, 5), (1, 3, 5, 4)), "expected two"), (((1, 3, 2, 8), (1, 3, 2, 8)), "expected at least 3x3")],
)
def test_bad_maps_are_one_line_errors(shapes, match):
    with pytest.raises(ValueError, match=match) as e:
        match_scores(torch.zeros(shapes[0]), torch.zeros(shapes[1]))
    assert "\n" not in str(e.value)


def exemplar_space():
    return spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (3, 64, 64), np.uint8),
            "proprio": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "goal": spaces.Box(0.0, 1.0, (4,), np.float32),
            "goal_rgb": spaces.Box(0, 255, (3, 64, 64), np.uint8),
        }
    )


def test_extractor_adds_the_match_and_keeps_the_exemplar_out_of_the_mlp(ckpt):
    kw = policy_kwargs(ckpt, features="keypoints", keypoints=4, gate="goal", exemplar="goal_rgb")
    ext = EmbodiedExtractor(exemplar_space(), **kw["features_extractor_kwargs"])
    assert ext.features_dim == 2 * 4 + 3 + 64 and sorted(ext.others) == ["goal", "proprio"]
    rgb, ex = torch.rand(2, 3, 64, 64), torch.rand(1, 3, 64, 64).repeat(2, 1, 1, 1)
    obs = {"rgb": rgb, "proprio": torch.zeros(2, 2), "goal": torch.eye(4)[:2], "goal_rgb": ex}
    out = ext(obs)
    assert out.shape == (2, ext.features_dim) and torch.isfinite(out).all()
    assert ext.cache.misses == 4 and ext.cache.hits == 0
    ext({**obs, "rgb": torch.rand(2, 3, 64, 64)})  # new scenes, the episode's exemplar again: looked up
    assert ext.cache.misses == 6 and ext.cache.hits == 2
    direct = ext.match(ext.trunk_output(rgb), ext.trunk_output(ex))
    torch.testing.assert_close(out[:, 8:11], direct)
    out[:, 8:10].sum().backward()
    assert ext.match.log_temperature.grad is not None  # the temperature learns with the policy
    with pytest.raises(ValueError, match="matches the exemplar 'goal_rgb'; pass its images as exemplar="):
        ext.image_features(rgb, torch.eye(4)[:2])


def test_bad_exemplar_keys_are_clear_errors(ckpt):
    kw = policy_kwargs(ckpt, features="keypoints", exemplar="goal_rgb")["features_extractor_kwargs"]
    for bad, match in (
        ({"exemplar": "goal"}, r"exemplar='goal'; expected an image observation key other than 'rgb'"),
        ({"exemplar": "rgb"}, r"exemplar='rgb'; expected an image observation key other than 'rgb'"),
        ({"features": "embed"}, "exemplar='goal_rgb' needs features='keypoints' or 'glimpses'; got features='embed'"),
    ):
        with pytest.raises(ValueError, match=match):
            EmbodiedExtractor(exemplar_space(), **{**kw, **bad})
    assert EmbodiedExtractor(exemplar_space(), **{**kw, "exemplar": ""}).match is None
    nature = EmbodiedExtractor(
        exemplar_space(), **policy_kwargs("nature", exemplar="goal_rgb")["features_extractor_kwargs"]
    )
    assert nature.match is None and "goal_rgb" not in nature.others  # NatureCNN leaves the exemplar out
