#!/usr/bin/env python
"""Export a collected dataset to another format.

python scripts/export.py --format minari --data data/ego --id embodied/ego-room-v0 --out exports/
MINARI_DATASETS_PATH=exports python -c "import minari; print(minari.load_dataset('embodied/ego-room-v0'))"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embodied.data.export import export_minari  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", choices=["minari"], default="minari", help="target format (default: minari)")
    ap.add_argument("--data", type=Path, required=True, help="collected dataset directory")
    ap.add_argument("--id", required=True, help='Minari dataset id, "namespace/name-v0"')
    ap.add_argument("--out", type=Path, default=None, help="MINARI_DATASETS_PATH (default: Minari's own)")
    args = ap.parse_args(argv)
    try:
        ds = export_minari(args.data, args.id, args.out)
    except (ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote Minari dataset {args.id}: {ds.total_episodes} episodes, {ds.total_steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
