"""One config path: ``key=value`` overrides, applied to nested tables, with one unknown-key check.

Every command line that changes a preset goes through here (env kwargs with ``collect.py --set``,
agent presets with ``train.py section.key=value``, RL runs)::

    >>> parse_value("6"), parse_value("1e-4"), parse_value("true"), parse_value("[1, 2]")
    (6, 0.0001, True, [1, 2])
    >>> parse_value('"text"'), parse_value("text")            # TOML string, or bare text as it is
    ('text', 'text')
    >>> apply_overrides({"options": {"k": 6}}, ["options.weights.identity=6"])
    {'options': {'k': 6, 'weights': {'identity': 6}}}
    >>> check_keys({"size": 64, "bogus": 1}, ["size", "views"], prefix="env kwarg ")
    Traceback (most recent call last):
    ...
    embodied.config.UnknownKeyError: env kwarg bogus = 1; expected a key, one of size, views

A config dataclass is also a command line, as cleanrl's ``Args`` are: each field's
``metadata["help"]`` is its ``--help`` text (see :func:`add_arguments` and :func:`from_args`).

A value is read as a TOML value (``tomllib``): integers, floats (``1e-4``, ``inf``), booleans,
``"quoted"`` or ``'literal'`` strings, arrays, inline tables ``{a = 1}``. ``null`` is None (TOML has
none; JSON's spelling, which ``--set`` took before). Text that is not a TOML value is taken as the
bare string it is (``device=cuda``), so quoting a string is needed only where it would read as
something else (``label="true"``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from embodied.cli import UserError, choices

__all__ = [
    "UnknownKeyError",
    "add_arguments",
    "apply_overrides",
    "check_keys",
    "from_args",
    "option",
    "parse_override",
    "parse_value",
    "set_key",
]

T = TypeVar("T")


class UnknownKeyError(UserError):
    """A key that is not one of the known ones: ``<prefix><key> = <value>; expected <what>, one of ...``."""


def parse_value(text: str) -> Any:
    """``text`` as a TOML value; ``null`` as None; anything TOML cannot read as the bare string ``text``.

    Surrounding whitespace is ignored. Only a single value counts: text that would make TOML read
    more than one key (``1\\nw = 2``) is a bare string too.
    """
    text = text.strip()
    if text == "null":
        return None
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def parse_override(item: str, *, what: str = "override") -> tuple[tuple[str, ...], Any]:
    """``"a.b.c=value"`` -> ``(("a", "b", "c"), parse_value("value"))``.

    Raises UserError ``<what> = <item>; expected key=value ...`` when there is no ``=`` or a dotted
    part of the key is empty.
    """
    key, sep, text = item.partition("=")
    parts = tuple(p.strip() for p in key.split("."))
    if not sep or not all(parts):
        raise UserError(what, item, "key=value, e.g. size=128")
    return parts, parse_value(text)


def set_key(table: dict[str, Any], path: Iterable[str], value: Any) -> None:
    """Set ``table[p0][p1]...[pn] = value`` in place, making the missing tables on the way.

    Raises UserError when a table on the way is already a plain value (``k=6``, then ``k.x=1``).
    """
    *heads, last = tuple(path)
    for depth, head in enumerate(heads):
        table = table.setdefault(head, {})
        if not isinstance(table, dict):
            dotted = ".".join(heads[: depth + 1])
            raise UserError(dotted, table, f"a table to set {'.'.join((*heads, last))} in (it is a value)")
    table[last] = value


def apply_overrides(table: Mapping[str, Any], overrides: Iterable[str], *, what: str = "override") -> dict[str, Any]:
    """A deep copy of ``table`` with each ``dotted.key=value`` of ``overrides`` set, in order (the last wins).

    Values are read by :func:`parse_value`; tables named by a dotted key are made when missing. Keys
    are not checked against anything: call :func:`check_keys` on the result where that matters.
    """
    out = copy.deepcopy(dict(table))
    for item in overrides:
        path, value = parse_override(item, what=what)
        set_key(out, path, value)
    return out


def check_keys(table: Mapping[str, Any], known: Iterable[str], *, prefix: str = "", expected: str = "a key") -> None:
    """The one unknown-key check: UnknownKeyError (a UserError, so a ValueError) for the first key of
    ``table`` that is not in ``known``, on one line naming it and listing the known ones::

        <prefix><key> = <value>; expected <expected>, one of <known, sorted>
    """
    names = set(known)
    for key, value in table.items():
        if key not in names:
            raise UnknownKeyError(f"{prefix}{key}", value, f"{expected}, {choices(sorted(names))}")


# -- config dataclasses as command lines ---------------------------------------------------------------
#: field metadata read here, not passed to ``add_argument``
_OWN_METADATA = ("flag", "convert", "cli")


def option(default: Any = dataclasses.MISSING, help: str = "", **metadata: Any) -> Any:  # noqa: A002
    """A dataclass field that is also a command-line option: ``help`` is its ``--help`` text, ``metadata``
    what :func:`add_arguments` reads (``type``, ``choices``, ``flag``...). A list or dict default is
    copied for each instance (a ``default_factory``)."""
    metadata = {"help": help, **metadata}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of the dataclass ``cls``, in field order (cleanrl's ``Args`` style).

    The option is ``--field-name`` (``metadata["flag"]`` to name it otherwise), its default the
    field's, and every other metadata entry goes to ``parser.add_argument`` as it is: ``help`` (the
    ``--help`` text), ``type``, ``choices``, ``metavar``, ``action``. An ``action="append"`` option
    starts from ``[]`` (its ``convert`` makes the field's value of the list). A ``bool`` field
    defaulting to False without an ``action`` is a ``store_true`` switch. ``metadata["cli"] = False``
    leaves a field off the command line; ``metadata["convert"]`` is applied by :func:`from_args` to
    what argparse parsed.
    """
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if meta.get("cli", True) is False:
            continue
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs = {k: v for k, v in meta.items() if k not in _OWN_METADATA}
        if kwargs.get("action") == "append":
            kwargs.setdefault("default", [])  # what argparse appends to (copied by argparse), not the field's
        elif f.default is not dataclasses.MISSING:
            kwargs.setdefault("default", f.default)
        elif f.default_factory is not dataclasses.MISSING:
            kwargs.setdefault("default", f.default_factory())
        if kwargs.get("default") is False and "action" not in kwargs:
            kwargs["action"] = "store_true"
        parser.add_argument(flag, dest=f.name, **kwargs)


