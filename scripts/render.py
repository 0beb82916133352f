#!/usr/bin/env python
"""Roll out a scripted policy in an env and write the rendered frames to a video.

python scripts/render.py --env ego_room --policy explore --steps 200 --out runs/ego.mp4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embodied.collect.policies import make_policy  # noqa: E402
from embodied.envs import make  # noqa: E402
from embodied.video import rollout, write_video  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--env", default="ego_room", help="env preset name (envs/*.toml) or registered id")
    ap.add_argument("--policy", default="explore", help="random | explore | informed")
    ap.add_argument("--steps", type=int, default=200, help="env steps to record")
    ap.add_argument("--seed", type=int, default=0, help="episode seed")
    ap.add_argument("--render-size", type=int, default=None, help="pixels of the rendered view (env default)")
    ap.add_argument("--fps", type=int, default=10, help="frames per second of the video")
    ap.add_argument("--out", type=Path, default=Path("runs/rollout.mp4"), help=".mp4 or .gif path")
    args = ap.parse_args(argv)
    if args.steps <= 0:
        ap.error(f"--steps={args.steps}; expected a positive number of steps")
    extra = {} if args.render_size is None else {"render_size": args.render_size}
    env = make(args.env, render_mode="rgb_array", **extra)
    try:
        frames = rollout(env, make_policy(args.policy, env), args.steps, seed=args.seed)
    finally:
        env.close()
    path = write_video(frames, args.out, fps=args.fps)
    print(f"wrote {len(frames)} frames to {path}")
    return path


if __name__ == "__main__":
    main()
