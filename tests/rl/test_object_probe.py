"""The ReachObject object probe: mask pooling and crops against brute force, scenes, the CLI end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from embodied.rl.object_probe import (
    exemplar_choices,
    follow_returns,
    glimpse_pointing,
    goal_pointing,
    object_probe,
    pixel_crops,
    pool_masks,
    render_scenes,
    trunk_crop_features,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "probe_objects.py"


def test_pool_masks_matches_a_brute_force_area_weighted_mean():
    torch.manual_seed(0)
    fmap = torch.randn(2, 3, 4, 4)
    masks = torch.rand(2, 2, 16, 16) > 0.7
    masks[1, 1] = False  # an object that covers nothing
    got = pool_masks(fmap, masks)
    for s in range(2):
        for n in range(2):
            total, acc = 0.0, torch.zeros(3)
            for i in range(4):
                for j in range(4):
                    frac = masks[s, n, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].float().mean()
                    acc += frac * fmap[s, :, i, j]
                    total += float(frac)
            want = acc / total if total > 0 else torch.zeros(3)
            torch.testing.assert_close(got[s, n], want, rtol=1e-5, atol=1e-6)


def test_pixel_crops_centre_on_each_mask():
    images = torch.arange(1 * 3 * 20 * 20, dtype=torch.float32).view(1, 3, 20, 20)
    masks = torch.zeros(1, 1, 20, 20, dtype=torch.bool)
    masks[0, 0, 9:12, 4:7] = True  # centre (10, 5)
    crop = pixel_crops(images, masks, radius=3)
    assert crop.shape == (1, 1, 3 * 6 * 6)
    torch.testing.assert_close(crop[0, 0], images[0, :, 7:13, 2:8].flatten())


def test_crop_features_are_the_encoders_embedding_of_each_resized_crop():
    from embodied.encoder import load_encoder

    torch.manual_seed(0)
    crops = torch.rand(2, 3, 3, 16, 16)
    got = trunk_crop_features("random", crops, seed=3)
    enc = load_encoder("random", seed=3)
    assert got.shape == (2, 3, enc.embed_dim)
    for s in range(2):
        for n in range(3):
            big = torch.nn.functional.interpolate(crops[s, n][None], size=(64, 64), mode="bilinear")
            with torch.no_grad():
                torch.testing.assert_close(got[s, n], enc(big)[0], rtol=1e-4, atol=1e-5)


def test_render_scenes_gives_one_mask_and_label_per_object():
    scenes = render_scenes(3, "heldout", seed=5)
    assert scenes.images.shape == (3, 3, 64, 64) and scenes.masks.shape == (3, 3, 64, 64)
    assert scenes.masks.flatten(2).any(-1).all()  # every object is in view
    assert not (scenes.masks.sum(1) > 1).any()  # no pixel belongs to two objects
    assert (
        scenes.categories.shape == (3, 3)
        and (np.sort(scenes.categories, 1)[:, 1:] != np.sort(scenes.categories, 1)[:, :-1]).all()
    )
    again = render_scenes(3, "heldout", seed=5)
    assert torch.equal(again.images, scenes.images) and (again.instances == scenes.instances).all()


def test_object_probe_end_to_end(tmp_path):
    result = object_probe({"random": "random", "nature": "nature"}, n_train=16, n_test=8, goal_steps=3)
    assert set(result["category"]["accuracy"]) == {"pixels", "random"}  # NatureCNN has no frozen map
    assert set(result["category_crop"]["accuracy"]) == {"pixels", "random"}
    assert result["category_crop"]["accuracy"]["pixels"] == result["category"]["accuracy"]["pixels"]
    assert set(result["goal_pointing"]["accuracy"]) == {"random", "nature"}
    assert set(result["goal_pointing"]["minus_random"]) == {"nature"}
    assert set(result["glimpse_pointing"]["accuracy"]) == {"random", "nature"}
    assert (
        set(result["exemplar_matching"]["accuracy"])
        == set(result["matching_return"]["accuracy"])
        == {"pixels", "random"}
    )
    for name in ("category", "category_crop", "goal_pointing", "glimpse_pointing", "exemplar_matching"):
        for iv in result[name]["accuracy"].values():
            assert 0.0 <= iv.lo <= iv.value <= iv.hi <= 1.0
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--encoders", "random", "--train-scenes", "8", "--test-scenes", "4",
         "--goal-steps", "2", "--category-colours", "--env-kwargs", "n_objects=2", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "probe.json").read_text())
    chance = {"category": 0.25, "category_crop": 0.25, "goal_pointing": 1 / 2, "exemplar_matching": 1 / 2}
    chance["glimpse_pointing"] = 1 / 2
    assert out["chance"] == pytest.approx(chance)
    assert out["env_kwargs"] == {"n_objects": 2, "category_colours": True}
    assert set(out["goal_pointing"]["accuracy"]) == {"random"}
    assert (tmp_path / "probe.png").stat().st_size > 0 and "| random |" in (tmp_path / "probe.md").read_text()


def test_goal_pointing_learns_the_colour_variant():
    """With categories in colour, the pathway fitted with labels points at the goal far above chance."""
    kw = {"category_colours": True}
    train, test = render_scenes(200, "train", 0, kw), render_scenes(60, "heldout", 10**6, kw)
    assert goal_pointing("random", train, test, steps=600).mean() > 0.5  # chance 1/3; measured 0.63


def test_glimpse_pointing_learns_the_colour_variant():
    """The glimpse pathway fitted with labels attends to the goal object far above chance when colour names it."""
    kw = {"category_colours": True}
    train, test = render_scenes(200, "train", 0, kw), render_scenes(60, "heldout", 10**6, kw)
    assert glimpse_pointing("random", train, test, steps=300).mean() > 0.6  # chance 1/3


def test_exemplar_matching_by_colour_is_perfect_on_the_colour_variant():
    """Objects in their category's colour: the exemplar's mean colour names the goal object in every scene."""
    scenes = render_scenes(30, "heldout", 10**6, {"category_colours": True})
    assert (exemplar_choices("pixels", scenes) == scenes.goal_slot).all()


def test_following_the_goal_succeeds_and_a_wrong_choice_pays_the_penalty():
    scenes = render_scenes(6, "heldout", 10**6)
    right = follow_returns(scenes.goal_slot, "heldout", 10**6)
    wrong = follow_returns((scenes.goal_slot + 1) % 3, "heldout", 10**6)
    assert (right > 5.0).all()  # the bonus plus the progress made
    assert (wrong < 0.0).all() and (wrong > -5.0 - 10.0 * 0.5).all()  # the penalty, whatever progress was made


def test_probe_cli_refuses_a_missing_checkpoint_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--encoders", f"mine={tmp_path / 'nope'}", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("pybullet build time")]
    assert len(errors) == 1 and errors[0].startswith("error: --encoders = mine=") and "nope" in errors[0]


def test_object_probe_at_twice_the_trunks_size():
    # the keypoint pathway resizes the view to the trunk's input; crops keep their share of the view
    result = object_probe({"random": "random"}, n_train=8, n_test=4, goal_steps=2, env_kwargs={"size": 128})
    for name in ("category", "category_crop", "goal_pointing", "glimpse_pointing", "exemplar_matching"):
        assert set(result[name]["accuracy"]) >= {"random"}
