#!/usr/bin/env python
"""Collect episodes from an environment into a sharded, resumable, verifiable dataset.

    python scripts/collect.py --env ego_room --episodes 100 --out data/ego
    python scripts/collect.py --env grasp --episodes 5000 --policy informed --out data/grasp --workers 2
    python scripts/collect.py --env ego_room --episodes 100 --out data/ego --resume   # after a crash
    python scripts/collect.py --verify data/ego
    python scripts/collect.py --env grasp --episodes 100000 --out /shared/grasp --backend ray --address auto

Episode i is produced from seed S + i whatever the worker count or backend, so
the same command gives bit-identical shards. Shards are written under a
temporary name and renamed when complete; a killed collector loses at most the
shards in flight and --resume finishes the job.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embodied.cli import ArgumentParser, UserError, catch_user_errors, run
from embodied.collect.report import collect_and_report
from embodied.collect.runner import CollectConfig, verify
from embodied.config import add_arguments, from_args


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options: one per field of CollectConfig (its help is theirs), then --verify."""
    ap = ArgumentParser(description=__doc__)
    add_arguments(ap, CollectConfig)
    ap.add_argument(  # the name Ray's own CLI uses; the field's flag stays --ray-address
        "--address", dest="ray_address", metavar="auto|HOST:PORT", default=argparse.SUPPRESS, help="= --ray-address"
    )
    ap.add_argument("--verify", type=Path, metavar="DIR", help="re-hash every shard of DIR and report problems")
    args = ap.parse_args(argv)
    if args.verify is None:
        for name in ("env", "out"):
            if getattr(args, name) is None:
                raise UserError(f"--{name}", "(missing)", "a value: --env and --out are required (or --verify DIR)")
    return args


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
    collect_and_report(from_args(CollectConfig, args))  # --set KEY=VALUE items to env kwargs (TOML values)
    return 0


if __name__ == "__main__":
    run(main)
