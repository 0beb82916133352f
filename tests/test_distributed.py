"""Training under torchrun (issue 16): 2 gloo processes on CPU, each with half the global batch.

Tolerances. With no batch statistics in the trunk (``trunk.norm="group"``) and losses that are means
over items, a 2-process run is the single-process run with the same global batch up to the order of
float sums (the gradient all-reduce, the ridge statistics): measured max weight difference after
20 steps ~4e-6 (equivariant) and ~1e-6 (curious), so 1e-4 is tight enough to catch a wrong shard,
an un-synced gradient, a per-rank ridge fit or loss balancer (each ~1e-2 or more), yet safe from
float noise. Batch norm stays per rank (each rank normalises by its 4 items, not 8): there the
losses only agree to a few percent (supervised, 20 steps: 0.9285 vs 0.9509, 2.4 %), checked with 10 %.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from embodied.agents import apply_overrides, load_preset
from embodied.agents.synthetic import synthetic_datasets
from embodied.distributed import ShardedBatches, check_batch
from embodied.encoder import load_encoder
from embodied.train import StepBatches, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "trunk.width=4",
    "trunk.embed_dim=8",
    "trunk.image_size=32",
    "train.num_workers=0",
    "train.warmup=0",
    "train.threads=1",
]
STEPS = 20
N = 32  # items per task; global batch 8: 4 per rank
# no batch statistics, losses that are means over items: a 2-process run is the 1-process run
EXACT = {
    "equivariant": [
        "trunk.norm='group'",
        "options.frame_negatives=false",  # negatives rolled within the batch: the rank's share
        "options.class_negatives=false",  # random draws per item: rank 1 draws what rank 0 draws
    ],
    "curious": [
        "trunk.norm='group'",
        "options.identity_loss='cosine'",  # nt_xent takes the rank's share of the batch as negatives
        "options.identity_recolour=0",  # random draws per item
    ],
}


def preset(name: str, *extra: str):  # noqa: ANN201
    return apply_overrides(
        load_preset(name), [*TINY, f"train.steps={STEPS}", "train.batch_size=8", "train.log_every=5", *extra]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """What torchrun sets for a worker."""
    return {
        "WORLD_SIZE": str(world),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
    }


def _worker(rank: int, world: int, port: int, jobs: list[tuple[str, list[str]]], out: str) -> None:
    """One rank: the process group opened here (train() uses it), then every job in turn."""
    os.environ.update(rank_env(rank, world, port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")
    try:
        for name, extra in jobs:
            train(preset(name, *extra), synthetic_datasets(name, n=N), Path(out) / name, progress=False)
    finally:
        dist.destroy_process_group()


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_sharded_batches_cut_the_global_batch_and_the_error_line():
    """Rank r takes the r-th contiguous half of each global batch: the union is the 1-process batch, in order,
    epochs and resume (``start``) included."""
    whole = list(islice(StepBatches(10, 4, seed=3, start=5), 8))
    shares = [list(islice(ShardedBatches(StepBatches(10, 4, seed=3, start=5), 4, r, 2), 8)) for r in range(2)]
    assert [a + b for a, b in zip(*shares, strict=True)] == whole
    assert all(len(a) == 2 for a in shares[0] + shares[1])
    with pytest.raises(ValueError, match=r"^train\.batch_size = 63; expected a multiple of the world size 2$"):
        check_batch(63, 2)
    check_batch(64, 2)


def test_one_process_records_no_world(tmp_path):
    train(preset("supervised", "train.steps=1"), synthetic_datasets("supervised", n=8), tmp_path, progress=False)
    assert "distributed" not in load_checkpoint(tmp_path)
    assert "world_size" not in rows(tmp_path)[-1]


def test_two_gloo_processes_train_like_one(tmp_path):
    """Same global batch and seed: 1 process vs 2 (4 items each). Exact-ish where nothing depends on the
    split (group norm; curious' 4 tasks under no_sync, one sync), within 10 % with per-rank batch norm."""
    jobs = [(name, extra) for name, extra in EXACT.items()] + [("supervised", [])]
    mp.spawn(_worker, args=(2, free_port(), jobs, str(tmp_path / "two")), nprocs=2, join=True)
    for name, extra in jobs:
        one, two = tmp_path / "one" / name, tmp_path / "two" / name
        train(preset(name, *extra), synthetic_datasets(name, n=N), one, progress=False)
        a, b = rows(one), rows(two)
        assert [r["step"] for r in b] == [5, 10, 15, 20] and b[-1]["samples"] == a[-1]["samples"]
        assert b[-1]["world_size"] == 2 and b[-1]["backend"] == "gloo"
        ca, cb = load_checkpoint(one), load_checkpoint(two)
        assert cb["distributed"] == {"world_size": 2, "backend": "gloo"} and "distributed" not in ca
        assert not any(k.startswith("module.") for k in cb["model"])
        if name in EXACT:
            for ra, rb in zip(a, b, strict=True):
                assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4), (name, ra["step"])
                for k in (k for k in ra if k.endswith("/grad_norm")):  # curious: each task's share, global batch
                    assert rb[k] == pytest.approx(ra[k], rel=1e-3), (name, k, ra["step"])
            for k, v in ca["model"].items():  # weights and the buffers kept outside autograd
                torch.testing.assert_close(cb["model"][k], v, rtol=1e-4, atol=1e-4, msg=f"{name} {k}")
        else:  # per-rank batch norm: a different normalisation, the same training
            assert b[-1]["loss"] == pytest.approx(a[-1]["loss"], rel=0.10), name
            assert b[-1]["loss"] < b[0]["loss"]
    x = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    torch.testing.assert_close(
        load_encoder(tmp_path / "two" / "equivariant")(x),
        load_encoder(one.parent / "equivariant")(x),
        rtol=1e-4,
        atol=1e-4,
    )


