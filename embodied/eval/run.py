"""One evaluation run: encoders beside floors and the category ceiling, scored and reported.

What ``scripts/evaluate.py`` calls (its flags are this function's arguments)::

    evaluate([Path("runs/equivariant"), Path("runs/curious")], Path("runs/report"))
    evaluate([], Path("runs/floors"), sets=["shape"], draws=1, ceiling=False)

Bad inputs raise :class:`embodied.cli.UserError` naming the flag of ``scripts/evaluate.py``
(``--ckpt``, ``--out``, ``--device``), before any work starts.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from embodied.cli import UserError
from embodied.encoder import load_encoder
from embodied.eval.ceiling import train_ceiling
from embodied.eval.embed import embed
from embodied.eval.floors import floors as floor_encoders
from embodied.eval.metrics import score_objects, score_scenes
from embodied.eval.report import Summary, bar_chart, markdown, order, retrieval_grid, slug, trend, write_json
from embodied.eval.sets import SETS, describe, load_set
from embodied.metrics_log import read_metrics

TREND_KEYS = ("val/equivariance_gain",)  # logged held-out numbers whose trend the report states

#: encoder name -> (encoder, the checkpoint file or run directory it came from; None when built in)
Encoders = dict[str, tuple[torch.nn.Module, Path | None]]


def _name(enc: torch.nn.Module, path: Path) -> str:
    agent = enc.meta.get("agent", path.stem)
    label = enc.meta.get("options", {}).get("label")
    return f"{agent} ({label})" if agent == "supervised" and label else agent


def pick_device(name: str | None) -> torch.device:
    """``--device``: cuda when available for None, else the named cpu / cuda / cuda:N (a UserError if not)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError("--device", name, "cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device", name, "cpu (no CUDA device is available here)")
    if device.type not in ("cpu", "cuda"):
        raise UserError("--device", name, "cpu, cuda or cuda:N")
    return device


def load_checkpoints(paths: Sequence[Path], device: torch.device) -> Encoders:
    """``--ckpt``: each checkpoint file or run directory as a named encoder (a UserError if unreadable)."""
    encoders: Encoders = {}
    for path in paths:
        if not path.exists():
            raise UserError("--ckpt", path, "an existing checkpoint file or run directory")
        if path.is_dir() and not (path / "checkpoint.pt").exists():
            raise UserError("--ckpt", path, "a run directory holding checkpoint.pt (this one has none)")
        try:
            enc = load_encoder(path, device=device)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets one clear line
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise UserError("--ckpt", path, f"a readable checkpoint ({type(e).__name__}: {first})") from None
        name = _name(enc, path)
        encoders[name if name not in encoders else f"{name} ({path})"] = (enc, path)
    return encoders


def score_all(encoders: Encoders, sets: dict[str, dict], draws: int) -> tuple[dict, dict, dict[str, float]]:
    """Every encoder on every set: (scores, embeddings, seconds per encoder), both by set then encoder."""
    scores: dict = {name: {} for name in sets}
    embs: dict = {name: {} for name in sets}
    seconds: dict[str, float] = {}
    for enc_name in order(list(encoders)):
        enc, _ = encoders[enc_name]
        t = time.perf_counter()
        for set_name, data in sets.items():
            z = embed(enc, data["images"], progress=True, desc=f"{enc_name}: {set_name}")
            score = score_scenes if set_name == "scenes" else score_objects
            scores[set_name][enc_name] = score(z, data, draws)
            embs[set_name][enc_name] = z
        seconds[enc_name] = round(time.perf_counter() - t, 2)
    return scores, embs, seconds


def pictures(summary: Summary, sets: dict[str, dict], embs: dict, out: Path) -> dict[str, list[str]]:
    """A bar chart and a retrieval grid per set in ``out``: set -> their file names."""
    pics: dict[str, list[str]] = {}
    for set_name, data in sets.items():
        bars = bar_chart(summary, set_name, out / f"bars_{set_name}.png").name
        labels = data["scene_class"] if set_name == "scenes" else data["instance"]
        grid = retrieval_grid(data["images"], embs[set_name], labels, out / f"retrieval_{set_name}.png")
        pics[set_name] = [bars, grid.name]
    return pics


