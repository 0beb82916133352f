"""The features extractor for every encoder kind: sizes, keypoints, frozen trunks, clear size errors."""

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from embodied.rl import EmbodiedExtractor, SpatialSoftmax, policy_kwargs


@pytest.mark.parametrize("kind", ["random", "nature", "checkpoint"])
@pytest.mark.parametrize("channels_first", [True, False])
def test_extractor_gives_declared_feature_size(kind, channels_first, ckpt, dict_space):
    encoder = ckpt if kind == "checkpoint" else kind
    kwargs = policy_kwargs(encoder)["features_extractor_kwargs"]
    ext = EmbodiedExtractor(dict_space(channels_first=channels_first), **kwargs)
    expected = {"random": 128, "nature": 512, "checkpoint": 32}[kind] + kwargs["proprio_dim"]
    assert ext.features_dim == expected
    rgb = torch.rand((5, 3, 64, 64) if channels_first else (5, 64, 64, 3))
    out = ext({"rgb": rgb, "proprio": torch.zeros(5, 2)})
    assert out.shape == (5, expected) and torch.isfinite(out).all()


def test_extractor_without_other_keys(ckpt):
    import numpy as np
    from gymnasium import spaces

    space = spaces.Dict({"rgb": spaces.Box(0, 255, (3, 64, 64), np.uint8)})
    ext = EmbodiedExtractor(space, encoder=ckpt)
    assert ext.features_dim == 32
    assert ext({"rgb": torch.rand(2, 3, 64, 64)}).shape == (2, 32)


def test_spatial_softmax_finds_the_hot_cell():
    """One sharp peak per map: the keypoint is that cell's coordinate on the [-1, 1] grid."""
    head = SpatialSoftmax(2, keypoints=2)
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        head.proj.bias.zero_()
    fmap = torch.zeros(1, 2, 5, 9)
    fmap[0, 0, 1, 6] = 50.0  # row 1 of 5 -> y = -0.5; column 6 of 9 -> x = 0.5
    fmap[0, 1, 4, 0] = 50.0  # y = 1, x = -1
    torch.testing.assert_close(head(fmap), torch.tensor([[0.5, -1.0, -0.5, 1.0]]), atol=1e-4, rtol=0)
    flat = head(torch.zeros(1, 2, 5, 9))  # no evidence anywhere: the centre
    torch.testing.assert_close(flat, torch.zeros(1, 4), atol=1e-6, rtol=0)


