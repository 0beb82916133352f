"""Input checks shared by the environments: one clear ``ValueError`` per bad value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

SPLITS = ("train", "heldout")


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int, or ValueError unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r}; expected a positive integer")
    return int(value)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    return split


def check_categories(categories: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Library categories as a list (None: all), or ValueError naming the unknown ones."""
    from embodied.sim.objects import CATEGORIES

    if categories is None:
        return None
    categories = [categories] if isinstance(categories, str) else list(categories)
    if not categories or any(c not in CATEGORIES for c in categories):
        raise ValueError(f"categories={categories!r}; expected a non-empty subset of {CATEGORIES}")
    return categories


def check_action(space: spaces.Space, action: Any) -> np.ndarray:
    """The action as an array, or ValueError naming it when it is NaN, mis-shaped or outside ``space``."""
    if isinstance(space, spaces.Discrete):
        if isinstance(action, (float, np.floating)) and not float(action).is_integer():
            raise ValueError(f"action={action!r}; expected an integer in [0, {space.n})")
        try:
            a = int(np.asarray(action).reshape(()))
        except (TypeError, ValueError):
            raise ValueError(f"action={action!r}; expected an integer in [0, {space.n})") from None
        if not 0 <= a - int(space.start) < space.n:
            raise ValueError(f"action={action!r}; expected an integer in [{space.start}, {space.start + space.n})")
        return np.asarray(a)
    a = np.asarray(action, dtype=np.float64)
    if a.shape != space.shape:
        raise ValueError(f"action={action!r} has shape {a.shape}; expected {space.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action={action!r} contains NaN or inf; expected finite values")
    if isinstance(space, spaces.MultiDiscrete):
        if not np.all(a == np.round(a)) or np.any(a < 0) or np.any(a >= space.nvec):
            raise ValueError(f"action={action!r}; expected integers in [0, {space.nvec.tolist()})")
    elif isinstance(space, spaces.Box):
        # a float32 round-off above the bound is still in range
        tol = 1e-6 * np.maximum(1.0, np.abs(space.high))
        if np.any(a < space.low - tol) or np.any(a > space.high + tol):
            raise ValueError(f"action={action!r}; expected values in [{space.low.tolist()}, {space.high.tolist()}]")
    return a


def check_number(name: str, value: Any, low: float, what: str, strict: bool = True) -> float:
    """``value`` as a float when it is a finite real number (not a bool) > ``low`` (>= with
    ``strict=False``); else ``ValueError("<name>=<value>; expected <what>")``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= low if strict else value < low):
        raise ValueError(f"{name}={value!r}; expected {what}")
    return float(value)
