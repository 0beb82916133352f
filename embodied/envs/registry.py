"""Environment presets: one TOML file per registered id under the top-level ``envs/``.

A preset names its Gymnasium id, the class that implements it and the keyword
arguments it is built with, so adding a variant is adding a file::

    id = "embodied/EgoMotion-v0"
    entry_point = "embodied.envs.ego_motion:EgoMotionEnv"
    max_episode_steps = 200
    description = "..."
    policy = "explore"          # default scripted policy for collection
    [kwargs]
    size = 64
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from embodied.config import check_keys

PRESET_DIR = Path(os.environ.get("EMBODIED_ENV_PRESETS", Path(__file__).resolve().parents[2] / "envs"))


@dataclass(frozen=True)
class EnvPreset:
    """A parsed preset file."""

    name: str
    id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    description: str = ""
    policy: str = "random"
    path: Path | None = None


PRESET_KEYS = ("id", "entry_point", "kwargs", "max_episode_steps", "description", "policy")


def _parse(path: Path) -> EnvPreset:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    for key in ("id", "entry_point"):
        if key not in raw:
            raise ValueError(f"env preset {path} lacks {key!r}")
    check_keys(raw, PRESET_KEYS, prefix=f"env preset {path}: ", expected="a key of an env preset")
    return EnvPreset(
        name=path.stem,
        id=raw["id"],
        entry_point=raw["entry_point"],
        kwargs=dict(raw.get("kwargs", {})),
        max_episode_steps=raw.get("max_episode_steps"),
        description=raw.get("description", ""),
        policy=raw.get("policy", "random"),
        path=path,
    )


def load_presets(directory: Path = PRESET_DIR) -> dict[str, EnvPreset]:
    """All presets in ``directory`` keyed by file stem, sorted by name."""
    presets = {path.stem: _parse(path) for path in sorted(Path(directory).glob("*.toml"))}
    ids = [pr.id for pr in presets.values()]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"env presets in {directory} register the same id twice: {sorted(dup)}")
    return presets


PRESETS: dict[str, EnvPreset] = load_presets() if PRESET_DIR.is_dir() else {}
ENV_IDS: tuple[str, ...] = tuple(pr.id for pr in PRESETS.values())


def resolve(name_or_id: str) -> EnvPreset:
    """A preset by file stem (``ego_room``) or by id (``embodied/EgoMotion-v0``)."""
    if name_or_id in PRESETS:
        return PRESETS[name_or_id]
    for preset in PRESETS.values():
        if preset.id == name_or_id:
            return preset
    if name_or_id in gym.registry:  # any other registered Gymnasium id, used as it is
        spec = gym.registry[name_or_id]
        return EnvPreset(
            name=name_or_id.replace("/", "_"),
            id=name_or_id,
            entry_point=str(spec.entry_point),
            kwargs=dict(spec.kwargs),
            max_episode_steps=spec.max_episode_steps,
        )
    raise ValueError(
        f"unknown env preset {name_or_id!r}; expected one of {sorted(PRESETS)} or an id in {sorted(ENV_IDS)}"
    )


def register_all() -> None:
    """Register every preset with Gymnasium (idempotent)."""
    for preset in PRESETS.values():
        if preset.id in gym.registry:
            continue
        gym.register(
            id=preset.id,
            entry_point=preset.entry_point,
            max_episode_steps=preset.max_episode_steps,
            kwargs=dict(preset.kwargs),
        )


def explain_kwargs_error(preset: EnvPreset, kwargs: dict[str, Any], error: Exception) -> str:
    """An env's complaint about its kwargs as one line, ``env kwarg <key> = <value>; expected ...``
    where it names one of ``kwargs`` (the envs' own messages read ``key=value; expected ...``)."""
    import importlib
    import inspect
    import json
    import re

    text = " ".join(str(error).split())
    m = re.match(r"^(?P<key>\w+)=(?P<value>.*?)(?: has [^;]*)?; expected (?P<rest>.*)$", text)
    if m and m["key"] in kwargs:
        return f"env kwarg {m['key']} = {json.dumps(kwargs[m['key']])}; expected {m['rest']} (env {preset.name})"
    m = re.search(r"unexpected keyword argument '(?P<key>\w+)'", text)
    if m:
        module, _, name = preset.entry_point.partition(":")
        try:
            params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
            known = ", ".join(p for p in params if p not in ("self", "kwargs", "render_mode"))
        except Exception:  # noqa: BLE001 - the list is a courtesy
            known = "see the env's docstring"
        value = json.dumps(kwargs.get(m["key"]))
        return f"env kwarg {m['key']} = {value}; expected a keyword of env {preset.name} ({known})"
    return f"env {preset.name} kwargs = {json.dumps(kwargs)}; expected kwargs it takes ({text})"


def make(name_or_id: str, **overrides: Any) -> gym.Env:
    """``gymnasium.make`` by preset name or id, with keyword overrides of the preset."""
    preset = resolve(name_or_id)
    register_all()
    return gym.make(preset.id, **overrides)
