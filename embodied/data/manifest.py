"""The dataset manifest: one JSON file that says what a directory of shards holds.

Rewritten atomically after every completed shard, so it always describes
exactly the shards that are safely on disk; ``--resume`` trusts it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def manifest_path(directory: Path) -> Path:
    return Path(directory) / MANIFEST_NAME


def load_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of ``directory``; ValueError naming the path when absent or unreadable."""
    path = manifest_path(directory)
    if not path.exists():
        raise ValueError(f"{directory} is not a dataset: no {MANIFEST_NAME}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path} has schema_version={version!r}; this code reads {SCHEMA_VERSION}")
    return manifest


def save_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    path = manifest_path(directory)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
