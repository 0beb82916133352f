"""Every registered env documents itself, and the envs reach PyBullet only through the sim wrapper."""

from __future__ import annotations

import importlib
import pydoc
import re
from pathlib import Path

import gymnasium as gym
import pytest

import embodied.envs
from embodied.envs import ENV_IDS

# Gymnasium's env docstring sections (as in classic_control/cartpole.py)
SECTIONS = ("Action Space", "Observation Space", "Rewards", "Starting State", "Episode End", "Info")
ENVS_DIR = Path(embodied.envs.__file__).parent


def env_class(env_id: str) -> type:
    module, _, name = str(gym.registry[env_id].entry_point).partition(":")
    return getattr(importlib.import_module(module), name)


def test_every_registered_env_is_checked():
    assert {"embodied/Grasp-v0", "embodied/Push-v0", "embodied/Poke-v0", "embodied/Look-v0"} <= set(ENV_IDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_class_docstring_has_gymnasium_sections(env_id):
    cls = env_class(env_id)
    doc = cls.__dict__.get("__doc__") or ""  # its own docstring, not one inherited from a base
    missing = [s for s in SECTIONS if not re.search(rf"^\s*## {s}\s*$", doc, re.MULTILINE)]
    assert not missing, f"{env_id} ({cls.__qualname__}): docstring lacks sections {missing}"
    positions = [doc.index(f"## {s}") for s in SECTIONS]
    assert positions == sorted(positions), f"{env_id}: sections out of Gymnasium's order {SECTIONS}"
    # help(env.unwrapped) shows it
    assert "## Action Space" in pydoc.render_doc(cls, renderer=pydoc.plaintext)


@pytest.mark.parametrize("module", sorted(p.name for p in ENVS_DIR.glob("*.py")), ids=str)
def test_envs_reach_the_physics_client_only_through_named_sim_methods(module):
    source = (ENVS_DIR / module).read_text()
    raw = [line.strip() for line in source.splitlines() if re.search(r"\.p\.\w+\(|\bp\.GEOM_", line)]
    assert not raw, f"{module} calls the raw pybullet client; use BulletSim's methods: {raw}"
