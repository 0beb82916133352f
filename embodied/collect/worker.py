"""One shard of episodes, collected in whatever process runs it (pool worker or Ray actor).

A shard is a pure function of its job: episode i is run from seed S + i (retries
of invalid or timed-out episodes from S + i + r * N), so any worker, any backend,
any history gives the same bytes.
"""

from __future__ import annotations

import json
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.data.episode import Episode, EpisodeRecorder
from embodied.data.shards import write_shard


class EpisodeTimeout(Exception):
    """An episode ran longer than its wall-clock budget."""


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs to produce one shard."""

    out_dir: str
    shard: int
    name: str
    env_id: str
    entry_point: str
    env_kwargs: dict[str, Any]
    max_episode_steps: int | None
    policy: str
    first_episode: int
    n_episodes: int
    seed: int
    total_episodes: int
    max_retries: int = 3
    episode_timeout: float = 120.0
    compression: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_ENVS: dict[str, Any] = {}  # one env per (id, kwargs) per process: reused across shards


def cached_envs() -> tuple[Any, ...]:
    """The envs this process has built for shard jobs and keeps for the next ones, oldest first
    (``cached_envs()[-1]`` is the one built last: what a benchmark reuses after a collection in this process)."""
    return tuple(_ENVS.values())


def _env(job: ShardJob) -> Any:
    import gymnasium as gym

    import embodied  # noqa: F401  (registers ids in this process)

    key = json.dumps([job.env_id, job.env_kwargs, job.max_episode_steps], sort_keys=True)
    if job.env_id not in gym.registry:  # an id registered only in the parent (not a preset): register it here
        gym.register(id=job.env_id, entry_point=job.entry_point)
    if key not in _ENVS:
        kwargs = dict(job.env_kwargs)
        if job.max_episode_steps is not None:
            kwargs["max_episode_steps"] = job.max_episode_steps
        _ENVS[key] = gym.make(job.env_id, **kwargs)
    return _ENVS[key]


def _on_alarm(signum: int, frame: Any) -> None:
    raise EpisodeTimeout


def run_episode(env: Any, policy: Any, seed: int, index: int, timeout: float) -> Episode:
    """One episode from ``seed``; raises EpisodeTimeout after ``timeout`` seconds."""
    use_alarm = timeout > 0 and hasattr(signal, "setitimer")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        rec = EpisodeRecorder(seed, index)
        policy.reset(seed)
        obs, info = env.reset(seed=seed)
        rec.start(obs, info)
        done = False
        while not done:
            action = policy(obs, info)
            obs, reward, terminated, truncated, info = env.step(action)
            rec.add(action, obs, reward, terminated, truncated, info)
            done = terminated or truncated or bool(info.get("invalid", False))
        return rec.episode
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def collect_shard(job: ShardJob) -> dict[str, Any]:
    """Collect and write one shard; returns its manifest entry."""
    from embodied.collect.policies import make_policy

    t0 = time.perf_counter()
    env = _env(job)
    policy = make_policy(job.policy, env)
    episodes: list[Episode] = []
    retries: list[dict[str, Any]] = []
    discarded: list[int] = []
    for index in range(job.first_episode, job.first_episode + job.n_episodes):
        for attempt in range(job.max_retries + 1):
            seed = job.seed + index + attempt * job.total_episodes
            try:
                ep = run_episode(env, policy, seed, index, job.episode_timeout)
            except EpisodeTimeout:
                retries.append({"episode": index, "seed": seed, "reason": "timeout"})
                env.close()  # the env may be wedged: start a fresh one
                _ENVS.clear()
                env = _env(job)
                policy = make_policy(job.policy, env)
                continue
            if ep.invalid:
                retries.append({"episode": index, "seed": seed, "reason": "invalid"})
                continue
            episodes.append(ep)
            break
        else:
            discarded.append(index)
    written = write_shard(Path(job.out_dir) / job.name, episodes, job.compression)
    successes = [float(ep.outcome()["success"]) for ep in episodes if "success" in ep.outcome()]
    return {
        "index": job.shard,
        "name": job.name,
        "episodes": [job.first_episode, job.first_episode + job.n_episodes],
        "seeds": [ep.seed for ep in episodes],
        "retries": retries,
        "discarded": discarded,
        "n_episodes": len(episodes),
        "frames": int(sum(ep.frames for ep in episodes)),
        "steps": int(sum(ep.length for ep in episodes)),
        "success_rate": float(np.mean(successes)) if successes else None,
        "seconds": time.perf_counter() - t0,
        # peak resident memory of this worker process so far (ru_maxrss is KiB on Linux)
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        **written,
    }
