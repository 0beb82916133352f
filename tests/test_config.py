"""embodied.config: override values are TOML values, applied to nested tables, one unknown-key check."""

from __future__ import annotations

import doctest
import math

import pytest

import embodied.config
from embodied.cli import UserError
from embodied.config import UnknownKeyError, apply_overrides, check_keys, parse_override, parse_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("6", 6),
        ("-5", -5),
        ("1_000", 1000),
        ("0.5", 0.5),
        ("1e-4", 1e-4),
        ("1E5", 1e5),
        ("true", True),
        ("false", False),
        ('"text"', "text"),
        ("'literal'", "literal"),
        ('"true"', "true"),
        ('"6"', "6"),
        ("cuda", "cuda"),  # bare text: the string itself
        ("scene_class_id", "scene_class_id"),
        ("abc def", "abc def"),
        ("", ""),
        ("  7  ", 7),
        ("[1, 2]", [1, 2]),
        ("[1,2]", [1, 2]),
        ('["kitchen", "office"]', ["kitchen", "office"]),
        ("[]", []),
        ("{a = 1, b = [2]}", {"a": 1, "b": [2]}),
        ("null", None),
        ("1\nw = 2", "1\nw = 2"),  # only one value counts
    ],
)
def test_parse_value(text, value):
    got = parse_value(text)
    assert got == value
    assert type(got) is type(value)  # 1 is not 1.0, True is not 1


def test_parse_value_inf_and_nan_are_floats():
    assert parse_value("inf") == math.inf
    assert math.isnan(parse_value("nan"))


def test_parse_value_reads_what_json_did():
    """``collect.py --set`` parsed JSON before: JSON numbers, booleans, strings and arrays read the same."""
    import json

    for text in ["128", "-3", "0.25", "2.5e-3", "true", "false", '"a b"', "[1, 2.5, true]", '["x"]', "null"]:
        assert parse_value(text) == json.loads(text), text


def test_parse_override():
    assert parse_override("size=128") == (("size",), 128)
    assert parse_override("options.weights.identity=6") == (("options", "weights", "identity"), 6)
    assert parse_override("train.lr=1e-4") == (("train", "lr"), 1e-4)
    assert parse_override("a=b=c") == (("a",), "b=c")  # the first = splits
    assert parse_override(" k = [1, 2] ") == (("k",), [1, 2])


@pytest.mark.parametrize("item", ["size", "=1", "a..b=1", "a.=1", ".a=1"])
def test_parse_override_rejects_malformed(item):
    with pytest.raises(UserError) as e:
        parse_override(item, what="--set")
    assert str(e.value).startswith(f"--set = {item}; expected key=value")


def test_apply_overrides_nested_and_copied():
    base = {"train": {"lr": 0.001, "steps": 10}, "options": {"weights": {"grasp": 1}}}
    out = apply_overrides(
        base, ["train.lr=1e-4", "options.weights.identity=6", "options.new.deep.key=true", "train.steps=20"]
    )
    assert out == {
        "train": {"lr": 1e-4, "steps": 20},
        "options": {"weights": {"grasp": 1, "identity": 6}, "new": {"deep": {"key": True}}},
    }
    assert base == {"train": {"lr": 0.001, "steps": 10}, "options": {"weights": {"grasp": 1}}}  # untouched
    assert apply_overrides({"k": 1}, ["k=2", "k=3"]) == {"k": 3}  # the last wins
    assert apply_overrides({}, []) == {}


def test_apply_overrides_into_a_value_is_a_user_error():
    with pytest.raises(UserError, match=r"^options\.k = 6; expected a table to set options\.k\.x in"):
        apply_overrides({"options": {"k": 6}}, ["options.k.x=1"])


def test_check_keys_names_the_key_and_lists_the_known_ones():
    check_keys({"size": 1}, ["size", "views"])  # known: nothing raised
    check_keys({}, [])
    with pytest.raises(UnknownKeyError) as e:
        check_keys(
            {"size": 64, "bogus": 1, "other": 2}, ["views", "size"], prefix="train.", expected="a key of [train]"
        )
    assert str(e.value) == "train.bogus = 1; expected a key of [train], one of size, views"
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)
    assert "\n" not in str(e.value)


def test_docstring_examples():
    assert doctest.testmod(embodied.config).failed == 0


def test_preset_files_use_the_one_check(tmp_path):
    """Env and agent preset files name an unknown key and list the known ones, on one line."""
    from embodied.agents.registry import parse_preset
    from embodied.envs.registry import load_presets

    (tmp_path / "bad_env.toml").write_text('id = "x/Y-v0"\nentry_point = "a:B"\npolcy = "random"\n')
    with pytest.raises(UnknownKeyError) as e:
        load_presets(tmp_path)
    assert "bad_env.toml: polcy = random; expected a key of an env preset, one of description, entry_point" in str(
        e.value
    )
    (tmp_path / "bad_agent.toml").write_text('agent = "a:B"\n[optons]\nk = 1\n')
    with pytest.raises(UnknownKeyError, match=r"bad_agent.toml: optons = .*expected a key of an agent preset, one of"):
        parse_preset(tmp_path / "bad_agent.toml")


def test_agent_overrides_go_through_the_one_parser():
    from embodied.agents.registry import apply_overrides as agent_overrides
    from embodied.agents.registry import check_preset, load_preset

    p = agent_overrides(load_preset("curious"), ["options.weights.identity=6", "train.lr=1e-4", "train.device=cpu"])
    assert p.options["weights"]["identity"] == 6 and p.train["lr"] == 1e-4 and p.train["device"] == "cpu"
    with pytest.raises(UserError, match=r"^override = lr=1; expected section\.key=value with section one of trunk"):
        agent_overrides(load_preset("curious"), ["lr=1"])
    with pytest.raises(UnknownKeyError, match=r"^train\.bogus = 1; expected a key of \[train\], one of "):
        check_preset(agent_overrides(load_preset("equivariant"), ["train.bogus=1"]))
    with pytest.raises(UnknownKeyError, match=r"^options\.nope = 1; expected an option of EquivariantAgent, one of "):
        check_preset(agent_overrides(load_preset("equivariant"), ["options.nope=1"]))
