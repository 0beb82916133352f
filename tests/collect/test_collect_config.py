"""CollectConfig: one dataclass is collect()'s request and scripts/collect.py's command line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import pytest

from embodied.cli import ArgumentParser, UserError
from embodied.collect.runner import CollectConfig, collect, parse_set, plan_config
from embodied.collect.worker import cached_envs
from embodied.config import add_arguments, from_args
from embodied.data.manifest import load_manifest


def parse(argv: list[str]) -> CollectConfig:
    ap = ArgumentParser()
    add_arguments(ap, CollectConfig)
    return from_args(CollectConfig, ap.parse_args(argv))


def test_every_field_is_a_documented_flag():
    ap = ArgumentParser()
    add_arguments(ap, CollectConfig)
    help_text = " ".join(ap.format_help().split())
    flags = {f.name: f.metadata.get("flag", "--" + f.name.replace("_", "-")) for f in dataclasses.fields(CollectConfig)}
    for f in dataclasses.fields(CollectConfig):
        assert f.metadata["help"], f.name
        assert flags[f.name] in help_text
        assert " ".join(f.metadata["help"].split()) in help_text, f.name
    assert flags["env_overrides"] == "--set" and flags["progress"] == "--quiet"


def test_defaults_of_the_command_line_are_the_dataclass_defaults():
    assert parse([]) == CollectConfig()


def test_flags_to_config():
    got = parse(
        ["--env", "ego_room", "--episodes", "3", "--out", "d", "--workers", "2", "--seed", "7", "--resume"]
        + ["--max-steps", "12", "--episodes-per-shard", "2", "--backend", "ray", "--ray-address", "auto"]
        + ["--episode-timeout", "9.5", "--max-retries", "0", "--compression", "lzf", "--quiet"]
        + ["--set", "size=48", "--set", 'scene_classes=["kitchen"]', "--set", "shadows=false"]
    )
    assert got == CollectConfig(
        env="ego_room",
        episodes=3,
        out=Path("d"),
        workers=2,
        seed=7,
        resume=True,
        max_steps=12,
        episodes_per_shard=2,
        backend="ray",
        ray_address="auto",
        episode_timeout=9.5,
        max_retries=0,
        compression="lzf",
        env_overrides={"size": 48, "scene_classes": ["kitchen"], "shadows": False},
        progress=False,
    )


def test_set_values_are_toml_values_and_json_ones_still_read():
    assert parse_set(["size=128", "a=1.5", "b=true", 'c="x y"', "d=[1, 2]", "e=[1,2]", "f=text", "g=null"]) == {
        "size": 128,
        "a": 1.5,
        "b": True,
        "c": "x y",
        "d": [1, 2],
        "e": [1, 2],
        "f": "text",
        "g": None,
    }
    assert parse_set(["size=1", "size=2"]) == {"size": 2}
    with pytest.raises(UserError, match="^--set = size; expected key=value"):
        parse_set(["size"])


def test_plan_of_a_config(tmp_path):
    config = plan_config(CollectConfig("ego_room", episodes=5, max_steps=9, env_overrides={"size": 32}))
    assert config["env_kwargs"]["size"] == 32 and config["max_episode_steps"] == 9
    assert config["episodes_per_shard"] == 100 and config["policy"] == "explore"


def test_keyword_form_and_config_form_are_one_collection(tmp_path):
    small = dict(max_steps=4, episodes_per_shard=1, env_overrides={"size": 32}, progress=False)
    a = collect("ego_room", 2, tmp_path / "a", workers=1, seed=3, log=lambda *_: None, **small)
    b = collect(CollectConfig("ego_room", 2, tmp_path / "b", workers=1, seed=3, **small), log=lambda *_: None)
    assert a["config"] == b["config"]
    hashes = [{s["name"]: s["sha256"] for s in load_manifest(tmp_path / d)["shards"]} for d in "ab"]
    assert hashes[0] == hashes[1] and len(hashes[0]) == 2
    with pytest.raises(TypeError, match="no other fields"):
        collect(CollectConfig("ego_room", 2, tmp_path / "c"), workers=2)
    # workers=1 collects in this process: the env stays cached for the next job, and a benchmark can reuse it
    assert isinstance(cached_envs()[-1], gym.Env)
