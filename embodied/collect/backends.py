"""Where shard jobs run: a local process pool (default) or Ray actors, on a local Ray or a cluster joined."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
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


def parse_address(address: str) -> tuple[str, int] | None:
    """``HOST:PORT`` as (host, port); None for ``auto``. ValueError for anything else."""
    if address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address = {address}; expected auto or HOST:PORT (the head's GCS port, e.g. 10.0.0.1:6379)")
    return host.strip("[]"), int(port)


def probe_address(address: str, timeout: float = 5.0) -> None:
    """ValueError at once when nothing listens at ``HOST:PORT`` (``ray.init`` would retry for a minute)."""
    where = parse_address(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ValueError(
            f"--address = {address}; expected a running Ray cluster's head (GCS) address, "
            f"nothing answers there ({reason}); start one with `ray start --head` or check HOST:PORT"
        ) from None


@contextmanager
def ray_connection(address: str | None, workers: int | None, log: Any = None) -> Iterator[int]:
    """Ray connected for the block; yields how many shards to keep in flight.

    ``address`` None: a local Ray of ``workers`` CPUs is started here (``address="local"``: never a
    cluster named by ``RAY_ADDRESS`` or left by ``ray start``) and shut down after the block.
    ``address`` ``auto`` or ``HOST:PORT``: the existing cluster is joined and only this driver's
    connection is closed after (``ray.shutdown()``); the cluster is never started or stopped here.
    Each shard slot is an actor needing 1 CPU (:func:`run_ray`), so a node runs as many shards at once as
    it has CPUs; when joining, ``workers`` (if given) caps the slots, by default the cluster's CPU count.
    """
    try:
        import ray
    except ImportError:
        raise CollectionError("--backend ray needs Ray: pip install 'embodied[ray]'") from None
    if ray.is_initialized():  # the caller's own connection (e.g. a notebook): used, left open
        yield workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        return
    if address is None:
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            yield workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        finally:
            ray.shutdown()
        return
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as e:  # ConnectionError, ray's own errors (auth, version mismatch...): one line
        text = " ".join(str(e).split()) or type(e).__name__
        raise CollectionError(f"--address = {address}; could not join the Ray cluster: {text[:400]}") from None
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = int(sum(n.get("Resources", {}).get("CPU", 0) for n in nodes))
        if cpus < 1:
            raise CollectionError(f"--address = {address}; the Ray cluster has no CPUs to run shard tasks on")
        slots = min(workers, cpus) if workers else cpus
        if log is not None:
            per_node = ", ".join(
                f"{n.get('NodeManagerAddress')} {int(n.get('Resources', {}).get('CPU', 0))}" for n in nodes
            )
            log(f"joined Ray at {address}: {len(nodes)} nodes, {cpus} CPUs ({per_node}); {slots} shards at a time")
        yield slots
    finally:
        ray.shutdown()  # this driver's connection only: the cluster keeps running


class _ShardActor:
    """One Ray actor per CPU slot: collects the shards it is handed, keeping its env between them."""

    def collect(self, job: ShardJob) -> dict[str, Any]:
        """:func:`collect_shard`, its entry tagged with the Ray node that ran it."""
        import ray

        return {**collect_shard(job), "ray_node": ray.get_runtime_context().get_node_id()}


def run_ray(jobs: list[ShardJob], slots: int, shard_timeout: float, retries: int = 0) -> Iterator[dict[str, Any]]:
    """The same shard jobs on ``slots`` Ray actors of 1 CPU each (inside :func:`ray_connection`).

    Ray places the actors: a node hosts at most as many as it has CPUs. Each free actor takes the next
    shard in shard order, so placement never changes a shard's bytes (a pure function of its job).
    Shards are written by the node that runs them: ``out_dir`` must be one path on storage every node
    shares; a shard the driver cannot see there stops the run. ``retries``: times an actor whose
    process or node died is restarted and its shard rerun (safe: shards are written atomically).
    """
    import ray

    actor = ray.remote(num_cpus=1, max_restarts=retries, max_task_retries=retries)(_ShardActor)
    actors = [actor.remote() for _ in range(min(slots, len(jobs)))]
    free, queue = list(actors), list(jobs)
    running: dict[Any, tuple[ShardJob, Any]] = {}
    try:
        while queue or running:
            while queue and free:
                job, worker = queue.pop(0), free.pop(0)
                running[worker.collect.remote(job)] = (job, worker)
            done, _ = ray.wait(list(running), num_returns=1, timeout=shard_timeout)
            if not done:
                raise CollectionError(f"no shard finished within {shard_timeout:.0f} s on Ray; rerun with --resume")
            job, worker = running.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as e:
                text = " ".join(str(e).split())[:400]
                raise CollectionError(f"Ray task for {job.name} failed: {text}; rerun with --resume") from None
            path = Path(job.out_dir) / job.name
            if not path.is_file() or path.stat().st_size != result["bytes"]:
                raise CollectionError(
                    f"{job.name} was written by Ray node {result['ray_node'][:12]} but is not at {path} here: "
                    "--out must be a directory every node shares (e.g. NFS), under the same path"
                )
            free.append(worker)
            yield result
    finally:
        for worker in actors:
            ray.kill(worker)
