"""RLConfig: every setting of one RL run, its ``--help`` text, and the RL presets under top-level ``rl/``.

Each field's ``help`` is its ``--help`` text (as in cleanrl's ``Args``; :func:`embodied.config.option`),
with what argparse needs beyond it (``type``, ``choices``). A preset is one TOML file of field values::

    description = "PPO on Reach from a frozen trunk's keypoints"
    env = "reach"
    algo = "ppo"
    steps = 60000
    [env_kwargs]       # env preset overrides, as --env-kwargs key=value gives them
    size = 64

Values come from the field defaults, then the preset (``--preset NAME`` or a path to a .toml), then
the flags given on the command line. ``--env-kwargs key=value`` values are parsed as TOML values
(``size=32``, ``categories=["cup"]``, ``split='heldout'``); text that is not TOML stays a string.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied.cli import (
    ArgumentParser,
    UserError,
    choices,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)
from embodied.config import add_arguments, apply_overrides, check_keys, from_args, option
from embodied.rl.extractor import CACHE_MB, FEATURES
from embodied.rl.models import ALGOS

PRESET_DIR = Path(os.environ.get("EMBODIED_RL_PRESETS", Path(__file__).resolve().parents[2] / "rl"))
VEC_KINDS = ("subproc", "dummy")
NOT_IN_PRESETS = ("preset", "out")  # a preset is not named by itself; where a run writes is the caller's
_UNSET = object()  # a flag not given on the command line


def parse_env_overrides(items: list[str]) -> dict[str, Any]:
    """``--env-kwargs`` items -> env kwargs: ``["size=64", 'categories=["cup"]']`` -> ``{"size": 64, ...}``."""
    return parse_overrides(items, "--env-kwargs")


@dataclass
class RLConfig:
    """One SB3 run: the task, the image encoder, the algorithm and its schedule, where it writes.

    Each field's ``help`` is its flag's ``--help`` text in ``scripts/train_rl.py``, whose parser is made
    from this class (:func:`build_parser`, through :func:`embodied.config.add_arguments`).
    """

    preset: str | None = option(
        None, "RL preset (rl/*.toml name or a .toml path) whose values replace these defaults; flags override it"
    )
    env: str = option("reach", "env preset name (envs/*.toml) or registered id (default: reach)")
    env_kwargs: dict[str, Any] = option(
        {},
        'env preset overrides, key=value (values parsed as TOML, else text: size=32 categories=["cup"])',
        nargs="*",
        metavar="KEY=VALUE",
        convert=parse_env_overrides,
    )
    algo: str = option("ppo", "SB3 algorithm (default: ppo)", choices=ALGOS)
    encoder: str = option(
        "random",
        "checkpoint / run dir, 'random', 'nature', or a privileged-state policy: 'state' / 'goal-state' "
        "(embodied.rl.state) (default: random)",
    )
    finetune: bool = option(
        False, "train the trunk's weights with the policy (off: frozen)", action=argparse.BooleanOptionalAction
    )
    trunk_lr_scale: float = option(
        1.0,
        "with --finetune, the trunk steps at this multiple of --lr (its heads and the policy at --lr); "
        "ignored for a frozen trunk and nature (default: 1)",
        type=positive_float,
    )
    share_trunk: bool | None = option(
        None,
        "PPO: actor and critic share one extractor (SB3's default); --no-share-trunk gives the critic a copy of "
        "its own, so with --finetune the value loss, whose gradient on a shared trunk is 15-1500x the policy "
        "loss's on Reach (docs/rl.md), trains only the critic's copy (default: the algorithm's own: PPO "
        "shares, SAC does not)",
        action=argparse.BooleanOptionalAction,
    )
    resize: bool = option(False, "resize env images to the encoder's input size", action=argparse.BooleanOptionalAction)
    features: str = option(
        "keypoints",
        "what a trunk gives the policy: learned spatial-softmax keypoints on its last conv map (positions "
        "survive; the default), its pooled embedding, or glimpses: its embedding of object-centred crops found "
        "without a network, weighed by how well each matches the goal (embodied.rl.glimpse; NatureCNN too); "
        "NatureCNN ignores the other two",
        choices=FEATURES,
    )
    keypoints: int = option(32, "keypoints for --features keypoints (default: 32)", type=positive_int)
    glimpses: int = option(
        4,
        "glimpses per image for --features glimpses (ReachObject: 3 objects and the fingertip; default: 4)",
        type=positive_int,
    )
    proprio_dim: int = option(
        64,
        "width of the MLP the non-image observation keys go through; 0 passes them on as they are (default: 64)",
        type=nonnegative_int,
    )
    gate: str | None = option(
        None,
        "an observation key whose value conditions the keypoint filters (ReachObject: goal; each goal its "
        "own filters), so the keypoints can find what it names; '' for none (default: none)",
    )
    exemplar: str | None = option(
        None,
        "an image observation key naming the goal by example (ReachObject --env-kwargs goal_image=true: "
        "goal_rgb); adds a keypoint where the trunk's features match it (embodied.rl.exemplar); '' for none "
        "(default: none)",
    )
    cache_mb: float = option(
        CACHE_MB,
        "memory (MB) for a frozen trunk's outputs, looked up by image so PPO's update epochs do not run the "
        f"trunk again (CPU only: on a GPU recomputing is faster); 0: off (default: {CACHE_MB})",
        type=nonnegative_float,
    )
    steps: int = option(20000, "total env steps (default: 20000)", type=positive_int)
    seed: int = option(
        0,
        "seed of the policy, the training envs (seed x 1000 + env index) and the evaluation episodes (default: 0)",
        type=nonnegative_int,
    )
    out: Path | None = option(None, "run directory", type=Path, required=True)
    n_envs: int = option(4, "parallel training envs (default: 4)", type=positive_int)
    vec: str = option("subproc", "SubprocVecEnv or in-process (default: subproc)", choices=VEC_KINDS)
    eval_freq: int | None = option(
        None,
        "env steps between evaluations (default: steps/10, at least 2000; always one at the start and the end)",
        type=positive_int,
    )
    eval_episodes: int | None = option(
        None, "held-out episodes per evaluation (default: one per 1000 steps, 2..20)", type=positive_int
    )
    eval_split: str = option("heldout", "object split of the evaluation env (default: heldout)")
    checkpoint_freq: int | None = option(None, "env steps between checkpoints (default steps/4)", type=positive_int)
    device: str = option("cpu", "torch device of the learner: cpu, cuda, cuda:<index> or auto (default: cpu)")
    threads: int | None = option(
        None,
        "torch threads in the learner (default: 1 on a CPU, where more spin against the env processes: "
        "measured 6x less CPU time for the --steps 256 smoke run; 0: torch's default)",
        type=nonnegative_int,
    )
    lr: float = option(3e-4, "learning rate (default: 3e-4)", type=positive_float)
    n_steps: int | None = option(
        None,
        "PPO: steps per env per rollout (default: 128, fewer when --steps / --n-envs is smaller)",
        type=positive_int,
    )
    batch_size: int | None = option(None, "PPO 128 / SAC 128 by default", type=positive_int)
    n_epochs: int = option(4, "PPO: epochs per rollout (default: 4)", type=positive_int)
    ent_coef: float = option(0.0, "PPO entropy bonus (default: 0)", type=nonnegative_float)
    norm_reward: bool = option(
        False,
        "train on rewards divided by a running estimate of the discounted return's std (SB3 VecNormalize, "
        "observations untouched; evaluation reports raw rewards), so the critic regresses targets of unit scale",
        action=argparse.BooleanOptionalAction,
    )
    buffer_size: int = option(
        20000, "SAC replay buffer (64 px: ~25 kB per transition; default: 20000)", type=positive_int
    )
    learning_starts: int = option(500, "SAC: random steps before learning (default: 500)", type=nonnegative_int)
    quiet: bool = option(False, "no SB3 progress output, no progress bar", action=argparse.BooleanOptionalAction)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (paths as strings), as run.json records the run."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The train_rl command line: one flag per RLConfig field, the field's ``help`` as its help."""
    ap = ArgumentParser(description=description)
    add_arguments(ap, RLConfig)
    return ap


