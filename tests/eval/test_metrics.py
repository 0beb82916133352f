import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embodied.eval.metrics import KS, eligible_shots, object_split, scene_split, score_objects, score_scenes
from embodied.eval.retrieval import hits_at_k


def fake_objects(categories=4, per_category=6, views=5, seed=0):
    """Labels shaped like an object set: uid = category * 32 + index."""
    inst = np.repeat([c * 32 + i for c in range(categories) for i in range(per_category)], views)
    images = np.random.default_rng(seed).integers(0, 255, (len(inst), 8, 8, 3), dtype=np.uint8)
    return {"instance": inst, "category": inst // 32, "images": images}


def brute_force_recall(emb, labels, groups, k):
    """Per query: is a same-label item among the k most cosine-similar items outside its own group?"""
    z = F.normalize(emb.double(), dim=1).numpy()
    sim = z @ z.T
    out = []
    for i in range(len(z)):
        gallery = [j for j in range(len(z)) if groups[j] != groups[i]]
        if not any(labels[j] == labels[i] for j in gallery):
            continue
        best = sorted(gallery, key=lambda j: -sim[i, j])[:k]
        out.append(any(labels[j] == labels[i] for j in best))
    return np.mean(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_category_recall_across_instances_matches_brute_force(seed):
    data = fake_objects(seed=seed)
    g = torch.Generator().manual_seed(seed)
    # embeddings where views of one instance sit close: within-instance neighbours would inflate recall
    centres = torch.randn(int(data["instance"].max()) + 1, 6, generator=g)
    emb = centres[data["instance"]] + 0.3 * torch.randn(len(data["instance"]), 6, generator=g)
    hits, valid = hits_at_k(emb, data["category"], KS, groups=data["instance"])
    for i, k in enumerate(KS):
        want = brute_force_recall(emb, data["category"], data["instance"], k)
        assert hits[valid, i].double().mean().item() == pytest.approx(want)
    # without the exclusion the same embeddings score higher: the query's own instance is a category hit
    plain, pvalid = hits_at_k(emb, data["category"], KS)
    assert plain[pvalid, 0].double().mean() > hits[valid, 0].double().mean()


def test_cheating_encoder_scores_one_and_constant_encoder_scores_chance():
    data = fake_objects(categories=6, per_category=8, views=6)
    inst = torch.as_tensor(data["instance"])
    cheat = F.one_hot(torch.unique(inst, return_inverse=True)[1]).float()
    s = score_objects(cheat, data, draws=1)
    assert s["instance R@1"].mean == 1.0
    const = score_objects(torch.ones(len(inst), 4), data, draws=1)
    n_views, n = 6, len(inst)
    chance = (n_views - 1) / (n - 1)  # another view of the query's instance, drawn at random from the gallery
    got = const["instance R@1"]
    se = np.sqrt(chance * (1 - chance) / n)
    assert abs(got.mean - chance) < 4 * se
    cat_chance = 1 / 6
    assert abs(const["category linear"].mean - cat_chance) < 0.1
    assert abs(const["category R@1"].mean - (8 - 1) * 6 / (n - 6)) < 4 * np.sqrt(cat_chance / n)


def test_scores_carry_instance_and_room_clusters():
    data = fake_objects()
    s = score_objects(torch.randn(len(data["instance"]), 5), data, draws=2)
    train, test = object_split(data["instance"], data["category"])
    assert set(s["category linear"].clusters) == set(data["instance"][test])
    assert len(s["instance R@1"].values) == len(data["instance"])
    # 3 train instances x 5 views = 15 per class: 1- and 6-shot exist, 20-shot does not
    assert "category 6-shot" in s and "category 20-shot" not in s
    scenes = {"scene_class": np.repeat(np.arange(3), 40), "scene_id": np.repeat(np.arange(12), 10)}
    sc = score_scenes(torch.randn(120, 5), scenes, draws=1)
    assert set(sc["scene linear"].clusters) <= set(range(12)) and len(sc["scene linear"].values) == 60


def test_splits_hold_out_instances_and_rooms():
    data = fake_objects()
    tr, te = object_split(data["instance"], data["category"])
    assert not set(data["instance"][tr]) & set(data["instance"][te])
    assert set(data["category"][tr]) == set(data["category"][te])
    sid = np.repeat(np.arange(8), 3)
    sc = sid // 2
    tr, te = scene_split(sid, sc)
    assert not set(sid[tr]) & set(sid[te]) and set(sc[tr]) == set(sc[te])


def test_eligible_shots_need_more_examples_than_shots():
    assert eligible_shots(np.repeat(np.arange(3), 7)) == [1, 6]
    assert eligible_shots(np.repeat(np.arange(3), 6)) == [1]
    assert eligible_shots(np.repeat(np.arange(3), 21)) == [1, 6, 20]
