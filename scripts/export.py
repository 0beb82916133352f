#!/usr/bin/env python
"""Export a collected dataset to another format.

python scripts/export.py --format minari --data data/ego --id embodied/ego-room-v0 --out exports/
MINARI_DATASETS_PATH=exports python -c "import minari; print(minari.load_dataset('embodied/ego-room-v0'))"
"""

from __future__ import annotations

import re
from pathlib import Path

from embodied.cli import ArgumentParser, UserError, catch_user_errors, run
from embodied.data.manifest import load_manifest

DATASET_ID = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+-v\d+$")


def check_inputs(data: Path, dataset_id: str, out: Path | None) -> None:
    """Every input checked before anything is read or written (one-line UserError)."""
    if not data.exists():
        raise UserError("--data", data, "an existing dataset directory (it does not exist)")
    if not data.is_dir():
        raise UserError("--data", data, "a dataset directory (it is a file)")
    try:
        manifest = load_manifest(data)
    except ValueError as e:
        raise UserError("--data", data, f"a dataset directory from scripts/collect.py ({e})") from None
    if not manifest.get("complete"):
        raise UserError("--data", data, "a complete dataset (finish it with scripts/collect.py --resume)")
    if not DATASET_ID.match(dataset_id):
        raise UserError("--id", dataset_id, 'a Minari dataset id "namespace/name-v<N>", e.g. embodied/ego-room-v0')
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UserError("--out", out, "a directory (it is a file)")
        if (out / dataset_id).exists():
            raise UserError("--id", dataset_id, f"an id not yet in {out} (that dataset exists)")


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--format", choices=["minari"], default="minari", help="target format (default: minari)")
    ap.add_argument("--data", type=Path, required=True, help="collected dataset directory")
    ap.add_argument("--id", required=True, help='Minari dataset id, "namespace/name-v0"')
    ap.add_argument("--out", type=Path, default=None, help="MINARI_DATASETS_PATH (default: Minari's own)")
    args = ap.parse_args(argv)
    check_inputs(args.data, args.id, args.out)
    try:
        import minari  # noqa: F401
    except ImportError:
        raise UserError("--format", "minari", "an installed format: pip install 'embodied[minari]'") from None
    from embodied.data.export import export_minari

    ds = export_minari(args.data, args.id, args.out)
    print(f"wrote Minari dataset {args.id}: {ds.total_episodes} episodes, {ds.total_steps} steps")
    return 0


if __name__ == "__main__":
    run(main)