def parse_overrides(items: list[str], what: str) -> dict[str, Any]:
    """``["size=64", 'categories=["cup"]']`` -> ``{"size": 64, "categories": ["cup"]}``: TOML values, else text.

    The shared parser of ``key=value`` overrides (:func:`embodied.config.apply_overrides`); ``what``
    names the flag in errors.
    """
    return apply_overrides({}, items, what=what)


def list_presets(directory: Path = PRESET_DIR) -> list[str]:
    """Names of the RL presets in ``directory`` (file stems)."""
    return sorted(p.stem for p in Path(directory).glob("*.toml"))


def load_preset(name_or_path: str | Path, directory: Path = PRESET_DIR) -> dict[str, Any]:
    """The field values of an RL preset (by name, or a path to a .toml), checked; its description dropped."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.exists()):
        path = Path(directory) / f"{name_or_path}.toml"
        if not path.exists():
            raise UserError("--preset", name_or_path, f"an RL preset ({choices(list_presets(directory))}) or a .toml")
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    raw.pop("description", None)
    return check_values(raw, f"{path.name}:")


def check_values(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` with numbers as their field's type (``lr = 1`` -> 1.0), or a one-line UserError
    (``where key = value; expected ...``) for an unknown key or a bad value."""
    fields = {f.name: f for f in dataclasses.fields(RLConfig) if f.name not in NOT_IN_PRESETS}
    check_keys(raw, fields, prefix=f"{where} ", expected="a key of RLConfig")
    out = dict(raw)
    for key, value in raw.items():
        f = fields[key]
        if key == "env_kwargs" or f.type == "bool":
            kind, word = (dict, "a table of env preset overrides") if key == "env_kwargs" else (bool, "true or false")
            if not isinstance(value, kind):
                raise UserError(f"{where} {key}", value, word)
            continue
        parse = f.metadata.get("type") or str
        if isinstance(value, (bool, dict, list)) or (parse is str and not isinstance(value, str)):
            raise UserError(f"{where} {key}", value, "a string" if parse is str else "a number")
        try:
            out[key] = parse(str(value))
        except argparse.ArgumentTypeError as e:
            raise UserError(f"{where} {key} = {e}") from None
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise UserError(f"{where} {key}", value, choices(f.metadata["choices"]))
    return out


def parse_args(argv: list[str] | None = None, description: str | None = None) -> RLConfig:
    """The RLConfig of a train_rl command line: field defaults, then ``--preset``, then the flags given."""
    unset = argparse.Namespace(**{f.name: _UNSET for f in dataclasses.fields(RLConfig)})
    parsed = build_parser(description).parse_args(argv, namespace=unset)
    given = {k: v for k, v in vars(parsed).items() if v is not _UNSET}
    preset = load_preset(given["preset"]) if given.get("preset") is not None else {}
    preset_env = preset.pop("env_kwargs", {})
    cfg = from_args(RLConfig, argparse.Namespace(**given), **{k: v for k, v in preset.items() if k not in given})
    cfg.env_kwargs = {**preset_env, **cfg.env_kwargs}  # the preset's table, then the flag's overrides
    return cfg


__all__ = [
    "PRESET_DIR",
    "RLConfig",
    "build_parser",
    "check_values",
    "list_presets",
    "load_preset",
    "parse_args",
    "parse_env_overrides",
    "parse_overrides",
]
