"""A collection as ``scripts/collect.py`` (and the main job) runs it: checks, work, one summary line."""

from __future__ import annotations

import time
from typing import Any

from embodied.cli import UserError
from embodied.collect.backends import CollectionError
from embodied.collect.runner import CollectConfig, RequestError, collect, preflight


def summary(manifest: dict[str, Any], seconds: float) -> str:
    """One line on a finished collection: counts, bytes, time and frames/s (``seconds`` it took)."""
    t = manifest["totals"]
    rate = "n/a" if t["success_rate"] is None else f"{t['success_rate']:.3f}"
    return (
        f"episodes {t['episodes']}  frames {t['frames']}  success rate {rate}  "
        f"invalid retried {t['invalid_retried']}  discarded {t['discarded']}  "
        f"bytes {t['bytes'] / 1e6:.1f} MB  time {seconds:.1f} s  ({t['frames'] / max(seconds, 1e-9):.0f} frames/s)"
    )


def collect_and_report(request: CollectConfig) -> dict[str, Any]:
    """Every check of ``request`` before any work, then :func:`collect`, then its :func:`summary`
    printed; the manifest. A bad request or a failed worker is a UserError (completed shards are
    kept and ``resume`` continues)."""
    try:
        preflight(request)
    except RequestError as e:
        raise UserError(str(e)) from None
    t0 = time.perf_counter()
    try:
        manifest = collect(request)
    except CollectionError as e:
        raise UserError(str(e)) from e
    print(summary(manifest, time.perf_counter() - t0))
    return manifest
