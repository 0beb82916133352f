"""The frozen-trunk feature cache: looks up what it has seen, computes the rest, stays within budget."""

import pytest
import torch

from embodied.rl import EmbodiedExtractor, policy_kwargs
from embodied.rl.feature_cache import FeatureCache, image_keys


class Counting:
    """A stand-in trunk that doubles its input and counts the images it was given."""

    def __init__(self) -> None:
        self.images = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return 2 * x.flatten(1)[:, :4]


def test_cache_computes_each_image_once_and_returns_the_same_outputs():
    torch.manual_seed(0)
    images = torch.rand(6, 3, 8, 8)
    trunk, cache = Counting(), FeatureCache(1)
    first = cache(images[:4], trunk)
    assert trunk.images == 4 and len(cache) == 4
    again = cache(images[[3, 5, 0, 5]], trunk)  # two seen, one new (twice in the batch)
    assert trunk.images == 6 and (cache.hits, cache.misses) == (2, 6)
    torch.testing.assert_close(again[0], first[3], rtol=0, atol=0)
    torch.testing.assert_close(again, trunk(images[[3, 5, 0, 5]]), rtol=0, atol=0)


def test_cache_keeps_the_newest_entries_within_its_budget():
    images = torch.arange(5 * 4, dtype=torch.float32).view(5, 4)
    cache = FeatureCache(8 * 4 / 2**20)  # room for two 4-float outputs
    trunk = Counting()
    cache(images, trunk)
    assert cache.capacity == 2 and len(cache) == 2
    cache(images[3:], trunk)  # the two newest are stored
    assert trunk.images == 5
    cache(images[:1], trunk)  # the oldest was dropped
    assert trunk.images == 6


def test_cache_off_and_bad_budgets():
    trunk, cache = Counting(), FeatureCache(0)
    cache(torch.ones(3, 4), trunk)
    cache(torch.ones(3, 4), trunk)
    assert trunk.images == 6 and len(cache) == 0
    for bad in (-1, True, "512"):
        with pytest.raises(ValueError, match="expected a number of megabytes >= 0"):
            FeatureCache(bad)


def test_image_keys_tell_images_apart_by_content():
    a = torch.rand(2, 3, 4, 4)
    b = a.clone()
    b[1, 2, 3, 3] += 1 / 255
    ka, kb = image_keys(a), image_keys(b)
    assert ka[0] == kb[0] and ka[1] != kb[1]
    assert image_keys(a.permute(0, 2, 3, 1).permute(0, 3, 1, 2)) == ka  # layout of the tensor in memory does not matter


@pytest.mark.parametrize("features", ["keypoints", "embed"])
def test_cached_extractor_matches_the_uncached_one(features, ckpt, dict_space):
    """Same weights, cache on and off: the same features, and the keypoint head still gets its gradient."""
    kw = policy_kwargs(ckpt, features=features, keypoints=4)["features_extractor_kwargs"]
    cached = EmbodiedExtractor(dict_space(), **kw)
    plain = EmbodiedExtractor(dict_space(), **{**kw, "cache_mb": 0})
    plain.load_state_dict(cached.state_dict())
    obs = {"rgb": torch.randint(0, 256, (5, 3, 64, 64)).float() / 255, "proprio": torch.zeros(5, 2)}
    cached(obs)  # fills the cache in a batch of 5
    sub = {k: v[[4, 1]] for k, v in obs.items()}  # looked up, not recomputed in a batch of 2
    out = cached(sub)
    assert cached.cache.hits == 2
    torch.testing.assert_close(out, plain(sub), rtol=1e-5, atol=1e-5)
    if features == "keypoints":
        out.square().sum().backward()
        assert cached.keypoints.proj.weight.grad.abs().sum() > 0


def test_finetuned_trunk_is_never_cached(ckpt, dict_space):
    ext = EmbodiedExtractor(dict_space(), **policy_kwargs(ckpt, finetune=True)["features_extractor_kwargs"])
    assert ext.cache is None


def test_ppo_updates_read_the_rollout_from_the_cache(ckpt, ppo):
    """One PPO iteration: the rollout computes every image, the update epochs compute none."""
    model, venv = ppo(ckpt, features="keypoints")
    model.learn(128)
    cache = model.policy.features_extractor.cache
    assert cache.misses <= 128 + 2 * 2  # rollout images (+ the last observations); nothing in the update
    assert cache.hits >= 128  # every minibatch image of the epoch
    venv.close()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_images_on_a_gpu_bypass_the_cache(ckpt, dict_space):
    """On a GPU the trunk recomputes faster than the cache hashes (bench.py --only rl): nothing is stored."""
    ext = EmbodiedExtractor(dict_space(), **policy_kwargs(ckpt)["features_extractor_kwargs"]).cuda()
    obs = {"rgb": torch.rand(3, 3, 64, 64, device="cuda"), "proprio": torch.zeros(3, 2, device="cuda")}
    ext(obs)
    ext(obs)
    assert len(ext.cache) == 0 and ext.cache.hits == ext.cache.misses == 0