def from_args(cls: type[T], args: argparse.Namespace, **changes: Any) -> T:
    """The dataclass ``cls`` from a namespace parsed with :func:`add_arguments` (each field's
    ``metadata["convert"]`` applied, e.g. ``KEY=VALUE`` strings to a dict), then ``changes``."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True) is False or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        convert = f.metadata.get("convert")
        values[f.name] = convert(value) if convert is not None else value
    return cls(**{**values, **changes})


_TYPE_WORDS = {"int": "an integer", "float": "a finite number", "str": "a string", "bool": "true or false"}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    return True  # other annotations: left to the class


def check_value(what: str, kind: str, value: Any) -> None:
    """UserError ``what = value; expected <kind>`` unless ``value`` is a ``kind`` (int, float, str, bool)."""
    if not _type_ok(kind, value):
        raise UserError(what, value, _TYPE_WORDS.get(kind, kind))


def check_fields(cls: type, raw: dict[str, Any], section: str) -> None:
    """Keys and value types of a preset table against the dataclass ``cls`` (one-line UserError)."""
    types = {f.name: f.type.__name__ if isinstance(f.type, type) else str(f.type) for f in dataclasses.fields(cls)}
    check_keys(raw, types, prefix=f"{section}.", expected=f"a key of [{section}]")
    for key, value in raw.items():
        check_value(f"{section}.{key}", types[key], value)
