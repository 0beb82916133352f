"""The evaluation report: one table per set with intervals, verdicts against the floors, pictures.

Rows are encoders in three roles: floors (``pixels``, ``colour histogram``: no network;
``random``: the untrained trunk), learners (every trained agent), ceilings (``supervised ...``:
trained on labels the learners never see). Every number is a mean over queries with its 95 %
cluster-bootstrap interval; "A beats B" only when the paired interval of A - B excludes 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.eval.bootstrap import ClusterBootstrap, Interval
from embodied.eval.metrics import KS, PerQuery
from embodied.eval.retrieval import topk_neighbours

FLOORS = ("pixels", "colour histogram", "random")
HEADLINE = {
    "objects": ("instance R@1", "category R@1", "category linear", "category kNN", "category 6-shot"),
    "scenes": ("scene linear", "scene kNN", "scene 6-shot"),
}
PAPER = {  # Pinto et al. ECCV 2016, real robot: (random init, robot-trained, ImageNet AlexNet)
    "instance Recall@1": (0.062, 0.720, 0.686),
    "category Recall@1": (0.150, 0.833, 0.854),
    "classification (Household / UW-RGBD / Caltech-256)": ("0.250 / 0.468 / 0.242", "0.354 / 0.693 / 0.317", "-"),
}

# Jayaraman & Grauman's few-label comparison: (A, B) pairs reported as A - B on the scene set
PROTOCOL = (
    ("equivariant_labels", "labels_only"),
    ("slowness_labels", "labels_only"),
    ("equivariant_labels", "slowness_labels"),
)

Scores = dict[str, dict[str, dict[str, PerQuery]]]  # set -> encoder -> metric -> per-query outcomes


def role(name: str, set_name: str = "centric") -> str:
    """'floor', 'ceiling' or 'learner' on ``set_name``: a supervised encoder is the ceiling of the sets
    its labels belong to (``category`` for object sets, a scene label for ``scenes``), a learner elsewhere."""
    if name in FLOORS:
        return "floor"
    if name.startswith("supervised"):
        label = name.partition("(")[2]
        if ("scene" in label) == (set_name == "scenes") and label:
            return "ceiling"
    return "learner"


def headline(set_name: str) -> tuple[str, ...]:
    return HEADLINE["scenes" if set_name == "scenes" else "objects"]


class Summary:
    """Intervals and paired comparisons of :data:`Scores`, one bootstrap per (set, metric)."""

    def __init__(self, scores: Scores, draws: int = 2000, seed: int = 0) -> None:
        self.scores = scores
        self._boot: dict[tuple[str, str], ClusterBootstrap] = {}
        self.draws, self.seed = draws, seed

    def bootstrap(self, set_name: str, metric: str) -> ClusterBootstrap:
        key = (set_name, metric)
        if key not in self._boot:
            any_scores = next(s[metric] for s in self.scores[set_name].values() if metric in s)
            self._boot[key] = ClusterBootstrap(any_scores.clusters, self.draws, self.seed)
        return self._boot[key]

    def interval(self, set_name: str, encoder: str, metric: str) -> Interval:
        return self.bootstrap(set_name, metric).interval(self.scores[set_name][encoder][metric].values)

    def difference(self, set_name: str, a: str, b: str, metric: str) -> Interval:
        s = self.scores[set_name]
        return self.bootstrap(set_name, metric).difference(s[a][metric].values, s[b][metric].values)

    def metrics(self, set_name: str) -> list[str]:
        names: list[str] = []
        for per in self.scores[set_name].values():
            names += [m for m in per if m not in names]
        return names

    def to_dict(self) -> dict[str, Any]:
        return {
            s: {e: {m: self.interval(s, e, m).to_dict() for m in per} for e, per in encs.items()}
            for s, encs in self.scores.items()
        }


def _cell(iv: Interval) -> str:
    return f"{iv.value:.3f} [{iv.lo:.3f}, {iv.hi:.3f}]"


def _diff(iv: Interval) -> str:
    return f"{iv.value:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]"


def set_table(summary: Summary, set_name: str) -> list[str]:
    """Markdown rows: one per encoder (floors, learners, ceilings), one column per metric."""
    metrics = summary.metrics(set_name)
    rows = ["| encoder | role | " + " | ".join(metrics) + " |", "|---" * (2 + len(metrics)) + "|"]
    for enc in order(list(summary.scores[set_name]), set_name):
        per = summary.scores[set_name][enc]
        cells = [_cell(summary.interval(set_name, enc, m)) if m in per else "-" for m in metrics]
        rows.append(f"| {enc} | {role(enc, set_name)} | " + " | ".join(cells) + " |")
    return rows


def verdicts(summary: Summary) -> list[str]:
    """Per learner: on each set, which floors it beats beyond noise and on which headline metrics,
    where it falls below one, and whether the ceiling is still above it."""
    lines = []
    encoders = list(dict.fromkeys(e for encs in summary.scores.values() for e in encs))
    for enc in [e for e in encoders if role(e) == "learner"]:
        lines.append(f"- **{enc}**")
        for set_name, encs in summary.scores.items():
            if enc not in encs or role(enc, set_name) != "learner":
                continue
            others = [f for f in FLOORS if f in encs] + [c for c in encs if role(c, set_name) == "ceiling"]
            parts = []
            for other in others:
                beats, below = [], []
                for m in [m for m in headline(set_name) if m in encs[enc] and m in encs[other]]:
                    d = summary.difference(set_name, enc, other, m)
                    if d.excludes_zero():
                        (beats if d.value > 0 else below).append(m)
                text = f"beats {other} on {', '.join(beats)}" if beats else f"does not beat {other}"
                parts.append(text + (f" (below on {', '.join(below)})" if below else ""))
            lines.append(f"  - {set_name}: " + "; ".join(parts))
    return lines


def floor_check(summary: Summary) -> list[str]:
    """Whether each set separates the untrained trunk from a ceiling (a set that cannot is broken)."""
    lines = []
    for set_name, encs in summary.scores.items():
        ceilings = [e for e in encs if role(e, set_name) == "ceiling"]
        if "random" not in encs or not ceilings:
            continue
        for c in ceilings:
            sep = []
            for m in headline(set_name):
                if m in encs[c] and m in encs["random"]:
                    d = summary.difference(set_name, c, "random", m)
                    sep.append(f"{m} {_diff(d)}" + ("" if d.excludes_zero() else " (within noise)"))
            lines.append(f"- {set_name}: {c} - random: " + "; ".join(sep))
    return lines


def protocol_table(summary: Summary, set_name: str = "scenes") -> list[str]:
    """Markdown rows: the few-label protocol's paired differences (A - B) on every metric of ``set_name``."""
    encs = summary.scores.get(set_name, {})
    pairs = [(a, b) for a, b in PROTOCOL if a in encs and b in encs]
    if not pairs:
        return []
    metrics = summary.metrics(set_name)
    rows = ["| A - B | " + " | ".join(metrics) + " |", "|---" * (1 + len(metrics)) + "|"]
    for a, b in pairs:
        cells = []
        for m in metrics:
            d = summary.difference(set_name, a, b, m)
            cells.append(_diff(d) + ("" if d.excludes_zero() else " (noise)"))
        rows.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    return rows


