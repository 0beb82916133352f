"""Agent presets: one TOML file per learner under the top-level ``agents/``.

A preset names the class that implements the learner and its parameters, so adding a
learner is one module plus one file::

    description = "..."
    agent = "embodied.agents.equivariant:EquivariantAgent"
    [trunk]            # TrunkConfig fields (defaults shared by every preset: same architecture)
    width = 32
    [train]            # TrainConfig fields (embodied.train_config)
    steps = 20000
    [options]          # the agent class's own options (its ``defaults``)
    k = 6

Overrides ``section.key=value`` change any field (values read by :func:`embodied.config.parse_value`:
TOML values, ``null``, else the bare string).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from embodied import config
from embodied.agents.base import Agent
from embodied.agents.data import check_dataset
from embodied.cli import UserError, show
from embodied.config import check_fields, check_value
from embodied.data.manifest import manifest_path
from embodied.nn.trunk import TrunkConfig
from embodied.train_config import TrainConfig

PRESET_DIR = Path(os.environ.get("EMBODIED_AGENT_PRESETS", Path(__file__).resolve().parents[2] / "agents"))
SECTIONS = ("trunk", "train", "options")
PRESET_KEYS = ("agent", "description", *SECTIONS)


@dataclass
class AgentPreset:
    """A parsed preset. ``trunk``, ``train`` and ``options`` are plain TOML tables."""

    name: str
    agent: str
    description: str = ""
    trunk: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (stored in checkpoints, loadable with ``weights_only=True``)."""
        return copy.deepcopy(
            {
                "name": self.name,
                "agent": self.agent,
                "description": self.description,
                "trunk": self.trunk,
                "train": self.train,
                "options": self.options,
            }
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AgentPreset:
        return cls(**copy.deepcopy(raw))


def parse_preset(path: Path) -> AgentPreset:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    if "agent" not in raw:
        raise ValueError(f"agent preset {path} lacks 'agent' (module:Class)")
    config.check_keys(raw, PRESET_KEYS, prefix=f"agent preset {path}: ", expected="a key of an agent preset")
    return AgentPreset(
        name=Path(path).stem,
        agent=raw["agent"],
        description=raw.get("description", ""),
        **{s: dict(raw.get(s, {})) for s in SECTIONS},
    )


def list_presets(directory: Path = PRESET_DIR) -> dict[str, AgentPreset]:
    """Every preset of ``directory`` keyed by file stem."""
    return {p.stem: parse_preset(p) for p in sorted(Path(directory).glob("*.toml"))}


def load_preset(name_or_path: str | Path) -> AgentPreset:
    """A preset by name (``equivariant``) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        return parse_preset(path)
    candidate = PRESET_DIR / f"{name_or_path}.toml"
    if not candidate.exists():
        names = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
        raise ValueError(f"no agent preset {str(name_or_path)!r}; presets in {PRESET_DIR}: {names}")
    return parse_preset(candidate)


def check_override(item: str) -> None:
    """UserError ``override = <item>; expected section.key=value ...`` unless ``item`` names a section."""
    key, sep, _ = item.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or len(parts) < 2 or parts[0] not in SECTIONS or not all(parts):
        raise UserError("override", item, f"section.key=value with section one of {', '.join(SECTIONS)}")


def apply_overrides(preset: AgentPreset, overrides: list[str]) -> AgentPreset:
    """A copy of ``preset`` with ``section.key=value`` (or ``section.key.sub=value``) applied
    (:func:`embodied.config.apply_overrides`); a UserError for an override outside the sections."""
    for item in overrides:
        check_override(item)
    raw = preset.to_dict()
    sections = config.apply_overrides({s: raw[s] for s in SECTIONS}, overrides)
    return AgentPreset.from_dict({**raw, **sections})


def check_preset(preset: AgentPreset) -> None:
    """Every ``trunk`` / ``train`` / ``options`` value of ``preset`` typed and in range, before any work.

    trunk and train are checked against ``TrunkConfig`` and ``TrainConfig``; options against the
    agent class's ``defaults`` (a value must have its default's type; an int passes for a float).
    Raises a one-line UserError (a ValueError) naming the first bad value.
    """
    check_fields(TrunkConfig, preset.trunk, "trunk")
    trunk = {**dataclasses.asdict(TrunkConfig()), **preset.trunk}
    for key, lo in (("width", 1), ("embed_dim", 1), ("image_size", 16)):
        if trunk[key] < lo:
            raise UserError(f"trunk.{key}", trunk[key], f"an integer >= {lo}")
    if not 3 <= trunk["depth"] <= 7:
        raise UserError("trunk.depth", trunk["depth"], "an integer in 3..7")
    if trunk["norm"] not in ("batch", "group", "none"):
        raise UserError("trunk.norm", trunk["norm"], "one of batch, group, none")
    TrunkConfig.from_dict(preset.trunk)
    TrainConfig.from_dict(preset.train)
    cls = agent_class(preset)
    config.check_keys(preset.options, cls.defaults, prefix="options.", expected=f"an option of {cls.__name__}")
    for key, value in preset.options.items():
        default = cls.defaults[key]
        kind = {bool: "bool", int: "float" if isinstance(default, float) else "int", float: "float", str: "str"}
        kind_name = next((k for t, k in kind.items() if type(default) is t), None)
        if kind_name is not None:
            check_value(f"options.{key}", kind_name, value)
        elif isinstance(default, (list, dict)) and not isinstance(value, type(default)):
            raise UserError(f"options.{key}", value, f"a {type(default).__name__} like {show(default)}")


def agent_class(preset: AgentPreset) -> type[Agent]:
    module, _, name = preset.agent.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"agent preset {preset.name!r}: cannot import {preset.agent!r}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ValueError(f"agent preset {preset.name!r}: {preset.agent!r} is not an Agent subclass")
    return cls


def check_data(dirs: list[str] | list[Path]) -> None:
    """Each ``--data`` directory of ``scripts/train.py`` exists and is a collected dataset (has a manifest)."""
    for d in dirs:
        path = Path(d)
        if not path.exists():
            raise UserError("--data", d, "an existing dataset directory (it does not exist)")
        if not path.is_dir() or not manifest_path(path).exists():
            raise UserError("--data", d, "a dataset from scripts/collect.py (not a dataset: no manifest.json)")


def open_datasets(preset: AgentPreset, dirs: list[str | Path]) -> dict[str, Dataset]:
    """The agent's datasets from dataset directories (each mapped to its task by its manifest's env id)."""
    return agent_class(preset).open_datasets([Path(d) for d in dirs], preset.options)


def check_datasets(preset: AgentPreset, datasets: dict[str, Dataset]) -> None:
    """AgentDataError (a ValueError) unless every dataset can train its task of ``preset``'s agent."""
    cls = agent_class(preset)
    for task, ds in datasets.items():
        check_dataset(task, ds, cls.required_keys(task, preset.options))


def open_checked(preset: AgentPreset, dirs: list[str] | list[Path]) -> dict[str, Dataset]:
    """:func:`open_datasets` and :func:`check_datasets`; data of the wrong kind for the agent is a
    UserError naming ``--data`` (``scripts/train.py``'s flag)."""
    try:
        datasets = open_datasets(preset, dirs)
        check_datasets(preset, datasets)
    except ValueError as e:  # AgentDataError: data of the wrong kind for this agent
        reason = " ".join(str(e).split())
        shown = " ".join(map(str, dirs))
        raise UserError("--data", shown, f"datasets agent {preset.name} trains on ({reason})") from None
    return datasets


def build_agent(preset: AgentPreset, datasets: dict[str, Dataset]) -> Agent:
    """The agent of ``preset`` for these datasets ({task: Dataset}), after checking each is usable."""
    check_datasets(preset, datasets)
    return agent_class(preset)(TrunkConfig.from_dict(preset.trunk), preset.options, datasets)
