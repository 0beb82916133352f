"""``--backend ray --address``: joining a Ray cluster that the collector neither starts nor stops.

The cluster test starts a head and a second node as two separate ``ray start --block`` processes on
this machine (1 CPU each, their own temp dir and ports), collects across them through the CLI, and
stops both by their process groups (never ``ray stop``, which would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from embodied.collect.runner import collect
from embodied.data.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "collect.py")
RAY = str(Path(sys.executable).with_name("ray"))
SMALL = ["--max-steps", "6", "--episodes-per-shard", "1", "--quiet"]  # as test_collect's SMALL
EPISODES = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("error: --address = "), lines[0]
    return lines[0]


def test_address_without_the_ray_backend_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, SCRIPT, "--env", "ego_room", "--out", str(tmp_path / "d"), "--address", "auto"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "only with --backend ray" in one_error_line(out.stderr)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("address", ["nohost", "127.0.0.1:99999", "FREE"])
def test_a_bad_address_is_one_line_and_writes_nothing(tmp_path, address):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{free_port()}" if address == "FREE" else address  # nothing listens there
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, SCRIPT, "--env", "ego_room", "--out", str(tmp_path / "d"), "--backend", "ray"]
        + ["--address", address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and time.perf_counter() - t0 < 30
    assert "expected" in one_error_line(out.stderr)
    assert not (tmp_path / "d").exists()


class Cluster:
    """A head and a second node, each a ``ray start --block`` process in its own process group."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # explicit addresses only
        # Ray's token auth, with a token of this test cluster's own for the nodes and the collector
        self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
        self.procs: list[subprocess.Popen] = []

    def start_node(self, *args: str) -> None:
        name = "head" if "--head" in args else f"node{len(self.procs)}"
        log = self.dir / f"{name}.log"
        cmd = [RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1", *args]
        cmd += ["--dashboard-agent-listen-port", str(free_port()), "--disable-usage-stats"]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env, start_new_session=True, cwd=self.dir
            )
        self.procs.append(proc)
        deadline = time.time() + 90
        while b"Ray runtime started" not in log.read_bytes():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray start {name} failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def start(self) -> Cluster:
        self.start_node(
            "--head", "--port", str(self.port), "--temp-dir", str(self.dir), "--include-dashboard", "false",
            "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()),
        )  # fmt: skip
        return self

    def ask(self, code: str) -> str:
        """Run ``code`` in a fresh driver connected to the cluster; its stdout."""
        prog = f"import json, ray\nray.init(address={self.address!r}, log_to_driver=False)\n{code}\nray.shutdown()"
        return subprocess.run(
            [sys.executable, "-c", prog], capture_output=True, text=True, env=self.env, timeout=120, check=True
        ).stdout

    def stop(self) -> None:
        """SIGTERM to each node's process group, SIGKILL to what is left after a few seconds."""
        for proc in reversed(self.procs):  # the second node first, then the head
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 3  # `ray start --block` and gcs_server may sit on SIGTERM for longer
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while (left := self.leftovers()) and time.time() < deadline:  # killed ones take a moment to go
            for pid in left:  # gcs, raylet, workers of these nodes (their command lines name self.dir)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self) -> list[int]:
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and d.name != str(os.getpid()):
                try:
                    if str(self.dir).encode() in (d / "cmdline").read_bytes():
                        pids.append(int(d.name))
                except OSError:
                    pass
        return pids


@pytest.fixture
def cluster():
    pytest.importorskip("ray")
    if not Path(RAY).exists():
        pytest.skip(f"no ray CLI at {RAY}")
    c = Cluster()
    try:
        c.start()
        c.start_node("--address", c.address)
        yield c
    finally:
        c.stop()
        assert not c.leftovers(), "processes of the test cluster outlived it"


def test_two_node_cluster_gives_the_local_pools_bytes(cluster, tmp_path):
    t0 = time.perf_counter()
    local = tmp_path / "local"
    collect("ego_room", EPISODES, local, workers=1, max_steps=6, episodes_per_shard=1, progress=False, log=None)
    out = tmp_path / "ray"
    cmd = [sys.executable, SCRIPT, "--env", "ego_room", "--episodes", str(EPISODES), "--out", str(out), *SMALL]
    run = subprocess.run(
        cmd + ["--backend", "ray", "--address", cluster.address],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"joined Ray at {cluster.address}: 2 nodes, 2 CPUs" in run.stdout, run.stdout

    manifest, reference = load_manifest(out), load_manifest(local)
    assert manifest["complete"] and len(manifest["shards"]) == EPISODES
    for a, b in zip(manifest["shards"], reference["shards"], strict=True):
        assert a["name"] == b["name"] and a["sha256"] == b["sha256"]
        assert (out / a["name"]).read_bytes() == (local / b["name"]).read_bytes()

    # the cluster still answers with both nodes (the collector stopped nothing), and the shards ran on both
    nodes = json.loads(cluster.ask("print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))"))
    assert len(nodes) == 2
    assert {s["ray_node"] for s in manifest["shards"]} == set(nodes)

    # without --address the collector starts a Ray of its own, even with RAY_ADDRESS naming this cluster
    own = tmp_path / "own"
    env = {**cluster.env, "RAY_ADDRESS": cluster.address}
    run = subprocess.run(
        [*cmd[:7], str(own), *SMALL, "--backend", "ray", "--workers", "1"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert not {s["ray_node"] for s in load_manifest(own)["shards"]} & set(nodes)
    assert {s["sha256"] for s in load_manifest(own)["shards"]} == {s["sha256"] for s in reference["shards"]}
    assert len(json.loads(cluster.ask("print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))"))) == 2
    print(f"two-node collection test body: {time.perf_counter() - t0:.1f} s")