def training_table(training: dict[str, dict[str, float]]) -> list[str]:
    """Markdown rows: the held-out numbers each learner logged at its last step (e.g. the equivariance gain)."""
    keys = sorted({k for row in training.values() for k in row if k != "step"})
    if not keys:
        return []
    rows = ["| encoder | step | " + " | ".join(keys) + " |", "|---" * (2 + len(keys)) + "|"]
    for name, row in training.items():
        cells = [f"{row[k]:.3f}" if k in row else "-" for k in keys]
        rows.append(f"| {name} | {row.get('step', '-')} | " + " | ".join(cells) + " |")
    return rows


WARMUP = 0.1  # share of a run's steps left out of a trend: batch-norm statistics still settle there


def trend(rows: list[dict[str, Any]], key: str, per: int = 100) -> Interval | None:
    """Least-squares slope of ``key`` against the step, per ``per`` steps, with its 95 % interval
    (normal approximation to the slope's standard error), over the metrics ``rows`` (dicts with
    "step") after the first ``WARMUP`` of the run; None with fewer than 4 such rows or a constant."""
    pts = [(float(r["step"]), float(r[key])) for r in rows if key in r and np.isfinite(r[key])]
    if not pts:
        return None
    last = max(s for s, _ in pts)
    pts = [(s, v) for s, v in pts if s > WARMUP * last]
    if len(pts) < 4:
        return None
    x, y = np.array(pts).T
    if np.ptp(y) == 0:  # a constant (slowness' gain is 0 by definition): no trend to state
        return None
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc**2).sum())
    resid = y - y.mean() - slope * xc
    se = float(np.sqrt((resid**2).sum() / (len(x) - 2) / (xc**2).sum()))
    return Interval(slope * per, (slope - 1.96 * se) * per, (slope + 1.96 * se) * per)


