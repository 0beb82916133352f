#!/usr/bin/env python
"""Does a trunk's conv map tell ReachObject's objects apart? The probe behind the RL comparison.

python scripts/probe_objects.py --encoders curious=runs/demo/runs/curious equivariant=runs/demo/runs/equivariant \\
    random nature --out runs/probe_objects

Four probes on the same ReachObject scenes (train split to fit, held-out split to test;
``embodied.rl.object_probe``):

- category: each object's category from the trunk's last conv map averaged over the cells the
  object covers (a linear probe); ``pixels`` (a crop around each object) is the network-free floor;
  and from the trunk's embedding of that crop resized to its input (does the trunk know the
  category when the object fills its view?);
- goal pointing: the RL preset's image pathway (frozen trunk, goal-gated keypoints; NatureCNN
  trained whole) fitted with labels to point at the goal object, scored by whether it points
  nearer to the goal object than to the others;
- glimpse pointing: the same for the glimpse pathway (rl/reach_object_glimpse_ppo.toml: the trunk's
  embedding of object-centred crops, attention over them against the exemplar and the goal), fitted
  at PPO's learning rate to attend to the goal object;
- exemplar matching: no labels, nothing fitted; is the object whose map features are most like an
  exemplar's (another instance of the goal category, alone on the table: ReachObject's goal_image)
  the goal? ``pixels`` (mean colour) is the floor. With it, the mean return the scripted oracle earns
  going to the matched object: what acting on that recognition pays under the env's reward.

--category-colours runs them on the env variant whose objects wear their category's colour;
--env-kwargs sets any other env argument (size=128, say).
Writes probe.json, probe.md and probe.png (accuracy with 95 % intervals over held-out instances).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from embodied.cli import ArgumentParser, catch_user_errors, nonnegative_int, positive_int, run
from embodied.envs import resolve
from embodied.rl.compare import check_encoders, parse_encoders
from embodied.rl.config import parse_env_overrides
from embodied.rl.object_probe import GOAL_STEPS, object_probe


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(description=__doc__)
    ap.add_argument(
        "--encoders", nargs="+", default=["random"], help="label=checkpoint (or run dir), 'random', 'nature'"
    )
    ap.add_argument("--train-scenes", type=positive_int, default=400, help="train-split scenes (3 objects each)")
    ap.add_argument("--test-scenes", type=positive_int, default=200, help="held-out-split scenes")
    ap.add_argument(
        "--layer", default=None, help="trunk map to probe (default: the last conv layer, as the RL keypoints)"
    )
    ap.add_argument("--goal-steps", type=nonnegative_int, default=GOAL_STEPS, help="goal-pointing fit steps; 0: skip")
    ap.add_argument(
        "--category-colours", action="store_true", help="the env variant whose objects wear their category's colour"
    )
    ap.add_argument(
        "--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="env preset overrides, as train_rl.py takes"
    )
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/probe_objects"))
    return ap


TITLES = {
    "category": "category of each object (linear probe)",
    "category_crop": "category from each object's crop through the trunk (linear probe)",
    "goal_pointing": "goal pointing (policy pathway)",
    "glimpse_pointing": "goal pointing (glimpse pathway)",
    "exemplar_matching": "exemplar matching (no labels)",
}


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [k for k in TITLES if out[k]]
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 3.4), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        acc = out[part]["accuracy"]
        labels = list(acc)
        values = [acc[k]["value"] for k in labels]
        err = [[acc[k]["value"] - acc[k]["lo"] for k in labels], [acc[k]["hi"] - acc[k]["value"] for k in labels]]
        ax.bar(labels, values, yerr=err, capsize=4, color="0.6")
        ax.axhline(out["chance"][part], color="0.3", ls="--", lw=1, label="chance")
        ax.set(ylabel="held-out accuracy (95 % interval)", ylim=(0, 1), title=TITLES[part])
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=8)
    kwargs = ", ".join(f"{k}={v}" for k, v in out["env_kwargs"].items())
    fig.suptitle("ReachObject" + (f" ({kwargs})" if kwargs else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RETURN_TITLE = "following the exemplar match with the oracle's control (env reward; staying put: 0)"


def table(part: dict, what: str = "held-out accuracy") -> str:
    rows = [f"| features | {what} [95 % interval] | minus random (paired) |", "| --- | --- | --- |"]
    for k, iv in part["accuracy"].items():
        d = part["minus_random"].get(k)
        diff = f"{d['value']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]" if d is not None else "-"
        rows.append(f"| {k} | {iv['value']:.3f} [{iv['lo']:.3f}, {iv['hi']:.3f}] | {diff} |")
    return "\n".join(rows) + "\n"


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    encoders = parse_encoders(args.encoders)
    check_encoders(encoders)
    env_kwargs = parse_env_overrides(args.env_kwargs) | ({"category_colours": True} if args.category_colours else {})
    result = object_probe(
        encoders, args.train_scenes, args.test_scenes, args.seed, args.layer, args.goal_steps, env_kwargs
    )
    preset = {**resolve("reach_object").kwargs, **env_kwargs}
    out = {
        "chance": {
            "category": 1.0 / len(preset["categories"]),
            "category_crop": 1.0 / len(preset["categories"]),
            "goal_pointing": 1.0 / preset["n_objects"],
            "glimpse_pointing": 1.0 / preset["n_objects"],
            "exemplar_matching": 1.0 / preset["n_objects"],
        },
        "train_scenes": args.train_scenes,
        "test_scenes": args.test_scenes,
        "seed": args.seed,
        "layer": args.layer,
        "goal_steps": args.goal_steps,
        "env_kwargs": env_kwargs,
        **{
            part: {kind: {k: iv.to_dict() for k, iv in d.items()} for kind, d in r.items()}
            for part, r in result.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(out, indent=2))
    md = "".join(f"## {TITLES[p]}\n\n{table(out[p])}\n" for p in TITLES if out[p])
    md += f"## {RETURN_TITLE}\n\n{table(out['matching_return'], 'mean return')}\n"
    (args.out / "probe.md").write_text(md)
    plot(out, args.out / "probe.png")
    print(md + f"-> {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
