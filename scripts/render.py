#!/usr/bin/env python
"""Roll out a policy in an env and write an annotated video (observation | third-person view).

python scripts/render.py --env ego_room --policy explore --steps 200 --out runs/ego.mp4
python scripts/render.py --env grasp --policy informed --episodes 20 --out runs/grasp.gif --fps 4
python scripts/render.py --env reach --model runs/rl/model.zip --episodes 5 --out runs/reach.mp4
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embodied.cli import ArgumentParser, UserError, catch_user_errors, nonnegative_int, positive_int, run
from embodied.collect.policies import NAMES, make_policy
from embodied.envs import make
from embodied.envs.registry import PRESETS, resolve
from embodied.video import rollout, write_video


def load_model(path: Path) -> Any:
    """``--model``: the policy of a saved SB3 model.zip or of the run directory holding one."""
    zip_path = path / "model.zip" if path.is_dir() else path
    if not zip_path.is_file():
        raise UserError("--model", path, "a saved SB3 model.zip or a run directory holding one (not found)")
    from embodied.rl import load_sb3_policy

    try:
        return load_sb3_policy(zip_path)
    except (ValueError, KeyError, OSError) as e:  # a zip that is not an SB3 model
        raise UserError("--model", path, f"a saved SB3 model.zip ({' '.join(str(e).split())})") from None


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__)
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
    length.add_argument("--steps", type=positive_int, default=None, help="env steps to record (default: 100)")
    length.add_argument("--episodes", type=positive_int, default=None, help="whole episodes to record")
    ap.add_argument("--seed", type=nonnegative_int, default=0, help="episode seed (default: 0)")
    ap.add_argument(
        "--size", type=positive_int, default=None, help="pixels of the third-person view (default: the env's)"
    )
    ap.add_argument("--fps", type=positive_int, default=10, help="frames per second (default: 10)")
    ap.add_argument("--out", type=Path, default=Path("runs/rollout.mp4"), help=".mp4 or .gif path")
    args = ap.parse_args(argv)
    if args.steps is None and args.episodes is None:
        args.steps = 100
    # every input checked before the rollout
    try:
        preset = resolve(args.env)
    except ValueError:
        raise UserError("--env", args.env, f"an env preset ({', '.join(sorted(PRESETS))}) or a registered id") from None
    if args.policy is not None and args.policy not in NAMES:
        raise UserError("--policy", args.policy, f"one of {', '.join(NAMES)}")
    if args.out.suffix not in (".mp4", ".gif"):
        raise UserError("--out", args.out, "a .mp4 or .gif file name")
    if args.out.is_dir():
        raise UserError("--out", args.out, "a video file name (it is a directory)")
    model = None if args.model is None else load_model(args.model)
    extra = {} if args.size is None else {"render_size": args.size}
    try:
        env = make(args.env, render_mode="rgb_array", **extra)
    except ValueError as e:
        raise UserError("--size" if extra else "--env", args.size if extra else args.env, str(e)) from None
    try:
        if model is not None:
            policy = model
        else:
            try:
                policy = make_policy(args.policy or preset.policy, env)
            except (ValueError, TypeError) as e:
                raise UserError("--policy", args.policy or preset.policy, f"a policy for {preset.name} ({e})") from None
        frames = rollout(env, policy, steps=args.steps, episodes=args.episodes, seed=args.seed)
    finally:
        env.close()
    path = write_video(frames, args.out, fps=args.fps)
    print(f"wrote {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} to {path}")
    return 0


if __name__ == "__main__":
    run(main)
