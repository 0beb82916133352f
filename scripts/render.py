#!/usr/bin/env python
"""Roll out a policy in an env and write an annotated video (observation | third-person view).

python scripts/render.py --env ego_room --policy explore --steps 200 --out runs/ego.mp4
python scripts/render.py --env grasp --policy informed --episodes 20 --out runs/grasp.gif --fps 4
python scripts/render.py --env reach --model runs/rl/model.zip --episodes 5 --out runs/reach.mp4
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--env", default="ego_room", help="env preset name (envs/*.toml) or registered id (default: ego_room)"
    )
    ap.add_argument("--policy", default=None, help="random | explore | informed (default: the preset's policy)")
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a saved Stable-Baselines3 model (model.zip or its run directory) to roll out",
    )
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="env steps to record (default: 100)")
    length.add_argument("--episodes", type=int, default=None, help="whole episodes to record")
    ap.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    ap.add_argument("--size", type=int, default=None, help="pixels of the third-person view (default: the env's)")
    ap.add_argument("--fps", type=int, default=10, help="frames per second (default: 10)")
    ap.add_argument("--out", type=Path, default=Path("runs/rollout.mp4"), help=".mp4 or .gif path")
    args = ap.parse_args(argv)
    if args.steps is None and args.episodes is None:
        args.steps = 100
    for name in ("steps", "episodes", "size", "fps"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            ap.error(f"--{name}={value}; expected a positive number")
    from embodied.envs.registry import resolve

    try:
        preset = resolve(args.env)
    except ValueError as e:
        ap.error(str(e))
    extra = {} if args.size is None else {"render_size": args.size}
    env = make(args.env, render_mode="rgb_array", **extra)
    try:
        if args.model is not None:
            from embodied.agents.sb3 import load_sb3_policy

            policy = load_sb3_policy(args.model)
        else:
            policy = make_policy(args.policy or preset.policy, env)
        frames = rollout(env, policy, steps=args.steps, episodes=args.episodes, seed=args.seed)
    finally:
        env.close()
    path = write_video(frames, args.out, fps=args.fps)
    print(f"wrote {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} to {path}")
    return path


if __name__ == "__main__":
    main()
