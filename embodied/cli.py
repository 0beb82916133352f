"""One-line errors for the command-line scripts.

A user error (a bad value on the command line: wrong type, out of range, NaN, unknown
name, missing path, a dataset of the wrong kind) ends a script with one line on stderr
and exit status 2, before any work starts::

    error: <what> = <value>; expected <what>

Anything else (a bug) keeps its traceback. A script uses three pieces::

    from embodied.cli import ArgumentParser, UserError, catch_user_errors, positive_int, run, user_errors

    @catch_user_errors                                    # main(argv) returns 2 after the line
    def main(argv=None) -> int:
        ap = ArgumentParser(description=__doc__)          # argparse errors become one line too
        ap.add_argument("--steps", type=positive_int, default=10)
        args = ap.parse_args(argv)
        if not args.data.is_dir():
            raise UserError("--data", args.data, "an existing dataset directory")
        with user_errors("--env"):                        # a library ValueError here is the user's
            env = make(args.env)
        ...
        return 0

    if __name__ == "__main__":
        run(main)                                         # sys.exit(main()): 0, or 2 after the line

Argument types with one-line messages: ``positive_int``, ``nonnegative_int``,
``positive_float``, ``finite_float``, ``probability``, ``existing_path``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

EXIT_USER_ERROR = 2
_MISSING = object()


def show(value: Any) -> str:
    """A value as a user typed it: ``abc``, ``-5``, ``nan``, ``runs/x``; quoted when empty or spaced."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return value if value and not any(c.isspace() for c in value) and "'" not in value else repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e16 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def choices(names: Iterable[Any]) -> str:
    """``one of a, b, c`` for an ``expected`` clause."""
    return "one of " + ", ".join(str(n) for n in names)


class UserError(ValueError):
    """A bad input the user can fix: printed by :func:`run` as ``error: <message>``, exit 2, no traceback.

    ``UserError(what, value, expected)`` reads ``what = value; expected expected``;
    ``UserError(message)`` is printed as it is (for a library's own one-line message).
    """

    def __init__(self, what: str, value: Any = _MISSING, expected: str | None = None) -> None:
        if value is _MISSING:
            message = what
        else:
            message = f"{what} = {show(value)}"
            if expected:
                message += f"; expected {expected}"
        super().__init__(message)
        self.what, self.value, self.expected = what, value, expected


@contextlib.contextmanager
def user_errors(what: str | None = None, types: tuple[type[BaseException], ...] = (ValueError,)) -> Iterator[None]:
    """Turn ``types`` raised inside the block into a :class:`UserError` (``what: message``).

    Wrap only calls whose errors are about the user's input (validating a name, building an env
    from the user's kwargs, opening the user's dataset), never the work itself: a ValueError from
    a bug must keep its traceback.
    """
    try:
        yield
    except UserError:
        raise
    except types as e:
        text = _one_line(e)
        raise UserError(f"{what}: {text}" if what and not text.startswith(what) else text) from e


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, KeyError) and len(e.args) == 1:
        text = str(e.args[0])
    return " ".join(text.split())


_INVALID = re.compile(r"argument (?P<opt>[^:]+): invalid (?P<type>\w+) value: (?P<value>.*)$")
_CHOICE = re.compile(r"argument (?P<opt>[^:]+): invalid choice: (?P<value>.*?) \(choose from (?P<choices>.*)\)$")
_TYPED = re.compile(r"argument (?P<opt>[^:]+): (?P<rest>.*; expected .*)$")
_TYPE_WORDS = {"int": "an integer", "float": "a number", "Path": "a path"}


def _argparse_line(message: str) -> str:
    """argparse's message in the ``what = value; expected ...`` form where it is about a value."""
    message = " ".join(message.split())
    m = _CHOICE.match(message)
    if m:
        opts = ", ".join(c.strip().strip("'") for c in m["choices"].split(","))
        return f"{m['opt'].split('/')[-1]} = {m['value'].strip(chr(39))}; expected one of {opts}"
    m = _INVALID.match(message)
    if m:
        expected = _TYPE_WORDS.get(m["type"], f"a valid {m['type']}")
        return f"{m['opt'].split('/')[-1]} = {m['value'].strip(chr(39))}; expected {expected}"
    m = _TYPED.match(message)
    if m:
        return f"{m['opt'].split('/')[-1]} = {m['rest']}"
    m = re.match(r"the following arguments are required: (?P<opts>.*)$", message)
    if m:
        return f"{m['opts']} = (missing); expected a value (see --help)"
    m = re.match(r"unrecognized arguments: (?P<args>.*)$", message)
    if m:
        return f"arguments = {m['args']}; expected only this script's options (see --help)"
    m = re.match(r"argument (?P<opt>[^:]+): expected (?P<rest>.*)$", message)
    if m:  # "expected one argument": the option came without its value
        return f"{m['opt'].split('/')[-1]} = (missing); expected {m['rest']} (see --help)"
    m = re.match(r"argument (?P<opt>[^:]+): (?P<rest>.*)$", message)
    if m:
        return f"{m['opt'].split('/')[-1]} = ?; expected {m['rest']} (see --help)"
    return message  # a script's own ap.error(...) text


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: --steps = abc; expected an integer``, exit 2).

    Help keeps argparse's layout; the description is shown raw (scripts' docstrings are examples).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit 2, like argparse (so direct ``ap.error(...)`` calls work too)."""
        _exit_user_error(UserError(_argparse_line(message)))


def _exit_user_error(e: UserError) -> NoReturn:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def catch_user_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a script's ``main(argv)``: a :class:`UserError` is printed as one line on stderr and
    ``main`` returns 2 (``EXIT_USER_ERROR``); anything else propagates with its traceback."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> Any:
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper


def run(main: Callable[..., Any], argv: list[str] | None = None) -> NoReturn:
    """``sys.exit`` with ``main(argv)``'s status: its int return value (0 for anything else), or 2 after
    one line for a :class:`UserError`. Other exceptions propagate with their traceback."""
    rc = catch_user_errors(main)(argv)
    sys.exit(rc if isinstance(rc, int) and not isinstance(rc, bool) else 0)


# -- argument types (argparse ``type=``): one-line messages through ArgumentParser.error --------------
def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        word = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{show(text)}; expected {word}") from None


def positive_int(text: str) -> int:
    """An integer > 0."""
    v = _number(text, int)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{v}; expected a positive integer")
    return v


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v}; expected an integer >= 0")
    return v


def finite_float(text: str) -> float:
    """A finite number (no NaN, no inf)."""
    v = _number(text, float)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{show(v)}; expected a finite number")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _number(text, float)
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{show(v)}; expected a finite number > 0")
    return v


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    v = _number(text, float)
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"{show(v)}; expected a finite number >= 0")
    return v


def probability(text: str) -> float:
    """A number in [0, 1]."""
    v = _number(text, float)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise argparse.ArgumentTypeError(f"{show(v)}; expected a number in [0, 1]")
    return v


def existing_path(text: str) -> Path:
    """A path that exists (file or directory)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{show(text)}; expected an existing path (it does not exist)")
    return path


def existing_dir(text: str) -> Path:
    """A directory that exists."""
    path = existing_path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{show(text)}; expected a directory (it is a file)")
    return path


__all__ = [
    "EXIT_USER_ERROR",
    "ArgumentParser",
    "UserError",
    "catch_user_errors",
    "choices",
    "existing_dir",
    "existing_path",
    "finite_float",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "probability",
    "run",
    "show",
    "user_errors",
]
