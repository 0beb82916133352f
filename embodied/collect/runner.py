"""Plan, run, resume and verify a collection; what ``scripts/collect.py`` calls.

A collection is a :class:`CollectConfig`; its fields' ``help`` are the ``scripts/collect.py`` flags::

    collect(CollectConfig("ego_room", episodes=100, out=Path("data/ego"), workers=2))
    collect("ego_room", 100, "data/ego", workers=2)          # the same, keyword form
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from embodied import __version__
from embodied.cli import nonnegative_int, positive_float, positive_int
from embodied.collect.backends import (
    CollectionError,
    default_workers,
    probe_address,
    ray_connection,
    run_local,
    run_ray,
)
from embodied.collect.worker import ShardJob
from embodied.config import apply_overrides, option
from embodied.data.manifest import SCHEMA_VERSION, load_manifest, manifest_path, save_manifest, shard_name
from embodied.data.shards import CorruptShardError, open_shard, sha256_file
from embodied.envs.registry import PRESETS, explain_kwargs_error, resolve

FRAMES_PER_SHARD = 1000  # target; shards of a few MB to a few tens of MB at 64-128 px
BACKENDS = ("local", "ray")


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set`` items ``KEY=VALUE`` as env kwargs (values read by :func:`embodied.config.parse_value`)."""
    return apply_overrides({}, pairs, what="--set")


@dataclass(frozen=True)
class CollectConfig:
    """One collection request: what :func:`collect` runs. Each field's ``help`` is its flag's
    ``--help`` text in ``scripts/collect.py``, whose parser is made from this class
    (:func:`embodied.config.add_arguments`)."""

    env: str | None = option(None, f"env preset name or registered id; presets: {', '.join(sorted(PRESETS))}")
    episodes: int = option(10, "number of episodes (default: 10)", type=positive_int)
    out: Path | None = option(None, "dataset directory (must be empty unless --resume)", type=Path)
    workers: int | None = option(
        None,
        f"parallel worker processes (default: one per core, here {default_workers()}); joining a Ray "
        "cluster (--address): the most shards in flight on it (default: its CPUs)",
        type=positive_int,
    )
    seed: int = option(0, "seed S of episode 0; episode i uses S + i (default: 0)", type=nonnegative_int)
    policy: str | None = option(None, "random | informed | explore (default: the preset's policy)")
    max_steps: int | None = option(
        None, "steps per episode (default: the preset's max_episode_steps)", type=positive_int
    )
    episodes_per_shard: int | None = option(
        None, "episodes in one shard file (default: about 1000 frames per shard)", type=positive_int
    )
    resume: bool = option(False, "continue the collection in --out (default: off)")
    backend: str = option("local", "local process pool or Ray actors (default: local)", choices=list(BACKENDS))
    ray_address: str | None = option(
        None,
        "join a running Ray cluster with --backend ray: auto (RAY_ADDRESS, else the cluster `ray start` left "
        "on this node) or HOST:PORT of its head; it is neither started nor stopped here, every node runs as "
        "many shards at once as it has CPUs, --workers caps the total, and --out must be shared by every "
        "node (also --address; default: start a local Ray of --workers CPUs and stop it after)",
        metavar="auto|HOST:PORT",
    )
    episode_timeout: float = option(
        120.0,
        "seconds before an episode counts as hung and is retried with the next seed (default: 120)",
        type=positive_float,
    )
    max_retries: int = option(
        3,
        "retries (next seed) for an invalid or hung episode before it is discarded (default: 3)",
        type=nonnegative_int,
    )
    compression: str | None = option(
        None, "HDF5 compression of image chunks (default: none, fastest reads)", choices=["lzf", "gzip"]
    )
    env_overrides: dict[str, Any] = option(
        {},
        "override an env kwarg of the preset, e.g. --set size=128 (repeatable; values are TOML, else text)",
        flag="--set",
        action="append",
        metavar="KEY=VALUE",
        convert=parse_set,
    )
    progress: bool = option(True, "no progress bar", flag="--quiet", action="store_false")