def test_conditioned_keypoints_use_each_goals_own_filters():
    """A one-hot cond adds its goal's filters to the shared ones: each goal finds its own hot cell."""
    head = SpatialSoftmax(2, keypoints=1, cond_dim=2)
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.zero_()
        # cond weight rows: (keypoint 0) x (channel 0, channel 1, bias); goal g looks at channel g
        head.cond.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    fmap = torch.zeros(1, 2, 5, 9)
    fmap[0, 0, 1, 6] = 50.0  # y = -0.5, x = 0.5
    fmap[0, 1, 4, 0] = 50.0  # y = 1, x = -1
    out = head(fmap.repeat(2, 1, 1, 1), torch.eye(2))
    torch.testing.assert_close(out, torch.tensor([[0.5, -0.5], [-1.0, 1.0]]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="these keypoints are conditioned; pass cond="):
        head(fmap)


@pytest.mark.parametrize("finetune", [False, True])
def test_keypoint_features_train_even_on_a_frozen_trunk(finetune, ckpt, dict_space):
    kwargs = policy_kwargs(ckpt, features="keypoints", keypoints=6, finetune=finetune)["features_extractor_kwargs"]
    ext = EmbodiedExtractor(dict_space(), **kwargs)
    assert ext.features_dim == 12 + 64
    out = ext({"rgb": torch.rand(3, 3, 64, 64), "proprio": torch.zeros(3, 2)})
    assert out.shape == (3, 76) and out[:, :12].abs().max() <= 1.0
    out.square().sum().backward()
    assert ext.keypoints.proj.weight.grad.abs().sum() > 0  # the head learns whatever the trunk does
    assert all((p.grad is not None) == finetune for p in ext.cnn.layers.parameters())  # fc is not used
    with pytest.raises(ValueError, match="trunk has no layer 'conv9'"):
        EmbodiedExtractor(dict_space(), encoder=ckpt, features="keypoints", layer="conv9")
    with pytest.raises(ValueError, match="features='pooled'; expected one of"):
        EmbodiedExtractor(dict_space(), encoder=ckpt, features="pooled")
    with pytest.raises(ValueError, match="keypoints=0; expected a positive integer"):
        EmbodiedExtractor(dict_space(), encoder=ckpt, features="keypoints", keypoints=0)


def test_image_size_mismatch_is_a_clear_error(tmp_path, fake_checkpoint, dict_space):
    small = str(fake_checkpoint(tmp_path / "c32.pt", image_size=32))
    with pytest.raises(ValueError, match=r"takes 32x32 images.*are 64x64.*resize=True.*size=32"):
        EmbodiedExtractor(dict_space(64), encoder=small)
    ext = EmbodiedExtractor(dict_space(64), encoder=small, resize=True)
    assert ext({"rgb": torch.rand(2, 3, 64, 64), "proprio": torch.zeros(2, 2)}).shape == (2, 32 + 64)
    with pytest.raises(ValueError, match=r"NatureCNN needs square images of at least 36 px.*resize=True"):
        EmbodiedExtractor(dict_space(32), encoder="nature")
    ext = EmbodiedExtractor(dict_space(32), encoder="nature", resize=True)
    assert ext({"rgb": torch.rand(2, 3, 32, 32), "proprio": torch.zeros(2, 2)}).shape == (2, 512 + 64)
    with pytest.raises(FileNotFoundError, match="neither random nor nature"):
        policy_kwargs(str(tmp_path / "missing.pt"))


def test_mismatch_reported_before_sb3_builds_anything(tmp_path, fake_checkpoint):
    """Through PPO itself, the message is ours, not a shape error from inside SB3."""
    small = str(fake_checkpoint(tmp_path / "c32.pt", image_size=32))
    venv = make_vec_env("embodied/Reach-v0", n_envs=1, seed=0)
    with pytest.raises(ValueError, match="train_rl.py --resize"):
        PPO("MultiInputPolicy", venv, policy_kwargs=policy_kwargs(small), device="cpu")
    venv.close()


@pytest.mark.parametrize("finetune", [False, True])
def test_trunk_frozen_unless_finetuned(finetune, ckpt, ppo):
    model, venv = ppo(ckpt, finetune=finetune)
    trunk = model.policy.features_extractor.cnn
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    model.learn(128)
    after = trunk.state_dict()
    changed = any(not torch.equal(before[k], after[k]) for k in before)
    assert changed == finetune
    # batch-norm statistics stay fixed either way
    assert all(torch.equal(before[k], after[k]) for k in before if "running" in k)
    venv.close()


def test_gate_makes_the_keypoints_follow_the_goal(ckpt):
    """Gated attention: the same image under two goals gives two keypoint sets, and the gate learns."""
    import numpy as np
    from gymnasium import spaces

    space = spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (3, 64, 64), np.uint8),
            "proprio": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "goal": spaces.Box(0.0, 1.0, (4,), np.float32),
        }
    )
    kw = policy_kwargs(ckpt, features="keypoints", keypoints=4, gate="goal")["features_extractor_kwargs"]
    ext = EmbodiedExtractor(space, **kw)
    rgb = torch.rand(1, 3, 64, 64).repeat(2, 1, 1, 1)
    out = ext({"rgb": rgb, "proprio": torch.zeros(2, 2), "goal": torch.eye(4)[:2]})
    assert not torch.allclose(out[0, :8], out[1, :8])  # the keypoints moved with the goal
    out[:, :8].square().sum().backward()
    grad = ext.keypoints.cond.weight.grad
    assert grad[:, :2].abs().sum() > 0 and grad[:, 2:].abs().sum() == 0  # only the goals in the batch learn
    with pytest.raises(ValueError, match="gated by 'goal'; pass its values as gate="):
        ext.image_features(rgb)
    for bad, match in (
        ({"gate": "rgb"}, r"gate='rgb'; expected a non-image observation key \(goal, proprio\)"),
        ({"gate": "tool"}, r"gate='tool'; expected a non-image observation key"),
        ({"features": "embed"}, "gate='goal' needs features='keypoints' or 'glimpses'; got features='embed'"),
    ):
        with pytest.raises(ValueError, match=match):
            EmbodiedExtractor(space, **{**kw, **bad})
    assert EmbodiedExtractor(space, **{**kw, "gate": ""}).keypoints.cond is None  # --gate '' unsets a preset's gate
    assert EmbodiedExtractor(space, **policy_kwargs("nature", gate="goal")["features_extractor_kwargs"]).gate is None


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sb3_policies_keep_the_trunks_weights(algo, ckpt):
    """PPO's orthogonal initialisation of its features extractor must not reach the trunk: the policy
    acts through the checkpoint's weights (a "random" trunk keeps its own); NatureCNN is still initialised."""
    from stable_baselines3 import SAC

    from embodied.encoder import load_encoder

    venv = make_vec_env("embodied/Reach-v0", n_envs=1, seed=0)
    cls = {"ppo": PPO, "sac": SAC}[algo]
    for encoder in (ckpt, "random"):
        model = cls("MultiInputPolicy", venv, seed=0, device="cpu", policy_kwargs=policy_kwargs(encoder))
        want = load_encoder(encoder, seed=0).trunk.state_dict()
        for ext in {id(m): m for m in model.policy.modules() if isinstance(m, EmbodiedExtractor)}.values():
            got = ext.cnn.state_dict()
            assert all(torch.equal(got[k], want[k]) for k in want), encoder
    nature = PPO("MultiInputPolicy", venv, seed=0, device="cpu", policy_kwargs=policy_kwargs("nature"))
    conv = nature.policy.features_extractor.cnn.cnn[0].weight.detach().flatten(1)
    gram = conv @ conv.T  # orthogonal rows, scaled by the gain sqrt(2)
    torch.testing.assert_close(gram, 2.0 * torch.eye(len(gram)), atol=1e-4, rtol=0)
    venv.close()


def test_proprio_dim_zero_passes_the_other_keys_on_as_they_are(ckpt, dict_space):
    kwargs = policy_kwargs(ckpt, features="keypoints", keypoints=3, proprio_dim=0)["features_extractor_kwargs"]
    ext = EmbodiedExtractor(dict_space(), **kwargs)
    assert ext.features_dim == 2 * 3 + 2
    proprio = torch.tensor([[0.25, -0.5], [1.0, 0.0]])
    out = ext({"rgb": torch.rand(2, 3, 64, 64), "proprio": proprio})
    torch.testing.assert_close(out[:, 6:], proprio)
