"""Where shard jobs run: a local process pool (default) or Ray actors on a cluster."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from embodied.collect.worker import ShardJob, collect_shard


class CollectionError(RuntimeError):
    """Collection stopped; shards already written stay valid and ``--resume`` continues."""


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_local(jobs: list[ShardJob], workers: int, shard_timeout: float) -> Iterator[dict[str, Any]]:
    """Yield shard results as they finish, from ``workers`` spawned processes
    (``workers == 1``: one after the other in this process).

    One PyBullet client per worker process; ``spawn`` so no parent state (or
    pybullet client) leaks into children. A shard that finishes nothing within
    ``shard_timeout`` seconds (a hung worker) stops the run with a clear error.
    """
    if workers == 1 or len(jobs) <= 1:  # one at a time: in this process, no pool to start
        for job in jobs:
            try:
                yield collect_shard(job)
            except (KeyboardInterrupt, CollectionError):
                raise
            except Exception as e:
                raise CollectionError(
                    f"collecting {job.name} failed: {e!r}; completed shards are kept; rerun with --resume"
                ) from e
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    futures = {pool.submit(collect_shard, job): job for job in jobs}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=shard_timeout, return_when=FIRST_COMPLETED)
            if not done:
                names = sorted(futures[f].name for f in pending)[:3]
                raise CollectionError(
                    f"no shard finished within {shard_timeout:.0f} s (a worker hangs?); "
                    f"stopped with {len(pending)} shards pending, e.g. {names}; rerun with --resume"
                )
            for fut in done:
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    raise CollectionError(_died_message(futures)) from None
                except Exception as e:
                    raise CollectionError(
                        f"collecting {futures[fut].name} failed: {e!r}; completed shards are kept; rerun with --resume"
                    ) from e
    finally:
        for proc in list(getattr(pool, "_processes", {}).values()):
            if proc.is_alive():
                proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)


def _died_message(futures: dict[Any, ShardJob]) -> str:
    """Name the shards a dead worker took down; the pool cannot tell which of them it was running."""
    wait(list(futures), timeout=5)  # the pool fails every unfinished future once it notices the death
    broken = [f for f in futures if f.done() and not f.cancelled() and isinstance(f.exception(), BrokenProcessPool)]
    lost = sorted((futures[f] for f in broken), key=lambda job: job.first_episode)
    names = ", ".join(job.name for job in lost[:4]) + (f" and {len(lost) - 4} more" if len(lost) > 4 else "")
    return f"a worker process died; unfinished shards: {names}; completed shards are kept; rerun with --resume"


def run_ray(jobs: list[ShardJob], workers: int, shard_timeout: float, address: str | None) -> Iterator[dict[str, Any]]:
    """The same shard jobs as Ray tasks (``--backend ray``); writers need shared storage at ``out_dir``."""
    try:
        import ray
    except ImportError:
        raise CollectionError("--backend ray needs Ray: pip install 'embodied[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False, log_to_driver=False)
    try:
        yield from _ray_results(ray, jobs, shard_timeout)
    finally:
        if started_here:
            ray.shutdown()


def _ray_results(ray: Any, jobs: list[ShardJob], shard_timeout: float) -> Iterator[dict[str, Any]]:
    remote = ray.remote(num_cpus=1, max_retries=0)(collect_shard)
    refs = {remote.remote(job): job for job in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=shard_timeout)
        if not done:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise CollectionError(f"no shard finished within {shard_timeout:.0f} s on Ray; rerun with --resume")
        try:
            yield ray.get(done[0])
        except ray.exceptions.RayError as e:
            job = refs[done[0]]
            raise CollectionError(f"Ray task for {job.name} failed: {e}; rerun with --resume") from None
