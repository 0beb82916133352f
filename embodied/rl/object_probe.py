"""Can a frozen trunk's map tell ReachObject's objects apart? A probe of what the policy can see.

A ReachObject policy sees the trunk only through keypoints on its last conv map (gated by the
goal: :class:`embodied.rl.extractor.EmbodiedExtractor`). It can head for the goal object only if
the map's features *where an object is* say the object's category, on held-out instances. This
measures that without RL, so an RL result can be read against it:

1. ReachObject scenes (train split to fit, held-out split to test), each object's segmentation
   mask, area-weighted down to the map's (h, w) grid;
2. per object, the map averaged over the cells it covers: (C,) features;
3. a multinomial logistic regression (``embodied.eval.classify``) fitted on the train-split
   objects, its accuracy on the held-out ones, with a cluster-bootstrap interval over held-out
   instances (``embodied.eval.bootstrap``). Chance is 1 / (categories).

``pixels`` is the network-free floor: the (2r, 2r, 3) crop of the image around each object's
mask centre, flattened. Colour does not give the category away (objects take any hue).

The same linear probe on each object's crop resized to the trunk's input size, through the
trunk's pooled embedding (:func:`trunk_crop_features`), asks whether the trunk knows the category
when the object fills its view, as Look's close views do: it separates what the trunk has
learned about objects from what its scene map can hold of an object 5-14 px across.

:func:`goal_pointing` asks the policy's own question, with labels instead of reward: the
comparison preset's image pathway (frozen trunk, goal-gated keypoints) with a linear head, fitted
to point at the goal object. Chance is 1 / n_objects.

:func:`exemplar_choices` asks it without labels or fitting: given the env's ``goal_rgb`` exemplar
(another instance of the goal category, alone on the table), is the object whose map features
are most like the exemplar's (:mod:`embodied.rl.exemplar`) the goal? A trunk whose
features say "same category" across instances does better than chance (1 / n_objects);
``pixels`` (mean colour) is the floor. ``env_kwargs={"category_colours": True}`` runs all three
on the variant in which colour gives the category away: the reference for features that can recognise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn
from tqdm import tqdm

from embodied.encoder import load_encoder
from embodied.envs.reach import FINGER_RANGE
from embodied.eval.bootstrap import ClusterBootstrap, Interval
from embodied.eval.classify import linear_probe_predict
from embodied.rl.exemplar import match_scores
from embodied.rl.extractor import EmbodiedExtractor, policy_kwargs
from embodied.rl.glimpse import at_size

PIXEL_CROP_RADIUS = 8  # px at 64 px: the crop covers the largest object's footprint
TEST_SEED_OFFSET = 10**6  # held-out scenes' seeds, apart from the train scenes'
GOAL_STEPS = 600  # Adam steps of the goal-pointing fit (its loss has flattened by then at 400 scenes)
GOAL_BATCH = 64
GOAL_LR = 3e-3
GLIMPSE_LR = 3e-4  # PPO's: how far labels move the glimpse attention in the steps PPO gets


@dataclass
class ObjectScenes:
    """ReachObject frames and their objects.

    images (S, 3, H, W) float in [0, 1]; masks (S, n, H, W) bool, one per object slot;
    categories (S, n) category index (into the env's categories); instances (S, n) library uid;
    proprio (S, 4) and goal (S, K) as the observation gives them; centres (S, n, 2) m and
    goal_slot (S,) index of the goal object, from ``info``; exemplars (S, 3, H, W) float in [0, 1],
    the ``goal_rgb`` exemplar of each scene's goal category.
    """

    images: torch.Tensor
    masks: torch.Tensor
    categories: np.ndarray
    instances: np.ndarray
    proprio: torch.Tensor
    goal: torch.Tensor
    centres: np.ndarray
    goal_slot: np.ndarray
    exemplars: torch.Tensor

    def observations(self, idx: np.ndarray | slice) -> dict[str, torch.Tensor]:
        """The policy's Dict observation of scenes ``idx`` (channel-first images, as SB3 hands them over)."""
        return {
            "rgb": self.images[idx],
            "goal_rgb": self.exemplars[idx],
            "proprio": self.proprio[idx],
            "goal": self.goal[idx],
        }

    def centres_px(self) -> torch.Tensor:
        """(S, n, 2) each object's mask centroid in pixels (x, y)."""
        h, w = self.masks.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        m = self.masks.float()
        area = m.sum((-1, -2)).clamp_min(1.0)
        return torch.stack([(m * xs).sum((-1, -2)) / area, (m * ys).sum((-1, -2)) / area], dim=-1)


def render_scenes(n_scenes: int, split: str, seed: int, env_kwargs: dict[str, Any] | None = None) -> ObjectScenes:
    """``n_scenes`` ReachObject resets (seeds ``seed`` .. ``seed + n_scenes - 1``) with object masks.

    The env draws the exemplar after the scene, so the scenes are those of the env without ``goal_image``.
    """
    env = gym.make("embodied/ReachObject-v0", split=split, **{**(env_kwargs or {}), "goal_image": True})
    raw = env.unwrapped
    images, masks, cats, uids, proprio, goal, centres, slots, exemplars = [], [], [], [], [], [], [], [], []
    for s in tqdm(range(n_scenes), desc=f"{split} scenes", leave=False):
        obs, info = env.reset(seed=seed + s)
        seg = raw.camera.render(raw.sim, raw.view, seg=True).seg
        ids = [raw.sim.bodies[f"object{i}"] for i in range(raw.n_objects)]
        images.append(torch.from_numpy(obs["rgb"]).permute(2, 0, 1).float() / 255.0)
        exemplars.append(torch.from_numpy(obs["goal_rgb"]).permute(2, 0, 1).float() / 255.0)
        masks.append(torch.from_numpy(np.stack([seg == i for i in ids])))
        cats.append([raw.categories.index(c.category) for c in raw.specs])
        uids.append(info["instances"])
        proprio.append(obs["proprio"])
        goal.append(obs["goal"])
        centres.append(info["objects"])
        slots.append(info["target_slot"])
    env.close()
    return ObjectScenes(
        torch.stack(images),
        torch.stack(masks),
        np.asarray(cats),
        np.asarray(uids),
        torch.from_numpy(np.stack(proprio)),
        torch.from_numpy(np.stack(goal)),
        np.stack(centres),
        np.asarray(slots),
        torch.stack(exemplars),
    )


def pool_masks(fmap: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(S, C, h, w) maps and (S, n, H, W) masks -> (S, n, C): each map averaged over the cells an
    object covers, each cell weighted by the fraction of its pixels the mask holds. A mask that
    covers no pixel gives zeros."""
    h, w = fmap.shape[-2:]
    weight = F.adaptive_avg_pool2d(masks.float(), (h, w))  # (S, n, h, w) area fractions
    total = weight.flatten(2).sum(-1).clamp_min(1e-12)  # (S, n)
    return torch.einsum("snhw,schw->snc", weight, fmap) / total[..., None]


def pixel_crops(images: torch.Tensor, masks: torch.Tensor, radius: int = PIXEL_CROP_RADIUS) -> torch.Tensor:
    """(S, 3, H, W) images, (S, n, H, W) masks -> (S, n, 3 * (2r)^2): the crop around each mask's centre."""
    padded = F.pad(images, (radius, radius, radius, radius))
    out = []
    for s in range(images.shape[0]):
        for m in masks[s]:
            ys, xs = torch.nonzero(m, as_tuple=True)
            cy, cx = (int(ys.float().mean().round()), int(xs.float().mean().round())) if len(ys) else (0, 0)
            out.append(padded[s, :, cy : cy + 2 * radius, cx : cx + 2 * radius].flatten())
    return torch.stack(out).view(images.shape[0], masks.shape[1], -1)


def exemplar_choice(scene_maps: torch.Tensor, exemplar_maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """(S,) index of the object most like the exemplar: (S, C, h, w) scene and exemplar maps, (S, n, H, W)
    object masks. Each object scores :func:`embodied.rl.exemplar.match_scores` averaged over the cells
    it covers (:func:`pool_masks`)."""
    return pool_masks(match_scores(scene_maps, exemplar_maps)[:, None], masks)[..., 0].argmax(-1).numpy()


def exemplar_choices(encoder: str, scenes: ObjectScenes, seed: int = 0, layer: str | None = None) -> np.ndarray:
    """(S,) the object :func:`exemplar_choice` picks on ``encoder``'s map ``layer`` ("pixels": the images
    themselves, i.e. mean colour); ``== scenes.goal_slot`` where it is the goal."""
    if encoder == "pixels":
        maps = scenes.images, scenes.exemplars
    else:
        maps = tuple(_trunk_maps(encoder, x, seed, layer) for x in (scenes.images, scenes.exemplars))
    return exemplar_choice(*maps, scenes.masks)


def follow_returns(
    chosen: np.ndarray, split: str, seed: int, env_kwargs: dict[str, Any] | None = None, max_steps: int = 50
) -> np.ndarray:
    """(S,) episode returns of the scripted oracle sent to object ``chosen[s]`` of scene ``s`` (the scenes of
    :func:`render_scenes` with the same ``split`` / ``seed`` / ``env_kwargs``): what a policy that controls
    perfectly and recognises as ``chosen`` does would earn under the env's reward. Staying put earns 0."""
    from embodied.envs.reach_object import ReachObjectOracle

    env = gym.make("embodied/ReachObject-v0", split=split, **(env_kwargs or {}))
    oracle = ReachObjectOracle.for_env(env)
    out = np.zeros(len(chosen))
    for s, k in enumerate(tqdm(chosen, desc="following the choices", leave=False)):
        obs, info = env.reset(seed=seed + s)
        for _ in range(max_steps):
            seen = {**info, "target": info["objects"][int(k)], "target_slot": int(k)}
            obs, reward, term, trunc, info = env.step(oracle(obs, seen))
            out[s] += reward
            if term or trunc:
                break
    env.close()
    return out


def _trunk_maps(encoder: str, images: torch.Tensor, seed: int, layer: str | None, batch: int = 256) -> torch.Tensor:
    """(S, 3, H, W) images -> (S, C, h, w) ``encoder``'s map ``layer`` (default: the last conv layer)."""
    enc = load_encoder(encoder, seed=seed)
    layer = layer or f"conv{enc.config.depth}"
    with torch.no_grad():
        return torch.cat(
            [
                enc.trunk.features(enc.preprocess(images[i : i + batch]), upto=layer)[layer].float()
                for i in range(0, len(images), batch)
            ]
        )


def trunk_object_features(
    encoder: str, scenes: ObjectScenes, seed: int = 0, layer: str | None = None, batch: int = 256
) -> torch.Tensor:
    """(S, n, C): ``encoder``'s (a checkpoint / run dir or "random") map ``layer`` (default: the last
    conv layer, the one the RL keypoints use) pooled over each object."""
    return pool_masks(_trunk_maps(encoder, scenes.images, seed, layer, batch), scenes.masks)


def trunk_crop_features(encoder: str, crops: torch.Tensor, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """(S, n, 3, c, c) object crops in [0, 1] -> (S, n, D): ``encoder``'s embedding of each crop resized
    (bilinear) to its input size."""
    enc = load_encoder(encoder, seed=seed)
    size = enc.config.image_size
    flat = crops.flatten(0, 1)
    with torch.no_grad():
        out = torch.cat(
            [
                enc(F.interpolate(flat[i : i + batch], size=(size, size), mode="bilinear", align_corners=False))
                for i in range(0, len(flat), batch)
            ]
        )
    return out.view(*crops.shape[:2], -1)


def probe_correct(train: tuple[torch.Tensor, np.ndarray], test: tuple[torch.Tensor, np.ndarray]) -> np.ndarray:
    """(S * n,) 1.0 where a linear probe fitted on ``train`` gets a ``test`` object's category right;
    ``train`` / ``test`` = ((S, n, D) features, (S, n) categories)."""
    (xa, ya), (xb, yb) = ((x.flatten(0, 1), torch.from_numpy(y.reshape(-1))) for x, y in (train, test))
    return (linear_probe_predict(xa, ya, xb) == yb).double().numpy()


def goal_pointing(
    encoder: str, train: ObjectScenes, test: ObjectScenes, steps: int = GOAL_STEPS, seed: int = 0
) -> np.ndarray:
    """(S_test,) 1.0 where the policy's own image pathway points at the goal object of a held-out scene.

    The pathway is the comparison preset's extractor (``rl/reach_object_ppo.toml``: the frozen trunk,
    goal-gated keypoints, the proprio MLP; NatureCNN trains whole) with a linear head, fitted by
    Adam on mean squared error to the goal object's (x, y) / FINGER_RANGE on the train scenes. A
    held-out prediction counts when it is nearer to the goal object's centre than to any other.
    This is what PPO's features would have to learn from reward alone, learned from labels instead.
    """
    torch.manual_seed(seed)
    h, w = train.images.shape[-2:]
    space = spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (3, h, w), np.uint8),
            "proprio": spaces.Box(-1.0, 1.0, tuple(train.proprio.shape[1:]), np.float32),
            "goal": spaces.Box(0.0, 1.0, tuple(train.goal.shape[1:]), np.float32),
        }
    )
    # a view larger than the trunk's input is resized to it, as train_rl.py --resize does
    kw = policy_kwargs(encoder, features="keypoints", gate="goal", resize=True, seed=seed)["features_extractor_kwargs"]
    ext = EmbodiedExtractor(space, **kw)
    head = nn.Linear(ext.features_dim, 2)
    params = [q for q in [*ext.parameters(), *head.parameters()] if q.requires_grad]
    opt = torch.optim.Adam(params, lr=GOAL_LR)
    rows = np.arange(len(train.goal_slot))
    target = torch.from_numpy(train.centres[rows, train.goal_slot] / FINGER_RANGE).float()
    rng = np.random.default_rng(seed)
    ext.train()
    for _ in tqdm(range(steps), desc=f"goal pointing {encoder}", leave=False):
        idx = rng.choice(rows, size=min(GOAL_BATCH, len(rows)), replace=False)
        loss = F.mse_loss(head(ext(train.observations(idx))), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    ext.eval()
    with torch.no_grad():
        pred = torch.cat([head(ext(test.observations(slice(i, i + 256)))) for i in range(0, len(test.goal_slot), 256)])
    pred_m = pred.numpy()[:, None, :] * FINGER_RANGE  # (S, 1, 2) m
    nearest = np.linalg.norm(test.centres - pred_m, axis=-1).argmin(-1)
    return (nearest == test.goal_slot).astype(np.float64)


def glimpse_pointing(
    encoder: str, train: ObjectScenes, test: ObjectScenes, steps: int = GOAL_STEPS, seed: int = 0
) -> np.ndarray:
    """(S_test,) 1.0 where the glimpse pathway attends to the goal object of a held-out scene.

    The pathway is ``rl/reach_object_glimpse_ppo.toml``'s extractor (glimpses found without a network,
    the frozen trunk's embedding of each, the attention scoring them against the exemplar's glimpse and
    the goal one-hot: :mod:`embodied.rl.glimpse`; NatureCNN trains whole), fitted by Adam at PPO's
    learning rate (3e-4) on the log attention weight of the glimpse nearest the goal object, on the train
    scenes. A held-out scene counts when the attended point is nearer the goal object's centre than any
    other object's. As :func:`goal_pointing`, what PPO would have to learn from reward, learned from labels.
    """
    torch.manual_seed(seed)
    h, w = train.images.shape[-2:]
    image = spaces.Box(0, 255, (3, h, w), np.uint8)
    space = spaces.Dict(
        {
            "rgb": image,
            "goal_rgb": image,
            "proprio": spaces.Box(-1.0, 1.0, tuple(train.proprio.shape[1:]), np.float32),
            "goal": spaces.Box(0.0, 1.0, tuple(train.goal.shape[1:]), np.float32),
        }
    )
    kw = policy_kwargs(encoder, features="glimpses", gate="goal", exemplar="goal_rgb", seed=seed)
    ext = EmbodiedExtractor(space, **kw["features_extractor_kwargs"])
    params = [q for q in ext.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=GLIMPSE_LR)
    goal_px = [s.centres_px()[np.arange(len(s.goal_slot)), s.goal_slot] for s in (train, test)]
    rows = np.arange(len(train.goal_slot))
    rng = np.random.default_rng(seed)
    n = ext.glimpse.glimpses
    ext.train()
    for _ in tqdm(range(steps), desc=f"glimpse pointing {encoder}", leave=False):
        idx = rng.choice(rows, size=min(GOAL_BATCH, len(rows)), replace=False)
        out = ext.image_features(train.images[idx], train.goal[idx], train.exemplars[idx])
        xy = out[:, 3:].reshape(-1, n, 3)
        px = (xy[..., :2] + 1) * w / 2 - 0.5
        target = (px - goal_px[0][idx, None]).norm(dim=-1).masked_fill(xy[..., 2] <= 0, 1e9).argmin(-1)
        loss = F.nll_loss(xy[..., 2].clamp_min(1e-9).log(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ext.eval()
    with torch.no_grad():
        out = torch.cat(
            [
                ext.image_features(test.images[i : i + 256], test.goal[i : i + 256], test.exemplars[i : i + 256])
                for i in range(0, len(test.goal_slot), 256)
            ]
        )
    point = (out[:, :2] + 1) * w / 2 - 0.5  # (S, 2) px
    nearest = (test.centres_px() - point[:, None]).norm(dim=-1).argmin(-1).numpy()
    return (nearest == test.goal_slot).astype(np.float64)


def object_probe(
    encoders: dict[str, str],
    n_train: int = 400,
    n_test: int = 200,
    seed: int = 0,
    layer: str | None = None,
    goal_steps: int = GOAL_STEPS,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, dict[str, dict[str, Interval]]]:
    """Both probes on the same scenes, each as ``{"accuracy": {label: Interval}, "minus_random": {label: Interval}}``
    (paired differences to the ``random`` encoder, when it is one of them):

    - ``"category"``: held-out category accuracy of each object from the map ``layer`` (and ``pixels``
      crops; NatureCNN, which has no frozen map, is left out); intervals resample held-out instances;
    - ``"category_crop"``: the same from each encoder's embedding of the object's crop
      (:func:`trunk_crop_features`), beside ``pixels``;
    - ``"goal_pointing"``: :func:`goal_pointing` per encoder (none when ``goal_steps`` is 0);
      intervals resample the goal objects' instances;
    - ``"glimpse_pointing"``: the same for :func:`glimpse_pointing`, the glimpse pathway;
    - ``"exemplar_matching"``: :func:`exemplar_choices` on the held-out scenes, for ``pixels`` and each
      encoder but NatureCNN, the fraction it gets right; intervals resample the goal objects' instances;
    - ``"matching_return"``: the mean return of :func:`follow_returns` to those choices (the
      "accuracy" entries hold mean returns here): what acting on the match would earn.
    """
    train = render_scenes(n_train, "train", seed, env_kwargs)
    test = render_scenes(n_test, "heldout", seed + TEST_SEED_OFFSET, env_kwargs)
    labels = (train.categories, test.categories)
    radius = at_size(PIXEL_CROP_RADIUS, train.images.shape[-1])  # the same share of the view at any size
    crops = [pixel_crops(s.images, s.masks, radius) for s in (train, test)]
    category = {"pixels": probe_correct(*zip(crops, labels, strict=True))}
    category_crop = dict(category)
    side = 2 * radius
    crop_images = [c.view(*c.shape[:2], 3, side, side) for c in crops]
    pointing: dict[str, np.ndarray] = {}
    glimpsing: dict[str, np.ndarray] = {}
    chosen = {"pixels": exemplar_choices("pixels", test)}
    for label, enc in tqdm(encoders.items(), desc="encoders", leave=False):
        if enc != "nature":
            feats = [trunk_object_features(enc, s, seed=seed, layer=layer) for s in (train, test)]
            category[label] = probe_correct(*zip(feats, labels, strict=True))
            feats = [trunk_crop_features(enc, c, seed=seed) for c in crop_images]
            category_crop[label] = probe_correct(*zip(feats, labels, strict=True))
            chosen[label] = exemplar_choices(enc, test, seed=seed, layer=layer)
        if goal_steps:
            pointing[label] = goal_pointing(enc, train, test, steps=goal_steps, seed=seed)
            glimpsing[label] = glimpse_pointing(enc, train, test, steps=goal_steps, seed=seed)
    goal_instances = ClusterBootstrap(test.instances[np.arange(len(test.goal_slot)), test.goal_slot], seed=seed)
    object_instances = ClusterBootstrap(test.instances.reshape(-1), seed=seed)
    return {
        "category": _summarise(category, object_instances),
        "category_crop": _summarise(category_crop, object_instances),
        "goal_pointing": _summarise(pointing, goal_instances) if pointing else {},
        "glimpse_pointing": _summarise(glimpsing, goal_instances) if glimpsing else {},
        "exemplar_matching": _summarise(
            {k: (c == test.goal_slot).astype(np.float64) for k, c in chosen.items()}, goal_instances
        ),
        "matching_return": _summarise(
            {k: follow_returns(c, "heldout", seed + TEST_SEED_OFFSET, env_kwargs) for k, c in chosen.items()},
            goal_instances,
        ),
    }


def _summarise(correct: dict[str, np.ndarray], boot: ClusterBootstrap) -> dict[str, dict[str, Interval]]:
    out = {"accuracy": {k: boot.interval(v) for k, v in correct.items()}, "minus_random": {}}
    if "random" in correct:
        out["minus_random"] = {k: boot.difference(v, correct["random"]) for k, v in correct.items() if k != "random"}
    return out


__all__ = [
    "ObjectScenes",
    "exemplar_choice",
    "exemplar_choices",
    "follow_returns",
    "glimpse_pointing",
    "goal_pointing",
    "object_probe",
    "pixel_crops",
    "pool_masks",
    "probe_correct",
    "render_scenes",
    "trunk_crop_features",
    "trunk_object_features",
]
