#!/usr/bin/env python
"""The main job, small by default: what `make demo` runs.

Today: roll out the exploration policy in the ego-motion env and write the
egocentric + overview video. Later stages (collect -> train -> evaluate ->
report) join here as they land.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import render  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
    ap.add_argument("--steps", type=int, default=150, help="ego-motion rollout length")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    video = render.main(
        [
            "--env",
            "ego_room",
            "--policy",
            "explore",
            "--steps",
            str(args.steps),
            "--out",
            str(args.out / "ego_room.mp4"),
        ]
    )
    print(f"demo done: {video}")


if __name__ == "__main__":
    main()
