"""The Curious Robot (Pinto, Gandhi, Han, Park & Gupta, ECCV 2016): grasp + push + poke + identity, one trunk.

Heads: grasp on conv4-level maps of the grasp patch (18 angle bins, BCE on the tried bin);
push on conv3-level maps of (before, after) through the same trunk twice (siamese), regressing
the push action; poke on the embedding, regressing the force profile, its fitted line or how
the press ended (``poke_target``); identity on the embedding, views of one instance close (cosine) and other
instances apart. Each training step takes one batch per task in turn and applies the trunk's
gradients accumulated over the four tasks together, as in the paper.

Push and poke targets are z-scored with their training-set statistics (``push_scale``,
``poke_scale``, saved in the checkpoint; ``predict_push`` / ``predict_poke`` answer in the
data's units). A raw poke line fit (slope std ~457 N/s) under MSE otherwise makes the poke loss
~1e5 times the others and hands it the whole trunk. The four losses are then balanced
(``balance``, see :mod:`embodied.nn.balance`); each task's metrics carry its raw and balanced loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from embodied.agents.base import Agent
from embodied.agents.data import classify, open_all, require
from embodied.nn.balance import LossBalancer, TargetScaler, target_column
from embodied.nn.heads import EmbeddingHead, GraspHead, PushHead
from embodied.nn.losses import cosine_embedding_loss, grasp_loss, nt_xent, regression_loss, triplet_margin_loss
from embodied.nn.trunk import TrunkConfig

TASKS = ("grasp", "push", "poke", "identity")
# poke_target -> the poke item's key. "press" regresses (log(1 + peak force / N), depth / m): contact stiffness
# spans three decades across the library (foam ~1e3 N/m, brick 1e6), so the peak force does too (teddy
# ~19 N, mug ~330 N); on a log scale soft categories differ from each other, not only from hard ones
POKE_KEYS = {"line": "line", "profile": "force", "press": "press"}


def recolour(images: torch.Tensor, share: float) -> torch.Tensor:
    """uint8 (N, H, W, 3) images, a random ``share`` of them with their RGB channels permuted and each
    channel scaled by a factor in [0.6, 1.0], so that colour stops telling two views of one object
    apart from views of another (the evaluation's ``shape`` set recolours objects the same way).
    Draws from torch's global generator (seeded and checkpointed by the training loop)."""
    n = images.shape[0]
    pick = torch.rand(n, device=images.device) < share
    perms = torch.stack([torch.randperm(3, device=images.device) for _ in range(n)])  # (N, 3)
    gain = 0.6 + 0.4 * torch.rand(n, 1, 1, 3, device=images.device)
    out = images.gather(3, perms[:, None, None, :].expand_as(images)).float() * gain
    return torch.where(pick[:, None, None, None], out.round().to(images.dtype), images)


def lowres(images: torch.Tensor, share: float, sides: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, H, W, 3) images, a random ``share`` of them downsampled (antialiased) to s x s px, s uniform
    in ``sides`` (inclusive), and resized back (bilinear), so that texture, which tells one instance from
    another but not one category from another, stops telling views apart, and the trunk meets objects at
    the few pixels the RL camera gives them (ReachObject: 5-14 px across in 64 px). Images no larger than
    s stay as they are. Draws from torch's global generator, as :func:`recolour`."""
    n, h, w, _ = images.shape
    pick = torch.rand(n, device=images.device) < share
    side = torch.randint(sides[0], sides[1] + 1, (n,), device=images.device)
    out = images.clone()
    for i in torch.nonzero(pick & (side < min(h, w))).flatten().tolist():
        x = images[i].permute(2, 0, 1)[None].float()
        s = int(side[i])
        small = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        out[i] = big[0].permute(1, 2, 0).round().clamp(0, 255).to(images.dtype)
    return out


class CuriousAgent(Agent):
    defaults: ClassVar[dict[str, Any]] = {
        "tasks": list(TASKS),  # a subset trains an ablation
        "weights": {"grasp": 1.0, "push": 1.0, "poke": 1.0, "identity": 1.0},
        "grasp_layer": "conv4",
        "push_layer": "conv3",
        "patch": 64,  # grasp patch side in pixels (reader option)
        "poke_target": "line",  # "line" (slope, intercept), "profile" (the force curve) or "press" (peak, depth)
        "poke_patch": 0,  # px: the poke image's square centred at the poked pixel (reader option); 0: the whole image
        "regression": "mse",  # "mse" or "smooth_l1" for push and poke
        "identity_loss": "cosine",  # "cosine", "triplet" or "nt_xent" (the batch as negatives)
        "identity_margin": 0.5,
        "identity_temperature": 0.1,  # nt_xent only
        "identity_recolour": 0.0,  # share of identity views whose colour channels are permuted and rescaled
        "identity_lowres": 0.0,  # share of identity views seen at a few pixels (lowres)
        "identity_lowres_px": [12, 32],  # the side those views are downsampled to, px (inclusive range)
        "hidden": 256,
        "balance": "uncertainty",  # "none", "mean" (running-mean normalisation) or "uncertainty" (Kendall et al.)
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "grasp": ("patch", "angle_bin", "success"),
        "push": ("before", "after", "action"),
        "poke": ("rgb",),
        "identity": ("anchor", "positive", "negative"),
    }
    images_per_item: ClassVar[dict[str, int]] = {"grasp": 1, "push": 2, "poke": 1, "identity": 3}

    @classmethod
    def open_datasets(cls, dirs: list[Path], options: dict[str, Any]) -> dict[str, Dataset]:
        o = {**cls.defaults, **options}
        groups = classify(dirs)
        readers = {
            "grasp": ("grasp", "GraspPatchDataset", {"patch": o["patch"]}),
            "push": ("push", "PushPairDataset", {}),
            "poke": ("poke", "PokeDataset", {"patch": o["poke_patch"] or None}),
            "identity": ("look", "IdentityDataset", {}),
        }
        unknown = [t for t in o["tasks"] if t not in readers]
        if unknown:
            raise ValueError(f"curious has no tasks {unknown}; tasks are {TASKS}")
        # check every task has data before reading any (a missing poke dir fails in milliseconds)
        dirs_of = {t: require(groups, readers[t][0], "curious", t) for t in o["tasks"]}
        return {t: open_all(readers[t][1], dirs_of[t], **readers[t][2]) for t in o["tasks"]}

    @classmethod
    def required_keys(cls, task: str, options: dict[str, Any]) -> tuple[str, ...]:
        if task == "poke":
            return ("rgb", POKE_KEYS.get({**cls.defaults, **options}["poke_target"], "line"))
        if task == "identity" and {**cls.defaults, **options}["identity_loss"] == "nt_xent":
            return ("anchor", "positive", "instance")
        return cls.keys.get(task, ())

    def __init__(self, trunk: TrunkConfig, options: dict[str, Any], datasets: dict[str, Dataset]) -> None:
        super().__init__(trunk, options, datasets)
        o = self.options
        if o["poke_target"] not in POKE_KEYS:
            raise ValueError(f"poke_target={o['poke_target']!r}; expected one of {', '.join(POKE_KEYS)}")
        self.poke_key = POKE_KEYS[o["poke_target"]]
        self.poke_log = o["poke_target"] == "press"  # its first column, the peak force, on a log scale
        if o["identity_loss"] == "nt_xent":  # the negative view is not embedded: the batch's others are
            self.images_per_item = {**self.images_per_item, "identity": 2}
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"curious has no tasks {sorted(unknown)}; tasks are {TASKS}")
        d, h = trunk.embed_dim, o["hidden"]
        if "grasp" in datasets:
            self.grasp = GraspHead(trunk, o["grasp_layer"], hidden=h)
        if "push" in datasets:
            self.spec["action_dim"] = int(datasets["push"][0]["action"].numel())
            self.push = PushHead(trunk, self.spec["action_dim"], o["push_layer"], hidden=h)
            self.push_scale = TargetScaler(target_column(datasets["push"], "action"))
        if "poke" in datasets:
            self.spec["poke_dim"] = int(datasets["poke"][0][self.poke_key].numel())
            self.poke = EmbeddingHead(d, self.spec["poke_dim"], hidden=h)
            column = torch.from_numpy(target_column(datasets["poke"], self.poke_key))
            self.poke_scale = TargetScaler(self._poke_units(column).numpy())
        self.balance = LossBalancer(self.tasks, o["balance"])
        if "identity" in datasets:
            self.identity = EmbeddingHead(d, d, hidden=h)

    def predict_push(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) image pairs -> (N, A) push actions in the data's units."""
        layer = self.options["push_layer"]
        feats = self.features(torch.cat([before, after]), upto=layer)[layer]
        n = len(before)
        return self.push_scale.inverse(self.push({layer: feats[:n]}, {layer: feats[n:]}))

    def predict_poke(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) images -> (N, K) poke targets in the data's units (line: slope N/s, intercept N;
        profile: N; press: peak N, depth m)."""
        pred = self.poke_scale.inverse(self.poke(self.embed(images)))
        if self.poke_log:
            pred = torch.cat([pred[:, :1].expm1(), pred[:, 1:]], 1)
        return pred

    def _poke_units(self, value: torch.Tensor) -> torch.Tensor:
        """(N, ...) poke item in the data's units -> (N, K) the units regressed (log(1 + peak / N) for press)."""
        value = value.double().flatten(1)
        if self.poke_log:
            value = torch.cat([value[:, :1].clamp_min(0).log1p(), value[:, 1:]], 1)
        return value

    def poke_target(self, value: torch.Tensor) -> torch.Tensor:
        """(N, ...) poke item (``poke_key``) in the data's units -> (N, K) standard scores of the regressed target."""
        return self.poke_scale(self._poke_units(value).float())

    def loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raw, metrics = self._task_loss(task, batch)
        w = float(self.options["weights"].get(task, 1.0))
        balanced, normalised = self.balance(task, raw)
        return w * balanced, {**metrics, "raw": raw.detach(), "normalised": normalised}

    def _task_loss(self, task: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if task == "grasp":
            feats = self.features(batch["patch"], upto=self.options["grasp_layer"])
            logits = self.grasp(feats)
            loss = grasp_loss(logits, batch["angle_bin"], batch["success"])
            tried = logits.detach().gather(1, batch["angle_bin"].long().view(-1, 1)).squeeze(1)
            acc = ((tried > 0).float() == batch["success"].float()).float().mean()
            return loss, {"acc": acc}
        if task == "push":
            n = len(batch["before"])
            feats = self.features(torch.cat([batch["before"], batch["after"]]), upto=self.options["push_layer"])
            layer = self.options["push_layer"]
            pred = self.push({layer: feats[layer][:n]}, {layer: feats[layer][n:]})
            loss = regression_loss(pred.float(), self.push_scale(batch["action"]), self.options["regression"])
            return loss, {}
        if task == "poke":
            target = self.poke_target(batch[self.poke_key])
            loss = regression_loss(self.poke(self.embed(batch["rgb"])).float(), target, self.options["regression"])
            return loss, {}
        if task == "identity":
            n = len(batch["anchor"])
            contrastive = self.options["identity_loss"] == "nt_xent"  # the batch's other instances are the negatives
            parts = [batch["anchor"], batch["positive"]] + ([] if contrastive else [batch["negative"]])
            views = torch.cat(parts)
            if self.training and self.options["identity_recolour"] > 0:
                views = recolour(views, float(self.options["identity_recolour"]))
            if self.training and self.options["identity_lowres"] > 0:
                lo, hi = (int(v) for v in self.options["identity_lowres_px"])
                views = lowres(views, float(self.options["identity_lowres"]), (lo, hi))
            z = self.identity(self.embed(views))
            a, p, q = z[:n], z[n : 2 * n], z[2 * n :]
            if contrastive:
                loss = nt_xent(a, p, float(self.options["identity_temperature"]), groups=batch["instance"])
            elif self.options["identity_loss"] == "cosine":
                loss = cosine_embedding_loss(a, p, q, self.options["identity_margin"])
            elif self.options["identity_loss"] == "triplet":
                loss = triplet_margin_loss(a, p, q, self.options["identity_margin"])
            else:
                raise ValueError(
                    f"identity_loss={self.options['identity_loss']!r}; expected 'cosine', 'triplet' or 'nt_xent'"
                )
            return loss, {}
        raise KeyError(task)
