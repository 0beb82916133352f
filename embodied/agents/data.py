"""Dataset directories -> the tasks they feed, by the manifest's ``config.env_id``.

Grasp-v0 -> grasp, Push-v0 -> push, Poke-v0 -> poke, Look-v0 -> look (identity views),
EgoMotion* -> ego (egocentric video). Readers are imported by name from
``embodied.data.readers`` when needed, so agents import before every reader exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import ConcatDataset, Dataset

from embodied.agents.base import AgentDataError
from embodied.data.manifest import load_manifest

#: env name (the part of the id between "/" and "-v") -> kind of data
KINDS = {"Grasp": "grasp", "Push": "push", "Poke": "poke", "Look": "look", "EgoMotion": "ego"}


def env_id_of(directory: Path) -> str:
    """The env id a dataset was collected from (manifest ``config.env_id``, else top-level ``env_id``)."""
    try:
        manifest = load_manifest(Path(directory))
    except ValueError as e:
        raise AgentDataError(str(e)) from None
    env_id = (manifest.get("config") or {}).get("env_id") or manifest.get("env_id")
    if not env_id:
        raise AgentDataError(f"dataset {directory}: its manifest names no config.env_id")
    return str(env_id)


def kind_of(env_id: str) -> str:
    """'embodied/Grasp-v0' -> 'grasp'; any 'EgoMotion...' env -> 'ego'."""
    name = env_id.split("/")[-1].split("-v")[0]
    for prefix, kind in KINDS.items():
        if name == prefix or (kind == "ego" and name.startswith(prefix)):
            return kind
    raise AgentDataError(f"no learner task uses data of env {env_id!r}; known envs: {sorted(KINDS)}")


def classify(dirs: list[Path]) -> dict[str, list[Path]]:
    """Directories grouped by kind of data: {"grasp": [...], "ego": [...], ...}."""
    if not dirs:
        raise AgentDataError("no dataset directories given (--data DIR ...)")
    out: dict[str, list[Path]] = {}
    for d in dirs:
        out.setdefault(kind_of(env_id_of(Path(d))), []).append(Path(d))
    return out


def require(groups: dict[str, list[Path]], kind: str, agent: str, task: str) -> list[Path]:
    """The directories of ``kind``; AgentDataError naming the agent, task and what was given otherwise."""
    if kind not in groups:
        given = ", ".join(f"{k}: {[str(p) for p in v]}" for k, v in groups.items()) or "nothing"
        env = {v: k for k, v in KINDS.items()}[kind]
        raise AgentDataError(f"agent {agent!r} needs {kind} data (env {env}-v0) for its {task} task; got {given}")
    return groups[kind]


def reader(name: str) -> Callable[..., Dataset]:
    """A reader class of ``embodied.data.readers`` by name (AgentDataError when it does not exist yet)."""
    from embodied.data import readers

    cls = getattr(readers, name, None)
    if cls is None:
        raise AgentDataError(f"embodied.data.readers has no {name}; this data cannot be read yet")
    return cls


def open_all(name: str, dirs: list[Path], **kwargs: Any) -> Dataset:
    """One reader over every directory (concatenated); errors name the directory that failed."""
    parts = []
    for d in dirs:
        try:
            parts.append(reader(name)(d, **kwargs))
        except AgentDataError:
            raise
        except Exception as e:  # corrupt shard, missing observation...: say which dataset
            raise AgentDataError(f"cannot read dataset {d} with {name}: {type(e).__name__}: {e}") from e
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def check_dataset(task: str, ds: Dataset, keys: tuple[str, ...]) -> None:
    """Fail early and clearly: an empty dataset, an unreadable first item, or items lacking ``keys``."""
    try:
        n = len(ds)  # type: ignore[arg-type]
    except TypeError:
        raise AgentDataError(f"the dataset of task {task!r} has no length") from None
    if n == 0:
        raise AgentDataError(f"the dataset of task {task!r} is empty")
    try:
        item = ds[0]
    except Exception as e:
        raise AgentDataError(f"the dataset of task {task!r} cannot be read: {type(e).__name__}: {e}") from e
    missing = [k for k in keys if k not in item]
    if missing:
        raise AgentDataError(f"items of task {task!r} lack {missing}; they have {sorted(item)}")
