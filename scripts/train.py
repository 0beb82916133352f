#!/usr/bin/env python
"""Train one agent on collected datasets.

    python scripts/train.py --agent equivariant --data data/ego_room
    python scripts/train.py --agent curious --data data/grasp data/push data/poke data/look --out runs/curious
    python scripts/train.py --agent supervised --data data/ego_room options.label=scene_class_id
    python scripts/train.py --agent equivariant --data data/ego_room --out runs/eq --resume train.steps=40000
    python scripts/train.py --list

``--agent`` takes a preset name from ``agents/`` or a path to a TOML file. Trailing
``section.key=value`` arguments override the preset (sections: trunk, train, options;
values are TOML: 1e-4, true, "text", [1, 2]). Each ``--data`` directory is mapped to its task
by the env id in its manifest. Writes checkpoint.pt, metrics.jsonl, tb/, loss_curve.png to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embodied.agents.base import AgentDataError  # noqa: E402
from embodied.agents.registry import apply_overrides, list_presets, load_preset, open_datasets  # noqa: E402
from embodied.train import TrainingError, train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", help="preset name (agents/<name>.toml) or path to a preset file")
    ap.add_argument("--data", nargs="+", default=[], metavar="DIR", help="dataset directories")
    ap.add_argument("--out", help="run directory (default runs/<agent>)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    ap.add_argument("--steps", type=int, help="= train.steps")
    ap.add_argument("--batch-size", type=int, help="= train.batch_size")
    ap.add_argument("--lr", type=float, help="= train.lr")
    ap.add_argument("--device", help="= train.device (auto, cpu, cuda, cuda:1...)")
    ap.add_argument("--workers", type=int, help="= train.num_workers")
    ap.add_argument("--seed", type=int, help="= train.seed")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--list", action="store_true", help="list agent presets and exit")
    ap.add_argument("overrides", nargs="*", help="section.key=value preset overrides")
    args = ap.parse_args(argv)

    if args.list:
        for name, p in list_presets().items():
            print(f"{name:12s} {p.description}")
        return 0
    if not args.agent:
        ap.error("--agent is required")
    flags = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "num_workers": args.workers,
        "seed": args.seed,
    }
    overrides = list(args.overrides) + [f"train.{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    try:
        preset = apply_overrides(load_preset(args.agent), overrides)
        datasets = open_datasets(preset, args.data)
        out = Path(args.out or f"runs/{preset.name}")
        result = train(preset, datasets, out, resume=args.resume, progress=not args.no_progress)
    except (AgentDataError, TrainingError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
