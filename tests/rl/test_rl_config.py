"""RLConfig: its docstrings are the --help, presets under rl/ load and check, flags and overrides layer."""

import dataclasses
from pathlib import Path

import pytest

from embodied.cli import UserError
from embodied.rl.config import (
    PRESET_DIR,
    RLConfig,
    build_parser,
    check_values,
    list_presets,
    load_preset,
    parse_args,
    parse_overrides,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_field_has_a_help_that_is_its_flags_help():
    names = [f.name for f in dataclasses.fields(RLConfig)]
    text = " ".join(build_parser().format_help().split())
    for f in dataclasses.fields(RLConfig):
        assert f.metadata["help"], f.name
        assert f"--{f.name.replace('_', '-')}" in text
        assert " ".join(f.metadata["help"].split()) in text, f.name
    assert len(names) == 36


def test_defaults_without_a_preset_are_the_dataclass_defaults(tmp_path):
    cfg = parse_args(["--out", str(tmp_path)])
    assert cfg == RLConfig(out=tmp_path)
    assert (cfg.env, cfg.algo, cfg.encoder, cfg.features, cfg.steps, cfg.n_envs) == (
        "reach",
        "ppo",
        "random",
        "keypoints",
        20000,
        4,
    )


def test_env_kwargs_are_toml_values():
    items = ["size=32", 'categories=["cup", "bowl"]', "split='heldout'", "step_size=0.02", "flag=true", "name=abc"]
    assert parse_overrides(items, "--env-kwargs") == {
        "size": 32,
        "categories": ["cup", "bowl"],
        "split": "heldout",
        "step_size": 0.02,
        "flag": True,
        "name": "abc",  # not a TOML value: the text as it is
    }
    with pytest.raises(UserError, match="^--env-kwargs = size; expected key=value"):
        parse_overrides(["size"], "--env-kwargs")


def test_presets_load_and_flags_override_them(tmp_path):
    assert {"reach_ppo", "reach_sac"} <= set(list_presets())
    assert PRESET_DIR == ROOT / "rl"
    for name in list_presets():
        RLConfig(**load_preset(name))  # every preset is a valid config
    cfg = parse_args(["--preset", "reach_sac", "--out", str(tmp_path), "--steps", "300", "--env-kwargs", "size=40"])
    assert (cfg.algo, cfg.encoder, cfg.learning_starts, cfg.batch_size) == ("sac", "nature", 500, 128)  # the preset
    assert cfg.steps == 300 and cfg.env_kwargs == {"size": 40} and cfg.preset == "reach_sac"  # the flags
    cfg = parse_args(["--preset", "reach_ppo", "--out", str(tmp_path), "--encoder", "nature", "--vec", "subproc"])
    assert (cfg.steps, cfg.threads, cfg.encoder, cfg.vec) == (60000, 1, "nature", "subproc")


def test_a_preset_file_by_path_and_a_switch_turned_off(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('description = "x"\nfinetune = true\nlr = 1\n[env_kwargs]\nsize = 48\n')
    cfg = parse_args(["--preset", str(path), "--out", str(tmp_path), "--env-kwargs", "step_size=0.01"])
    assert cfg.finetune is True and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.env_kwargs == {"size": 48, "step_size": 0.01}  # the preset's table, then the flag's overrides
    assert parse_args(["--preset", str(path), "--out", str(tmp_path), "--no-finetune"]).finetune is False


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"bogus": 1}, "p.toml: bogus = 1; expected a key of RLConfig, one of algo,"),
        ({"out": "x"}, "p.toml: out = x; expected a key of RLConfig"),
        ({"steps": 0}, "p.toml: steps = 0; expected a positive integer"),
        ({"steps": 2.5}, "p.toml: steps = 2.5; expected an integer"),
        ({"lr": float("nan")}, "p.toml: lr = nan; expected a finite number > 0"),
        ({"finetune": 1}, "p.toml: finetune = 1; expected true or false"),
        ({"algo": "dqn"}, "p.toml: algo = dqn; expected one of ppo, sac"),
        ({"env": 3}, "p.toml: env = 3; expected a string"),
        ({"env_kwargs": 3}, "p.toml: env_kwargs = 3; expected a table"),
    ],
)
def test_bad_preset_values_are_one_line(raw, line):
    with pytest.raises(UserError) as e:
        check_values(raw, "p.toml:")
    assert str(e.value).startswith(line)


def test_unknown_preset_names_the_presets():
    with pytest.raises(UserError, match=r"^--preset = nope; expected an RL preset \(one of .*reach_ppo"):
        load_preset("nope")
