#!/usr/bin/env python
"""Collect episodes from an environment into a sharded, resumable, verifiable dataset.

    python scripts/collect.py --env ego_room --episodes 100 --out data/ego
    python scripts/collect.py --env grasp --episodes 5000 --policy informed --out data/grasp --workers 2
    python scripts/collect.py --env ego_room --episodes 100 --out data/ego --resume   # after a crash
    python scripts/collect.py --verify data/ego

Episode i is produced from seed S + i whatever the worker count or backend, so
the same command gives bit-identical shards. Shards are written under a
temporary name and renamed when complete; a killed collector loses at most the
shards in flight and --resume finishes the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embodied.cli import (  # noqa: E402
    ArgumentParser,
    UserError,
    catch_user_errors,
    nonnegative_int,
    positive_float,
    positive_int,
    run,
)
from embodied.collect.backends import CollectionError, default_workers  # noqa: E402
from embodied.collect.runner import RequestError, collect, preflight, verify  # noqa: E402
from embodied.envs.registry import PRESETS  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--env", help=f"env preset name or registered id; presets: {', '.join(sorted(PRESETS))}")
    ap.add_argument("--episodes", type=positive_int, default=10, help="number of episodes (default: 10)")
    ap.add_argument("--out", type=Path, help="dataset directory (must be empty unless --resume)")
    ap.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help=f"parallel worker processes (default: one per core, here {default_workers()})",
    )
    ap.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed S of episode 0; episode i uses S + i (default: 0)"
    )
    ap.add_argument("--policy", default=None, help="random | informed | explore (default: the preset's policy)")
    ap.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="steps per episode (default: the preset's max_episode_steps)",
    )
    ap.add_argument(
        "--episodes-per-shard",
        type=positive_int,
        default=None,
        help="episodes in one shard file (default: about 1000 frames per shard)",
    )
    ap.add_argument("--resume", action="store_true", help="continue the collection in --out (default: off)")
    ap.add_argument(
        "--backend", choices=["local", "ray"], default="local", help="local process pool or Ray actors (default: local)"
    )
    ap.add_argument("--ray-address", default=None, help="Ray cluster address for --backend ray (default: local Ray)")
    ap.add_argument(
        "--episode-timeout",
        type=positive_float,
        default=120.0,
        help="seconds before an episode counts as hung and is retried with the next seed (default: 120)",
    )
    ap.add_argument(
        "--max-retries",
        type=nonnegative_int,
        default=3,
        help="retries (next seed) for an invalid or hung episode before it is discarded (default: 3)",
    )
    ap.add_argument(
        "--compression",
        choices=["lzf", "gzip"],
        default=None,
        help="HDF5 compression of image chunks (default: none, fastest reads)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override an env kwarg of the preset, e.g. --set size=128 (repeatable)",
    )
    ap.add_argument("--verify", type=Path, metavar="DIR", help="re-hash every shard of DIR and report problems")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.verify is None:
        for name in ("env", "out"):
            if getattr(args, name) is None:
                raise UserError(f"--{name}", "(missing)", "a value: --env and --out are required (or --verify DIR)")
    return args


def overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError("--set", pair, "KEY=VALUE, e.g. size=128")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def summary(manifest: dict, seconds: float) -> str:
    t = manifest["totals"]
    rate = "n/a" if t["success_rate"] is None else f"{t['success_rate']:.3f}"
    return (
        f"episodes {t['episodes']}  frames {t['frames']}  success rate {rate}  "
        f"invalid retried {t['invalid_retried']}  discarded {t['discarded']}  "
        f"bytes {t['bytes'] / 1e6:.1f} MB  time {seconds:.1f} s  ({t['frames'] / max(seconds, 1e-9):.0f} frames/s)"
    )


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.verify is not None:
        if not args.verify.is_dir():
            raise UserError("--verify", args.verify, "an existing dataset directory")
        try:
            problems = verify(args.verify)
        except ValueError as e:
            raise UserError("--verify", args.verify, f"a dataset directory ({e})") from None
        for line in problems:
            print(f"BAD  {line}")
        print("ok: every shard matches the manifest" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    request = dict(
        workers=args.workers or default_workers(),
        seed=args.seed,
        policy=args.policy,
        resume=args.resume,
        backend=args.backend,
        episodes_per_shard=args.episodes_per_shard,
        max_steps=args.max_steps,
        env_overrides=overrides(args.set),
        episode_timeout=args.episode_timeout,
        max_retries=args.max_retries,
        compression=args.compression,
    )
    try:  # every check before any work: values, the env built once with its kwargs, --out
        preflight(args.env, args.episodes, args.out, **request)
    except RequestError as e:
        raise UserError(str(e)) from None
    t0 = time.perf_counter()
    try:
        manifest = collect(
            args.env, args.episodes, args.out, ray_address=args.ray_address, progress=not args.quiet, **request
        )
    except CollectionError as e:  # a worker failed; completed shards are kept and --resume continues
        raise UserError(str(e)) from e
    print(summary(manifest, time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    run(main)
