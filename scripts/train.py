#!/usr/bin/env python
"""Train one agent on collected datasets.

    python scripts/train.py --agent equivariant --data data/ego_room
    python scripts/train.py --agent curious --data data/grasp data/push data/poke data/look --out runs/curious
    python scripts/train.py --agent supervised --data data/ego_room options.label=scene_class_id
    python scripts/train.py --agent equivariant --data data/ego_room --out runs/eq --resume train.steps=40000
    python scripts/train.py --list
    torchrun --nproc-per-node 2 scripts/train.py --agent equivariant --data data/ego_room --out runs/eq

``--agent`` takes a preset name from ``agents/`` or a path to a TOML file. Trailing
``section.key=value`` arguments override the preset (sections: trunk, train, options;
values are TOML: 1e-4, true, "text", [1, 2]). Each ``--data`` directory is mapped to its task
by the env id in its manifest. Writes checkpoint.pt, metrics.jsonl, tb/, loss_curve.png to ``--out``.
Under ``torchrun`` every process trains its share of the global ``train.batch_size`` (which must
divide by the world size) and rank 0 writes; see ``embodied/distributed.py``. Errors print once.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from embodied import distributed
from embodied.agents.registry import (
    agent_class,
    apply_overrides,
    check_data,
    check_preset,
    list_presets,
    load_preset,
    open_checked,
)
from embodied.cli import (
    EXIT_USER_ERROR,
    ArgumentParser,
    UserError,
    catch_user_errors,
    nonnegative_int,
    positive_float,
    positive_int,
    run,
)
from embodied.train import CHECKPOINT_NAME, TrainConfig, TrainingError, load_checkpoint, resolve_device, train

LINGER_S = 5.0  # how long a rank other than 0 waits before it exits on a user error


def check_out(out: Path, resume: bool) -> None:
    """--out is a directory; without --resume it holds no checkpoint, with it it does."""
    if out.exists() and not out.is_dir():
        raise UserError("--out", out, "a run directory (it is a file)")
    has = (out / CHECKPOINT_NAME).exists()
    if has and not resume:
        raise UserError("--out", out, "a new run directory, or --resume to continue this run (it has a checkpoint)")
    if resume and not has:
        raise UserError("--out", out, f"a run directory with {CHECKPOINT_NAME} to --resume (none there)")


def check_resume(out: Path, preset: Any) -> None:
    """--resume continues the same agent, trunk and options as the checkpoint (train.* may change)."""
    try:
        saved = load_checkpoint(out)["preset"]
    except (ValueError, RuntimeError, OSError) as e:
        raise UserError("--out", out, f"a run with a readable {CHECKPOINT_NAME} ({e})") from None
    for section in ("agent", "trunk", "options"):
        if saved.get(section) != getattr(preset, section):
            raise UserError(
                f"{section} (with --resume)", getattr(preset, section), f"the checkpoint's {saved.get(section)}"
            )


def open_in_turn(preset: Any, dirs: list[str], world: distributed.World) -> Any:
    """The checked datasets; with several processes each node's local rank 0 opens them first (building
    any frame cache once per node), then the node's other ranks; every rank stops with the first error."""
    if not world.distributed:
        return open_checked(preset, dirs)
    import torch.distributed as dist

    error, datasets = None, None
    if world.local_rank == 0:
        try:
            datasets = open_checked(preset, dirs)
        except UserError as e:
            error = str(e)
    errors: list[str | None] = [None] * world.size
    dist.all_gather_object(errors, error)  # also the barrier: the caches are built
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise UserError(first)  # printed by rank 0 alone (see main)
    return datasets if world.local_rank == 0 else open_checked(preset, dirs)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line (trailing ``section.key=value`` items in ``overrides``)."""
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--agent", help="preset name (agents/<name>.toml) or path to a preset file")
    ap.add_argument("--data", nargs="+", default=[], metavar="DIR", help="dataset directories")
    ap.add_argument("--out", type=Path, help="run directory (default runs/<agent>)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    ap.add_argument("--steps", type=nonnegative_int, help="= train.steps")
    ap.add_argument("--batch-size", type=positive_int, help="= train.batch_size")
    ap.add_argument("--lr", type=positive_float, help="= train.lr")
    ap.add_argument("--device", help="= train.device (auto, cpu, cuda, cuda:1...)")
    ap.add_argument("--workers", type=nonnegative_int, help="= train.num_workers")
    ap.add_argument("--seed", type=nonnegative_int, help="= train.seed")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--list", action="store_true", help="list agent presets and exit")
    ap.add_argument("overrides", nargs="*", help="section.key=value preset overrides")
    return ap.parse_args(argv)


def preset_of(args: argparse.Namespace) -> Any:
    """The preset of ``--agent`` with the overrides applied (the flags last) and checked: a UserError if not."""
    flags = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "num_workers": args.workers,
        "seed": args.seed,
    }
    # the flags as overrides (JSON numbers and strings are TOML values: embodied.config.parse_value)
    overrides = list(args.overrides) + [f"train.{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    try:
        preset = load_preset(args.agent)
        agent_class(preset)
    except ValueError as e:
        names = ", ".join(list_presets())
        why = f" ({e})" if args.agent in list_presets() or Path(args.agent).suffix == ".toml" else ""
        raise UserError("--agent", args.agent, f"a preset ({names}) or a preset .toml file{why}") from None
    preset = apply_overrides(preset, overrides)  # UserError for an override outside trunk, train, options
    check_preset(preset)
    return preset


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    """The script; under torchrun a UserError is printed by rank 0 alone (every rank exits with 2)."""
    try:
        return _main(argv)
    except UserError:
        if distributed.env_rank() == 0:  # every rank checks the same inputs: one line (rank 0's), not one per rank
            raise
        return quiet_user_error()


def quiet_user_error() -> int:
    """A rank other than 0 on a user error: no line of its own, exit status 2 after ``LINGER_S`` (torchrun stops
    every rank once one exits: rank 0 prints first)."""
    time.sleep(LINGER_S)
    return EXIT_USER_ERROR


def _main(argv: list[str] | None) -> int:
    args = parse(argv)
    if args.list:
        for name, p in list_presets().items():
            print(f"{name:12s} {p.description}")
        return 0
    if not args.agent:
        raise UserError("--agent", "(missing)", "an agent preset name or preset file; see --list")
    # every input checked before any work: preset, overrides (typed against the config dataclasses),
    # dataset directories and their kind, the run directory
    preset = preset_of(args)
    distributed.check_batch(int(preset.train.get("batch_size", TrainConfig.batch_size)))
    if not args.data:
        raise UserError("--data", "(missing)", "one or more dataset directories")
    check_data(args.data)
    out = Path(args.out or f"runs/{preset.name}")
    check_out(out, args.resume)
    if args.resume:
        check_resume(out, preset)
    try:
        device = distributed.device_for(resolve_device(TrainConfig.from_dict(preset.train).device))
        with distributed.process_group(device) as world:  # train() runs in this group (none: one process)
            datasets = open_in_turn(preset, args.data, world)
            result = train(preset, datasets, out, resume=args.resume, progress=not args.no_progress)
    except TrainingError as e:  # stopped for a reason the user acts on (non-finite loss, mismatched resume)
        raise UserError(str(e)) from e
    if distributed.env_rank() == 0:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    run(main)