def plan_config(request: CollectConfig) -> dict[str, Any]:
    """The resolved, JSON-able description of a collection (saved in the manifest)."""
    env, episodes, seed, policy = request.env, request.episodes, request.seed, request.policy
    max_steps, episodes_per_shard = request.max_steps, request.episodes_per_shard
    preset = resolve(env)
    for name, value, lo in (
        ("episodes", episodes, 1),
        ("seed", seed, 0),
        ("max_steps", max_steps, 1),
        ("episodes_per_shard", episodes_per_shard, 1),
    ):
        if value is None and name in ("max_steps", "episodes_per_shard"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} = {value!r}; expected an integer >= {lo}")
    steps = max_steps or preset.max_episode_steps or 1000
    per_shard = episodes_per_shard or max(1, FRAMES_PER_SHARD // (steps + 1))
    return {
        "env_id": preset.id,
        "entry_point": preset.entry_point,
        "preset": preset.name,
        "env_kwargs": {**preset.kwargs, **(request.env_overrides or {})},
        "max_episode_steps": max_steps or preset.max_episode_steps,
        "policy": policy or preset.policy,
        "seed": seed,
        "episodes": episodes,
        "episodes_per_shard": per_shard,
        "max_retries": request.max_retries,
        "compression": request.compression,
    }


def _jobs(out: Path, config: dict[str, Any], todo: list[int], episode_timeout: float) -> list[ShardJob]:
    per, total = config["episodes_per_shard"], config["episodes"]
    return [
        ShardJob(
            out_dir=str(out),
            shard=k,
            name=shard_name(k),
            env_id=config["env_id"],
            entry_point=config["entry_point"],
            env_kwargs=config["env_kwargs"],
            max_episode_steps=config["max_episode_steps"],
            policy=config["policy"],
            first_episode=k * per,
            n_episodes=min(per, total - k * per),
            seed=config["seed"],
            total_episodes=total,
            max_retries=config["max_retries"],
            episode_timeout=episode_timeout,
            compression=config["compression"],
        )
        for k in todo
    ]


def _prepare_out(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a directory")
    if not resume and out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} is not empty; pass --resume to continue it or choose an empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {out} is not writable: {e.strerror}") from None


def _kept_shards(out: Path, manifest: dict[str, Any], log: Any) -> list[dict[str, Any]]:
    """Shards of a previous run that are intact; damaged ones are dropped to be redone."""
    kept = []
    for entry in manifest["shards"]:
        try:
            open_shard(out / entry["name"], entry["sha256"], entry["bytes"]).close()
            kept.append(entry)
        except CorruptShardError as e:
            log(f"redoing: {e}")
            (out / entry["name"]).unlink(missing_ok=True)
    return kept


class RequestError(ValueError):
    """A collection request that cannot run (bad value, unknown name, env kwargs the env rejects,
    an output directory that is not empty...): found by :func:`preflight` before anything is written."""


def check_env(config: dict[str, Any]) -> None:
    """Build the env of ``config`` once with its kwargs, and its policy, in this process (then close it):
    bad kwargs fail here with the env's own message, not inside a worker after the pool has started."""
    import gymnasium as gym

    import embodied  # noqa: F401  (registers the preset ids)
    from embodied.collect.policies import make_policy

    kwargs = dict(config["env_kwargs"])
    if config["max_episode_steps"] is not None:
        kwargs["max_episode_steps"] = config["max_episode_steps"]
    try:
        env = gym.make(config["env_id"], **kwargs)
    except (ValueError, TypeError) as e:
        raise RequestError(explain_kwargs_error(resolve(config["env_id"]), config["env_kwargs"], e)) from None
    try:
        make_policy(config["policy"], env)
    except ValueError:
        from embodied.collect import policies

        raise RequestError(f"policy = {config['policy']}; expected one of {', '.join(policies.NAMES)}") from None
    finally:
        env.close()


def preflight(request: CollectConfig) -> dict[str, Any]:
    """Every check of a collection request, before any work and without writing anything; the config
    saved in the manifest (:func:`plan_config`). ``workers`` None means one per core.

    Raises RequestError (a ValueError) naming the first bad value.
    """
    env, out, resume, backend = request.env, request.out, request.resume, request.backend
    max_retries, episode_timeout, compression = request.max_retries, request.episode_timeout, request.compression
    workers = default_workers() if request.workers is None else request.workers

    def bad(what: str, value: Any, expected: str) -> RequestError:
        return RequestError(f"{what} = {value}; expected {expected}")

    if backend not in BACKENDS:
        raise bad("backend", backend, f"one of {', '.join(BACKENDS)}")
    if request.ray_address is not None:
        if backend != "ray":
            raise bad("--address", request.ray_address, f"only with --backend ray (the backend is {backend})")
        try:
            probe_address(request.ray_address)  # HOST:PORT answers (a typo fails here, not after a minute)
        except ValueError as e:
            raise RequestError(str(e)) from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers <= 0:
        raise bad("workers", workers, "a positive integer")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise bad("max_retries", max_retries, "an integer >= 0")
    if not (isinstance(episode_timeout, (int, float)) and math.isfinite(episode_timeout) and episode_timeout > 0):
        raise bad("episode_timeout", episode_timeout, "a finite number of seconds > 0")
    if compression not in (None, "lzf", "gzip"):
        raise bad("compression", compression, "lzf, gzip or none")
    try:
        resolve(env)
    except ValueError:
        raise bad("env", env, f"an env preset ({', '.join(sorted(PRESETS))}) or a registered id") from None
    if out is None:
        raise bad("out", "(missing)", "a dataset directory")
    try:
        config = plan_config(request)
    except RequestError:
        raise
    except ValueError as e:
        raise RequestError(str(e)) from None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise bad("out", out, "a directory (it is a file)")
    if not resume and out.exists() and any(out.iterdir()):
        raise bad("out", out, "an empty directory, or --resume to continue the collection in it (it is not empty)")
    if resume and manifest_path(out).exists():
        try:
            previous = load_manifest(out)
        except ValueError as e:
            raise RequestError(f"--resume: {e}") from None
        for key, value in config.items():
            if previous["config"].get(key) != value:
                raise RequestError(
                    f"--resume with {key} = {value!r}; expected {previous['config'].get(key)!r}, "
                    f"what {out} was collected with"
                )
    check_env(config)
    return config


def collect(
    request: CollectConfig | str,
    episodes: int | None = None,
    out: Path | str | None = None,
    *,
    log: Any = print,
    **fields: Any,
) -> dict[str, Any]:
    """Collect ``request.episodes`` episodes of ``request.env`` into ``request.out``; the final manifest.

    Episode i is run from seed ``seed + i`` whatever ``workers`` or ``backend``.
    A killed run keeps every completed shard; ``resume=True`` finishes it. The keyword form
    ``collect(env, episodes, out, workers=..., ...)`` takes :class:`CollectConfig`'s fields.
    """
    if not isinstance(request, CollectConfig):  # the keyword form
        given = {"episodes": episodes} if episodes is not None else {}
        request = CollectConfig(env=request, out=None if out is None else Path(out), **given, **fields)
    elif episodes is not None or out is not None or fields:
        raise TypeError("collect(CollectConfig) takes no other fields; use dataclasses.replace")
    joining = request.backend == "ray" and request.ray_address is not None  # the cluster's CPUs, not ours
    request = dataclasses.replace(request, workers=request.workers or (None if joining else default_workers()))
    config = preflight(request)
    out = Path(request.out)
    with contextlib.ExitStack() as stack:  # Ray connected (a bad --address fails) before anything is written
        slots = (
            stack.enter_context(ray_connection(request.ray_address, request.workers, log))
            if request.backend == "ray"
            else min(request.workers, max(1, math.ceil(request.episodes / config["episodes_per_shard"])))
        )
        return _run(request, config, out, slots, joining, log)


def _run(
    request: CollectConfig, config: dict[str, Any], out: Path, slots: int, joining: bool, log: Any
) -> dict[str, Any]:
    manifest = _start(out, config, request.resume, log)
    shards = manifest["shards"]
    n_shards = math.ceil(request.episodes / config["episodes_per_shard"])
    done = {s["index"] for s in shards}
    jobs = _jobs(out, config, [k for k in range(n_shards) if k not in done], request.episode_timeout)
    shard_timeout = request.episode_timeout * (request.max_retries + 1) * config["episodes_per_shard"] + 300.0
    runner = (
        run_local(jobs, min(slots, max(1, len(jobs))), shard_timeout)
        if request.backend == "local"
        else run_ray(jobs, slots, shard_timeout, retries=2 if joining else 0)
    )
    bar = tqdm(
        total=request.episodes,
        initial=sum(s["episodes"][1] - s["episodes"][0] for s in shards),
        unit="ep",
        desc=f"collect {config['preset']}",
        disable=not request.progress,
    )
    t0, new_frames = time.perf_counter(), 0
    try:
        for result in runner:
            shards.append(result)
            shards.sort(key=lambda s: s["index"])
            save_manifest(out, manifest)
            new_frames += result["frames"]
            bar.update(result["episodes"][1] - result["episodes"][0])
            bar.set_postfix(fps=f"{new_frames / max(time.perf_counter() - t0, 1e-9):.0f}")
    finally:
        bar.close()
    manifest["complete"] = True
    manifest["totals"] = totals(shards)
    save_manifest(out, manifest)
    return manifest


def _start(out: Path, config: dict[str, Any], resume: bool, log: Any) -> dict[str, Any]:
    """``out`` made ready and its manifest written, incomplete: no stale temporaries, the intact shards
    of a previous run kept when resuming."""
    _prepare_out(out, resume)
    for stale in out.glob(".*.tmp"):  # shards in flight when a previous run died
        stale.unlink()
    shards: list[dict[str, Any]] = []
    if resume and manifest_path(out).exists():
        shards = _kept_shards(out, load_manifest(out), log)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "embodied_version": __version__,
        "config": config,
        "env_id": config["env_id"],
        "complete": False,
        "shards": shards,
    }
    save_manifest(out, manifest)
    return manifest