def _cli_args(data: Path, out: Path, agent: str = "equivariant", *extra: str) -> list[str]:
    return [
        str(ROOT / "scripts" / "train.py"),
        "--agent",
        agent,
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
        *TINY,
        "train.batch_size=4",
        *extra,
    ]


def _torchrun(port: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port), *args]


def _workers_of(pid: int) -> dict[int, int]:
    """{rank: pid} of the worker processes torchrun ``pid`` started (Linux /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            for item in env:
                if item.startswith(b"RANK="):
                    out[int(item[5:])] = int(entry.name)
    return out


@pytest.fixture(scope="module")
def ego(tmp_path_factory):
    from test_train import ego_dataset

    return ego_dataset(tmp_path_factory.mktemp("data") / "ego")


KILL_STEPS = 60


def test_killed_torchrun_run_resumes_and_finishes(tmp_path, ego):
    """torchrun, 2 ranks; rank 1 killed (-9) after a few checkpoints; --resume finishes; the weights are
    the single-process run's (group norm, as above) and load with load_encoder."""
    out = tmp_path / "run"
    extra = [*EXACT["equivariant"], f"train.steps={KILL_STEPS}", "train.checkpoint_every=1", "train.log_every=1"]
    args = _cli_args(ego, out, "equivariant", *extra)
    proc = subprocess.Popen(_torchrun(free_port(), args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0, killed = time.perf_counter(), None
    while proc.poll() is None and time.perf_counter() - t0 < 60:
        try:
            step = load_checkpoint(out)["step"] if (out / "checkpoint.pt").exists() else 0
        except Exception:  # noqa: BLE001  (a rename in flight)
            step = 0
        if step >= 3:
            workers = _workers_of(proc.pid)
            if 1 in workers:
                os.kill(workers[1], signal.SIGKILL)
                killed = step
                break
        time.sleep(0.01)
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert killed is not None, f"no kill (rc {proc.returncode}): {err[-2000:]}"
    assert proc.returncode != 0
    at = load_checkpoint(out)["step"]
    assert 3 <= at < KILL_STEPS, at
    done = subprocess.run(_torchrun(free_port(), [*args, "--resume"]), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = load_checkpoint(out)
    assert got["step"] == KILL_STEPS and got["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert [r["step"] for r in rows(out)] == list(range(1, KILL_STEPS + 1))
    assert json.loads(done.stdout[done.stdout.index("{") :])["step"] == KILL_STEPS  # printed once, by rank 0

    from embodied.agents.registry import open_datasets

    p = apply_overrides(load_preset("equivariant"), [*TINY, "train.batch_size=4", *extra])
    train(p, open_datasets(p, [ego]), tmp_path / "one", progress=False)
    ref = load_checkpoint(tmp_path / "one")
    assert ref["samples"] == got["samples"]
    for k, v in ref["model"].items():
        torch.testing.assert_close(got["model"][k], v, rtol=1e-4, atol=1e-4, msg=k)
    x = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    assert load_encoder(out)(x).shape == (3, 8)


def _two_ranks(args: list[str]) -> list[subprocess.Popen]:
    """Both ranks as plain processes with torchrun's environment: each one's own stderr and exit status."""
    port = free_port()
    return [
        subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **rank_env(r, 2, port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]


def _finish(procs: list[subprocess.Popen]) -> list[subprocess.CompletedProcess]:
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


def test_wrong_launches_say_one_line_once(tmp_path, ego):
    """Global batch not divisible by the world size; --resume with another agent: rank 0 prints one line,
    the other ranks nothing, every rank exits with 2 (under torchrun, torchrun adds its failure summary)."""
    first = tmp_path / "first"
    p = apply_overrides(load_preset("equivariant"), [*TINY, "train.batch_size=4", "train.steps=1"])
    from embodied.agents.registry import open_datasets

    train(p, open_datasets(p, [ego]), first, progress=False)
    launches = [
        _two_ranks(_cli_args(ego, tmp_path / "b", "equivariant", "train.batch_size=63")),
        _two_ranks(_cli_args(ego, first, "simclr", "--resume")),
    ]
    batch, resume = (_finish(procs) for procs in launches)
    for (r0, r1), line in (
        (batch, "error: train.batch_size = 63; expected a multiple of the world size 2"),
        (resume, "error: agent (with --resume) = "),
    ):
        assert (r0.returncode, r1.returncode) == (2, 2), (r0.stderr, r1.stderr)
        assert len(r0.stderr.strip().splitlines()) == 1 and r0.stderr.startswith(line), r0.stderr
        assert r1.stderr == "" and r1.stdout == "" and r0.stdout == ""
    assert not (tmp_path / "b").exists()
    run = subprocess.run(
        _torchrun(free_port(), _cli_args(ego, tmp_path / "c", "equivariant", "train.batch_size=63")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert (run.stdout + run.stderr).count("expected a multiple of the world size 2") == 1, run.stderr
    assert "exitcode  : 2" in run.stderr  # torchrun's summary names rank 0's exit status as the root cause