def _run_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def copy_curves(encoders: Encoders, out: Path) -> list[str]:
    """The training loss curves of the encoders' runs copied into ``out``: their file names."""
    curves = []
    for name, (_, path) in encoders.items():
        if path is not None:
            curve = _run_dir(path) / "loss_curve.png"
            if curve.exists():
                shutil.copy(curve, out / f"loss_{slug(name)}.png")
                curves.append(f"loss_{slug(name)}.png")
    return curves


def trends(encoders: Encoders) -> dict[str, dict[str, dict[str, float]]]:
    """Encoder -> the trend of each logged ``TREND_KEYS`` number in its run's metrics.jsonl (where any)."""
    found_all: dict[str, dict[str, dict[str, float]]] = {}
    for name, (_, path) in encoders.items():
        log = None if path is None else _run_dir(path) / "metrics.jsonl"
        if log is not None and log.exists():
            rows = read_metrics(log)
            found = {k: trend(rows, k) for k in TREND_KEYS}
            if any(found.values()):
                found_all[name] = {k: iv.to_dict() for k, iv in found.items() if iv is not None}
    return found_all


def training_numbers(encoders: Encoders) -> dict[str, dict[str, Any]]:
    """Encoder -> its checkpoint's step and held-out (``val/``) training metrics, where it logged any."""
    return {
        n: {k: v for k, v in enc.meta["metrics"].items() if k == "step" or k.startswith("val/")}
        for n, (enc, _) in encoders.items()
        if any(k.startswith("val/") for k in getattr(enc, "meta", {}).get("metrics", {}))
    }


def evaluate(
    ckpts: Sequence[Path],
    out: Path,
    *,
    full: bool = False,
    sets: Sequence[str] = SETS,
    device: str | None = None,
    draws: int = 5,
    floors: bool = True,
    ceiling: bool = True,
    ceiling_steps: int | None = None,
) -> dict[str, Any]:
    """Score ``ckpts`` (plus the floors and the category ceiling) on ``sets``; write the report into
    ``out`` (report.md, report.json, bar charts, retrieval grids, loss curves) and print report.md.
    Returns the report's metadata (sets, pictures, timings, encoders...)."""
    dev = pick_device(device)
    if out.exists() and not out.is_dir():
        raise UserError("--out", out, "a directory (it is a file)")
    encoders = load_checkpoints(ckpts, dev)
    if not encoders and not floors and not ceiling:
        raise UserError("--ckpt", "(none)", "a checkpoint, or floors or the ceiling (drop --no-floors / --no-ceiling)")
    trunk = next(iter(encoders.values()))[0].config.to_dict() if encoders else None
    if floors:
        encoders.update({n: (f, None) for n, f in floor_encoders().items()})
        encoders["random"] = (load_encoder("random", device=dev, trunk=trunk), None)
    size = "full" if full else "small"
    if ceiling:
        on = "cuda" if dev.type == "cuda" else "cpu"
        ckpt = train_ceiling(out / "ceiling", size, ceiling_steps, device=on, trunk=trunk)
        encoders["supervised (category)"] = (load_encoder(ckpt, device=dev), out / "ceiling")
    images = {name: load_set(name, size) for name in sets}
    out.mkdir(parents=True, exist_ok=True)
    scores, embs, seconds = score_all(encoders, images, draws)
    summary = Summary(scores)
    pics, curves, found = pictures(summary, images, embs, out), copy_curves(encoders, out), trends(encoders)
    meta = {
        "trends": found,
        "size": size,
        "device": str(dev),
        "sets": {name: describe(name, data) for name, data in images.items()},
        "eval_seconds": seconds,
        "pictures": pics,
        "curves": curves,
        "encoders": {n: (str(p) if p else "built-in") for n, (_, p) in encoders.items()},
        "training": training_numbers(encoders),
    }
    (out / "report.md").write_text(markdown(summary, meta))
    write_json(summary, meta, out / "report.json")
    print((out / "report.md").read_text())
    print(f"report written to {out}")
    return meta
