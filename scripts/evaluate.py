#!/usr/bin/env python
"""Evaluate trained encoders beside floors and a supervised ceiling; write a report.

    python scripts/evaluate.py --ckpt runs/equivariant runs/curious --out runs/report
    python scripts/evaluate.py --ckpt runs/*/checkpoint.pt --full          # the full-size sets

Every encoder is scored on the same held-out images: the object sets `centric`, `shape`,
`context` and the `scenes` set, beside the floors (8x8 pixels, colour histogram, the untrained
`random` trunk) and the category ceiling (`supervised (category)`, trained here on views of
train instances unless --no-ceiling; cached in <out>/ceiling). Writes report.md, report.json,
a bar chart and a retrieval grid per set, and copies of the training loss curves into --out.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from embodied.cli import ArgumentParser, UserError, catch_user_errors, nonnegative_int, positive_int, run

TREND_KEYS = ("val/equivariance_gain",)  # logged held-out numbers whose trend the report states


def _name(enc: torch.nn.Module, path: Path) -> str:
    agent = enc.meta.get("agent", path.stem)
    label = enc.meta.get("options", {}).get("label")
    return f"{agent} ({label})" if agent == "supervised" and label else agent


def _device(name: str | None) -> torch.device:
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


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    from embodied.eval.sets import SETS

    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", nargs="*", default=[], type=Path, help="checkpoint files or run directories")
    ap.add_argument("--out", type=Path, default=Path("runs/report"), help="report directory (default: runs/report)")
    ap.add_argument("--full", action="store_true", help="the full-size sets (default: the small ones)")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help=f"sets (default: {' '.join(SETS)})")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--draws", type=positive_int, default=5, help="few-shot draws per setting (default: 5)")
    ap.add_argument("--no-floors", action="store_true", help="leave out pixels, colour histogram and random")
    ap.add_argument("--no-ceiling", action="store_true", help="do not train / score the category ceiling")
    ap.add_argument("--ceiling-steps", type=nonnegative_int, help="ceiling training steps (default: by size)")
    args = ap.parse_args(argv)

    from embodied.encoder import load_encoder
    from embodied.eval.ceiling import train_ceiling
    from embodied.eval.embed import embed
    from embodied.eval.floors import floors
    from embodied.eval.metrics import score_objects, score_scenes
    from embodied.eval.report import Summary, bar_chart, markdown, order, retrieval_grid, slug, trend, write_json
    from embodied.eval.sets import describe, load_set
    from embodied.metrics_log import read_metrics

    device = _device(args.device)
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", args.out, "a directory (it is a file)")
    encoders: dict[str, tuple[torch.nn.Module, Path | None]] = {}
    for path in args.ckpt:
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
    if not encoders and args.no_floors and args.no_ceiling:
        raise UserError("--ckpt", "(none)", "a checkpoint, or floors or the ceiling (drop --no-floors / --no-ceiling)")
    trunk = next(iter(encoders.values()))[0].config.to_dict() if encoders else None
    if not args.no_floors:
        encoders.update({n: (f, None) for n, f in floors().items()})
        encoders["random"] = (load_encoder("random", device=device, trunk=trunk), None)
    size = "full" if args.full else "small"
    if not args.no_ceiling:
        dev = "cuda" if device.type == "cuda" else "cpu"
        ckpt = train_ceiling(args.out / "ceiling", size, args.ceiling_steps, device=dev, trunk=trunk)
        encoders["supervised (category)"] = (load_encoder(ckpt, device=device), args.out / "ceiling")
    sets = {name: load_set(name, size) for name in args.sets}
    args.out.mkdir(parents=True, exist_ok=True)
    scores: dict = {name: {} for name in sets}
    embs: dict = {name: {} for name in sets}
    seconds: dict[str, float] = {}
    for enc_name in order(list(encoders)):
        enc, _ = encoders[enc_name]
        t = time.perf_counter()
        for set_name, data in sets.items():
            z = embed(enc, data["images"], progress=True, desc=f"{enc_name}: {set_name}")
            score = score_scenes if set_name == "scenes" else score_objects
            scores[set_name][enc_name] = score(z, data, args.draws)
            embs[set_name][enc_name] = z
        seconds[enc_name] = round(time.perf_counter() - t, 2)
    summary = Summary(scores)
    pictures: dict[str, list[str]] = {}
    for set_name, data in sets.items():
        pics = [bar_chart(summary, set_name, args.out / f"bars_{set_name}.png").name]
        labels = data["scene_class"] if set_name == "scenes" else data["instance"]
        grid = retrieval_grid(data["images"], embs[set_name], labels, args.out / f"retrieval_{set_name}.png")
        pictures[set_name] = [*pics, grid.name]
    curves = []
    for name, (_, path) in encoders.items():
        if path is not None:
            curve = (path if path.is_dir() else path.parent) / "loss_curve.png"
            if curve.exists():
                shutil.copy(curve, args.out / f"loss_{slug(name)}.png")
                curves.append(f"loss_{slug(name)}.png")
    trends: dict[str, dict[str, dict[str, float]]] = {}
    for name, (_, path) in encoders.items():
        log = None if path is None else (path if path.is_dir() else path.parent) / "metrics.jsonl"
        if log is not None and log.exists():
            rows = read_metrics(log)
            found = {k: trend(rows, k) for k in TREND_KEYS}
            if any(found.values()):
                trends[name] = {k: iv.to_dict() for k, iv in found.items() if iv is not None}
    meta = {
        "trends": trends,
        "size": size,
        "device": str(device),
        "sets": {name: describe(name, data) for name, data in sets.items()},
        "eval_seconds": seconds,
        "pictures": pictures,
        "curves": curves,
        "encoders": {n: (str(p) if p else "built-in") for n, (_, p) in encoders.items()},
        "training": {
            n: {k: v for k, v in enc.meta["metrics"].items() if k == "step" or k.startswith("val/")}
            for n, (enc, _) in encoders.items()
            if any(k.startswith("val/") for k in getattr(enc, "meta", {}).get("metrics", {}))
        },
    }
    (args.out / "report.md").write_text(markdown(summary, meta))
    write_json(summary, meta, args.out / "report.json")
    print((args.out / "report.md").read_text())
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