def trend_table(trends: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown rows: per learner and logged key, the slope per 100 steps [95 %] and whether it rises."""
    rows = []
    for name, by_key in trends.items():
        for key, iv in by_key.items():
            word = "rising" if iv["lo"] > 0 else "falling" if iv["hi"] < 0 else "flat (within noise)"
            rows.append(f"| {name} | {key} | {iv['value']:+.3f} [{iv['lo']:+.3f}, {iv['hi']:+.3f}] | {word} |")
    if not rows:
        return []
    return ["| encoder | logged | slope per 100 steps [95 %] | trend |", "|---|---|---|---|", *rows]


def bar_chart(summary: Summary, set_name: str, path: Path) -> Path:
    """PNG: each encoder's headline metrics with 95 % intervals; floors grey, ceilings black-edged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encs = order(list(summary.scores[set_name]), set_name)
    metrics = [m for m in headline(set_name) if m in summary.metrics(set_name)]
    width = 0.8 / max(1, len(encs))
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(metrics), 3.8))
    cmap = plt.get_cmap("tab10")
    greys = {"pixels": "0.75", "colour histogram": "0.6", "random": "0.45"}
    for i, enc in enumerate(encs):
        ivs = [summary.interval(set_name, enc, m) if m in summary.scores[set_name][enc] else None for m in metrics]
        x = np.arange(len(metrics)) + (i - (len(encs) - 1) / 2) * width
        vals = np.array([iv.value if iv else np.nan for iv in ivs])
        err = np.array([[iv.value - iv.lo, iv.hi - iv.value] if iv else [0, 0] for iv in ivs]).T
        color = greys.get(enc, cmap(i % 10))
        edge = "black" if role(enc, set_name) == "ceiling" else None
        ax.bar(x, vals, width, yerr=err, capsize=2, color=color, edgecolor=edge, label=enc)
    ax.set_xticks(np.arange(len(metrics)), metrics, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (95 % interval)")
    ax.set_title(f"{set_name}: floors (grey), learners, ceilings (black edge)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def retrieval_grid(
    images: np.ndarray,
    embs: dict[str, torch.Tensor],
    labels: np.ndarray,
    path: Path,
    queries: int = 4,
    k: int = 5,
    seed: int = 0,
) -> Path:
    """PNG: per encoder a block of rows, each a query then its top-k neighbours framed green (same
    label) or red; every encoder gets the same queries. The encoder's name heads its block."""
    import cv2

    rng = np.random.default_rng(seed)
    q = rng.choice(len(images), size=min(queries, len(images)), replace=False)
    size, pad = 80, 3
    cell = size + 2 * pad

    def tile(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
        big = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
        return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=color)

    width = cell * (k + 1) + 12
    blocks = []
    for name, emb in embs.items():
        head = np.full((18, width, 3), 255, np.uint8)
        cv2.putText(head, name, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        nn_idx = topk_neighbours(emb, k).cpu().numpy()
        rows = [head]
        for i in q:
            cells = [tile(images[i], (255, 255, 255)), np.full((cell, 12, 3), 255, np.uint8)]
            cells += [tile(images[j], (40, 200, 40) if labels[j] == labels[i] else (220, 40, 40)) for j in nn_idx[i]]
            rows.append(np.concatenate(cells, axis=1))
        blocks.append(np.concatenate(rows, axis=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(blocks, axis=0)[..., ::-1])
    return path


def markdown(summary: Summary, meta: dict[str, Any]) -> str:
    """report.md: sets, verdicts, one table per set, the paper's numbers, pictures."""
    lines = ["# Evaluation report", "", f"Device: {meta.get('device', '?')}. Sets ({meta.get('size', '?')}):", ""]
    lines += [f"- {line}" for line in meta.get("sets", {}).values()]
    lines += [
        "",
        "Every number: mean over queries [95 % cluster-bootstrap interval, resampling instances for object "
        "sets and rooms for scenes]. A beats B only when the paired interval of A - B excludes 0.",
        "",
    ]
    check = floor_check(summary)
    if check:
        lines += ["## Does each set separate the untrained trunk from a ceiling?", "", *check, ""]
    protocol = protocol_table(summary)
    if protocol:
        lines += ["## Few labels: the ego-motion paper's protocol (scenes, paired differences)", "", *protocol, ""]
    training = training_table(meta.get("training", {}))
    if training:
        lines += [
            "## Held-out numbers logged in training (last step)",
            "",
            "equivariance_gain = 1 - mean|M_g z_i - z_j| / mean|z_i - z_j| on held-out pairs "
            "(> 0: the maps explain motion).",
            "",
            *training,
            "",
        ]
    trends = trend_table(meta.get("trends", {}))
    if trends:
        lines += [
            "Trend over training (least-squares slope of each logged row after the first "
            f"{WARMUP:.0%} of the steps; 95 % interval from the slope's standard error):",
            "",
            *trends,
            "",
        ]
    lines += ["## Verdicts: which floors each learner beats beyond noise (headline metrics)", ""]
    lines += (verdicts(summary) or ["- no learner was evaluated"]) + [""]
    for set_name in summary.scores:
        lines += [f"## {set_name}", ""]
        if set_name != "scenes":
            lines += [
                f"instance R@k: another view of the query's instance among its k nearest; category R@k: its "
                f"category, every view of its own instance out of the gallery (k in {list(KS)}). Probes: "
                "fitted on half of each category's held-out instances, tested on the others.",
                "",
            ]
        else:
            lines += ["Probes fitted on half of each class's rooms, tested on the other rooms.", ""]
        lines += set_table(summary, set_name) + [""]
        for pic in meta.get("pictures", {}).get(set_name, []):
            lines.append(f"![{pic}]({pic})")
        lines.append("")
    lines += [
        "## For orientation: the Curious Robot paper's real-robot numbers (not ours, not simulation)",
        "",
        "| metric | random init | robot-trained | ImageNet AlexNet |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m} | " + " | ".join(str(v) for v in vals) + " |" for m, vals in PAPER.items()]
    if meta.get("curves"):
        lines += ["", "## Training curves", "", *[f"![{c}]({c})" for c in meta["curves"]]]
    return "\n".join(lines) + "\n"


def write_json(summary: Summary, meta: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps({"meta": meta, "results": summary.to_dict()}, indent=1))


def slug(name: str) -> str:
    """A file-name-safe form of an encoder name."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name).strip("_")


def order(names: Sequence[str], set_name: str = "centric") -> list[str]:
    """Floors first (in FLOORS order), then learners, then ceilings (of ``set_name``)."""
    rank = {"floor": 0, "learner": 1, "ceiling": 2}
    return sorted(names, key=lambda n: (rank[role(n, set_name)], FLOORS.index(n) if n in FLOORS else 0))
