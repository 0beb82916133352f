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

from pathlib import Path

from embodied.cli import ArgumentParser, catch_user_errors, nonnegative_int, positive_int, run
from embodied.eval.sets import SETS


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
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

    from embodied.eval.run import evaluate  # after parsing: --help and bad flags need no torch models

    evaluate(
        args.ckpt,
        args.out,
        full=args.full,
        sets=args.sets,
        device=args.device,
        draws=args.draws,
        floors=not args.no_floors,
        ceiling=not args.no_ceiling,
        ceiling_steps=args.ceiling_steps,
    )
    return 0


if __name__ == "__main__":
    run(main)
