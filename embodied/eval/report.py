"""The evaluation report: tables in the papers' shape, retrieval grids, embedding plots.

Rows are encoders (``random`` first, ``supervised`` where trained), columns metrics.
The Curious Robot's real-robot figures are quoted beside ours for orientation only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.eval.classify import few_shot, knn_accuracy, linear_probe
from embodied.eval.retrieval import recall_at_k, topk_neighbours

KS = (1, 5, 10, 20)
SHOTS = (1, 6, 20)
PAPER = {  # Pinto et al. ECCV 2016, real robot: (random init, robot-trained, ImageNet AlexNet)
    "instance Recall@1": (0.062, 0.720, 0.686),
    "category Recall@1": (0.150, 0.833, 0.854),
    "classification (Household / UW-RGBD / Caltech-256)": ("0.250 / 0.468 / 0.242", "0.354 / 0.693 / 0.317", "-"),
}


def object_split(instance: np.ndarray, per_category: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) over object views: probes train on half the held-out
    instances of each category and are tested on the others (unseen instances)."""
    index = instance % per_category
    order = np.unique(index)
    train_idx = set(order[: len(order) // 2].tolist())
    train = np.isin(index, list(train_idx))
    return train, ~train


def scene_split(scene_id: np.ndarray, scene_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) masks over scene frames: the first half of each class's rooms train, the rest test."""
    train = np.zeros(len(scene_id), bool)
    for c in np.unique(scene_class):
        rooms = list(dict.fromkeys(scene_id[scene_class == c].tolist()))
        train |= (scene_class == c) & np.isin(scene_id, rooms[: max(1, len(rooms) // 2)])
    return train, ~train


def evaluate_embeddings(
    obj: torch.Tensor, objects: dict[str, np.ndarray], scn: torch.Tensor, scenes: dict[str, np.ndarray], draws: int = 5
) -> dict[str, Any]:
    """All metrics for one encoder. obj: (N_o, D), scn: (N_s, D) embeddings of the two benchmark sets."""
    dev = obj.device
    inst = torch.as_tensor(objects["instance"], device=dev)
    cat = torch.as_tensor(objects["category"], device=dev)
    res: dict[str, Any] = {
        "instance_recall": recall_at_k(obj, inst, KS),
        "category_recall": recall_at_k(obj, cat, KS),
    }
    tr, te = (torch.as_tensor(m, device=dev) for m in object_split(objects["instance"]))
    res["category_linear"] = linear_probe(obj[tr], cat[tr], obj[te], cat[te])
    res["category_knn"] = knn_accuracy(obj[tr], cat[tr], obj[te], cat[te])
    res["category_few_shot"] = few_shot(obj[tr], cat[tr], obj[te], cat[te], SHOTS, draws)
    sdev = scn.device
    sc = torch.as_tensor(scenes["scene_class"], device=sdev)
    tr, te = (torch.as_tensor(m, device=sdev) for m in scene_split(scenes["scene_id"], scenes["scene_class"]))
    res["scene_linear"] = linear_probe(scn[tr], sc[tr], scn[te], sc[te])
    res["scene_knn"] = knn_accuracy(scn[tr], sc[tr], scn[te], sc[te])
    res["scene_few_shot"] = few_shot(scn[tr], sc[tr], scn[te], sc[te], SHOTS, draws)
    return res


def retrieval_grid(
    images: np.ndarray, emb: torch.Tensor, labels: np.ndarray, path: Path, queries: int = 8, k: int = 5, seed: int = 0
) -> Path:
    """PNG: each row a query then its top-k neighbours, framed green (same label) or red."""
    import cv2

    rng = np.random.default_rng(seed)
    q = rng.choice(len(images), size=min(queries, len(images)), replace=False)
    nn_idx = topk_neighbours(emb, k).cpu().numpy()
    size = 96
    pad = 4

    def tile(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
        big = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
        return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=color)

    rows = []
    for i in q:
        cells = [tile(images[i], (255, 255, 255)), np.full((size + 2 * pad, 12, 3), 255, np.uint8)]
        cells += [tile(images[j], (40, 200, 40) if labels[j] == labels[i] else (220, 40, 40)) for j in nn_idx[i]]
        rows.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(rows, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid[..., ::-1])
    return path


def embedding_plot(embs: dict[str, torch.Tensor], labels: np.ndarray, names: list[str], path: Path) -> Path:
    """PCA of each encoder's object embeddings, coloured by category, one panel per encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(embs), figsize=(4.2 * len(embs), 4.2), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, (name, z) in zip(axes[0], embs.items(), strict=True):
        x = z.double().cpu()
        x = x - x.mean(0)
        _, _, v = torch.pca_lowrank(x, q=2, center=False)
        p2 = (x @ v[:, :2]).numpy()
        for c in np.unique(labels):
            m = labels == c
            ax.scatter(p2[m, 0], p2[m, 1], s=8, color=cmap(int(c) % 20), label=names[int(c)])
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("object embeddings (PCA), coloured by category")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return f"{v[0]:.3f} ± {v[1]:.3f}"
    return f"{v:.3f}"


def _paired_table(
    results: dict[str, dict[str, Any]], keys: tuple[str, str], headers: tuple[str, str], columns: Sequence[int]
) -> list[str]:
    """Markdown rows: one per encoder, ``columns`` of ``results[name][keys[0]]`` then of ``keys[1]``."""
    head = [h.format(c) for h in headers for c in columns]
    rows = ["| encoder | " + " | ".join(head) + " |", "|---" * (1 + len(head)) + "|"]
    for name, r in results.items():
        rows.append(f"| {name} | " + " | ".join(_fmt(r[key][c]) for key in keys for c in columns) + " |")
    return rows


def headline(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """One flat {metric: value} per encoder, for comparisons against ``random``."""
    out = {}
    for name, r in results.items():
        row = {f"instance R@{k}": r["instance_recall"][k] for k in KS}
        row.update({f"category R@{k}": r["category_recall"][k] for k in KS})
        for key in ("category_linear", "category_knn", "scene_linear", "scene_knn"):
            row[key.replace("_", " ")] = r[key]
        for kind in ("category", "scene"):
            row.update({f"{kind} {n}-shot": r[f"{kind}_few_shot"][n][0] for n in SHOTS})
        out[name] = row
    return out


def verdicts(results: dict[str, dict[str, Any]]) -> list[str]:
    """One line per trained encoder: the metrics on which it beats the untrained ``random`` trunk."""
    if "random" not in results:
        return []
    flat = headline(results)
    lines = []
    for name, row in flat.items():
        if name == "random":
            continue
        better = [m for m, v in row.items() if v > flat["random"][m]]
        lines.append(
            f"- **{name}** beats random on {len(better)} of {len(row)} metrics"
            + (f": {', '.join(better)}" if better else " (on none: no gain at this size)")
        )
    return lines


def markdown(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    """report.md text: retrieval (Table 2 shape), classification (Table 1 shape), few-shot."""
    lines = ["# Evaluation report", ""]
    lines += [
        f"Benchmark: {meta['objects']} views of held-out object instances, {meta['scenes']} ego-motion "
        f"frames of unseen rooms ({meta['size']} set). Device: {meta['device']}.",
        "",
    ]
    summary = verdicts(results)
    if summary:
        lines += ["## Against the untrained trunk", "", *summary, ""]
    lines += ["## Retrieval (Recall@k, cosine, query excluded)", ""]
    lines += _paired_table(results, ("instance_recall", "category_recall"), ("inst R@{}", "cat R@{}"), KS)
    lines += [
        "",
        "## Classification (frozen embeddings; probes trained on other instances / rooms)",
        "",
        "| encoder | category linear | category kNN | scene linear | scene kNN |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_fmt(r['category_linear'])} | {_fmt(r['category_knn'])} | "
            f"{_fmt(r['scene_linear'])} | {_fmt(r['scene_knn'])} |"
        )
    lines += ["", "## Few-shot (linear probe, n labelled examples per class, mean ± std over draws)", ""]
    lines += _paired_table(
        results, ("category_few_shot", "scene_few_shot"), ("category {}-shot", "scene {}-shot"), SHOTS
    )
    lines += [
        "",
        "## For orientation: the Curious Robot paper's real-robot numbers (not ours, not simulation)",
        "",
        "| metric | random init | robot-trained | ImageNet AlexNet |",
        "|---|---|---|---|",
    ]
    for metric, vals in PAPER.items():
        lines.append(f"| {metric} | " + " | ".join(str(v) for v in vals) + " |")
    lines += ["", "## Pictures", ""]
    for name in results:
        lines.append(f"- `{meta['grids'][name]}`: {name}, instance retrieval (green = same instance)")
    lines.append(f"- `{meta['plot']}`: embeddings coloured by category")
    for curve in meta.get("curves", []):
        lines.append(f"- `{curve}`: training loss")
    return "\n".join(lines) + "\n"


def write_json(results: dict[str, dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, tuple):
            return {"mean": x[0], "std": x[1]}
        return x

    path.write_text(json.dumps({"meta": meta, "results": clean(results)}, indent=1))