def totals(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary counts over shard entries."""
    eps = sum(s["n_episodes"] for s in shards)
    rates = [(s["success_rate"], s["n_episodes"]) for s in shards if s.get("success_rate") is not None]
    return {
        "episodes": eps,
        "frames": sum(s["frames"] for s in shards),
        "steps": sum(s["steps"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "retries": sum(len(s["retries"]) for s in shards),
        "invalid_retried": sum(1 for s in shards for r in s["retries"] if r["reason"] == "invalid"),
        "discarded": sum(len(s["discarded"]) for s in shards),
        "success_rate": (sum(r * n for r, n in rates) / max(1, sum(n for _, n in rates))) if rates else None,
    }


def verify(out: Path) -> list[str]:
    """Re-hash every shard of the dataset at ``out``; returns one message per problem (empty = intact)."""
    manifest = load_manifest(Path(out))
    problems = []
    for entry in manifest["shards"]:
        path = Path(out) / entry["name"]
        if not path.exists():
            problems.append(f"{entry['name']}: missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{entry['name']}: {path.stat().st_size} bytes, manifest says {entry['bytes']} (truncated)")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['name']}: sha256 differs from the manifest (altered)")
    if not manifest.get("complete"):
        problems.append("manifest: collection not complete (finish it with --resume)")
    return problems


__all__ = [
    "CollectConfig",
    "CollectionError",
    "RequestError",
    "check_env",
    "collect",
    "parse_set",
    "plan_config",
    "preflight",
    "totals",
    "verify",
]
