#!/usr/bin/env python
"""Evaluate trained encoders against the untrained `random` baseline; write a report.

    python scripts/evaluate.py --ckpt runs/equivariant runs/curious --out runs/report
    python scripts/evaluate.py --ckpt runs/*/checkpoint.pt --full          # the large benchmark

Writes report.md (tables: rows = encoders), report.json, retrieval grids,
an embedding plot and copies of the training loss curves into --out.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", nargs="*", default=[], type=Path, help="checkpoint files or run directories")
    ap.add_argument("--out", type=Path, default=Path("runs/report"), help="report directory (default: runs/report)")
    ap.add_argument("--full", action="store_true", help="the large benchmark (default: the small one)")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--draws", type=int, default=5, help="few-shot draws per setting (default: 5)")
    ap.add_argument("--no-random", action="store_true", help="leave out the random baseline (default: include)")
    args = ap.parse_args(argv)

    from embodied.collect.benchmark import load_benchmark
    from embodied.encoder import load_encoder
    from embodied.eval.embed import embed
    from embodied.eval.report import embedding_plot, evaluate_embeddings, markdown, retrieval_grid, write_json
    from embodied.sim.objects import CATEGORIES

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoders = {}
    for path in args.ckpt:
        if not path.exists():
            print(f"error: checkpoint {path} does not exist", file=sys.stderr)
            return 2
        try:
            enc = load_encoder(path, device=device)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets one clear line
            print(f"error: cannot load an encoder from {path}: {e}", file=sys.stderr)
            return 2
        name = enc.meta.get("agent", path.stem)
        encoders[name if name not in encoders else f"{name} ({path})"] = (enc, path)
    if not args.no_random:
        trunk = next(iter(encoders.values()))[0].config.to_dict() if encoders else None
        encoders = {"random": (load_encoder("random", device=device, trunk=trunk), None), **encoders}
    if not encoders:
        print("error: nothing to evaluate (no --ckpt and --no-random)", file=sys.stderr)
        return 2

    size = "full" if args.full else "small"
    objects = load_benchmark("objects", size)
    scenes = load_benchmark("scenes", size)
    args.out.mkdir(parents=True, exist_ok=True)
    results, obj_embs, grids, curves = {}, {}, {}, []
    for name, (enc, path) in encoders.items():
        obj = embed(enc, objects["images"], progress=True, desc=f"{name}: objects")
        scn = embed(enc, scenes["images"], progress=True, desc=f"{name}: scenes")
        results[name] = evaluate_embeddings(obj, objects, scn, scenes, draws=args.draws)
        obj_embs[name] = obj
        slug = name.replace(" ", "_").replace("/", "_").replace("(", "").replace(")", "")
        grids[name] = retrieval_grid(
            objects["images"], obj, objects["instance"], args.out / f"retrieval_{slug}.png"
        ).name
        if path is not None:
            curve = (path if path.is_dir() else path.parent) / "loss_curve.png"
            if curve.exists():
                shutil.copy(curve, args.out / f"loss_{slug}.png")
                curves.append(f"loss_{slug}.png")
    plot = embedding_plot(obj_embs, objects["category"], list(CATEGORIES), args.out / "embeddings_pca.png").name
    meta = {
        "size": size,
        "device": str(device),
        "objects": len(objects["images"]),
        "scenes": len(scenes["images"]),
        "grids": grids,
        "plot": plot,
        "curves": curves,
        "encoders": {n: (str(p) if p else "untrained") for n, (_, p) in encoders.items()},
    }
    (args.out / "report.md").write_text(markdown(results, meta))
    write_json(results, meta, args.out / "report.json")
    print((args.out / "report.md").read_text())
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
