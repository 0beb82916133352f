"""The collector: determinism, crash safety, verification, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from embodied.collect.runner import RequestError, collect, verify
from embodied.data.manifest import load_manifest
from embodied.data.shards import CorruptShardError, open_shard

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(max_steps=6, episodes_per_shard=1, progress=False, log=lambda *_: None)


def shard_hashes(out: Path) -> dict[str, str]:
    return {s["name"]: s["sha256"] for s in load_manifest(out)["shards"]}


def test_same_seeds_same_bytes_for_1_and_2_workers(tmp_path):
    a = collect("ego_room", 4, tmp_path / "a", workers=1, **SMALL)
    b = collect("ego_room", 4, tmp_path / "b", workers=2, **SMALL)
    assert a["complete"] and b["complete"]
    assert shard_hashes(tmp_path / "a") == shard_hashes(tmp_path / "b")
    assert len(shard_hashes(tmp_path / "a")) == 4
    assert a["totals"]["frames"] == 4 * 7
    c = collect("ego_room", 4, tmp_path / "c", workers=1, seed=100, **SMALL)
    assert shard_hashes(tmp_path / "c") != shard_hashes(tmp_path / "a")
    assert [s["seeds"] for s in c["shards"]] == [[100], [101], [102], [103]]


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    ref = tmp_path / "ref"
    collect("ego_room", 6, ref, workers=1, max_steps=25, episodes_per_shard=1, progress=False)
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "collect.py"),
        "--env",
        "ego_room",
        "--episodes",
        "6",
        "--out",
        str(out),
        "--max-steps",
        "25",
        "--episodes-per-shard",
        "1",
        "--workers",
        "1",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if len(json.loads((out / "manifest.json").read_text())["shards"]) >= 2:
                break
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = load_manifest(out)
    assert not partial["complete"] and 2 <= len(partial["shards"]) < 6
    with pytest.raises(ValueError, match="not empty"):
        collect("ego_room", 6, out, workers=1, max_steps=25, episodes_per_shard=1, progress=False)
    collect("ego_room", 6, out, workers=2, resume=True, max_steps=25, episodes_per_shard=1, progress=False)
    assert shard_hashes(out) == shard_hashes(ref)
    assert not list(out.glob(".*.tmp"))
    assert verify(out) == []


def test_verify_and_readers_name_damaged_shards(tmp_path):
    out = tmp_path / "d"
    collect("ego_room", 3, out, workers=1, **SMALL)
    m = load_manifest(out)
    names = [s["name"] for s in m["shards"]]
    (out / names[0]).unlink()
    with open(out / names[1], "r+b") as f:
        f.truncate(1000)
    data = bytearray((out / names[2]).read_bytes())
    data[-100] ^= 0xFF
    (out / names[2]).write_bytes(bytes(data))
    problems = verify(out)
    assert any(names[0] in p and "missing" in p for p in problems)
    assert any(names[1] in p and "truncated" in p for p in problems)
    assert any(names[2] in p and "altered" in p for p in problems)
    entry = m["shards"][2]
    with pytest.raises(CorruptShardError, match=names[2]):
        open_shard(out / names[2], entry["sha256"], entry["bytes"])
    cli = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "collect.py"), "--verify", str(out)], capture_output=True, text=True
    )
    assert cli.returncode == 1 and names[1] in cli.stdout
    # resume redoes exactly the damaged shards
    collect("ego_room", 3, out, workers=1, resume=True, **SMALL)
    assert verify(out) == []


def test_bad_input(tmp_path):
    with pytest.raises(RequestError, match="env = nope; expected an env preset"):
        collect("nope", 1, tmp_path / "x", **SMALL)
    with pytest.raises(RequestError, match="episodes = 0; expected"):
        collect("ego_room", 0, tmp_path / "x", **SMALL)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        collect("ego_room", 1, blocker, **SMALL)
    with pytest.raises(ValueError, match="not writable"):
        collect("ego_room", 1, blocker / "sub", **SMALL)
    out = tmp_path / "y"
    collect("ego_room", 1, out, workers=1, **SMALL)
    with pytest.raises(RequestError, match="seed = 5; expected 0"):
        collect("ego_room", 1, out, workers=1, seed=5, resume=True, **SMALL)
    with pytest.raises(RequestError, match="backend = spark"):
        collect("ego_room", 1, tmp_path / "z", backend="spark", **SMALL)


def test_env_kwargs_fail_before_any_work(tmp_path, monkeypatch):
    """Bad env kwargs are found by building the env once in this process: no pool, no output directory."""
    import embodied.collect.runner as runner

    def no_pool(*args, **kwargs):
        raise AssertionError("the pool started before the env kwargs were checked")

    monkeypatch.setattr(runner, "run_local", no_pool)
    for kwargs, message in (
        ({"size": -5}, r"env kwarg size = -5; expected a positive integer"),
        ({"size": "abc"}, r"env kwarg size = \"abc\"; expected a positive integer"),
        ({"bogus": 1}, r"env kwarg bogus = 1; expected a keyword of env ego_room \(size, "),
    ):
        with pytest.raises(RequestError, match=message):
            collect("ego_room", 4, tmp_path / "out", workers=2, env_overrides=kwargs, **SMALL)
        assert not (tmp_path / "out").exists()
    with pytest.raises(RequestError, match="policy = nope; expected one of explore, informed, random"):
        collect("ego_room", 4, tmp_path / "out", workers=2, policy="nope", **SMALL)
    assert not (tmp_path / "out").exists()


def test_cli_help_documents_every_flag():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "collect.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--env",
        "--episodes",
        "--workers",
        "--out",
        "--seed",
        "--policy",
        "--resume",
        "--backend",
        "--ray-address",
        "--verify",
        "--episode-timeout",
    ):
        assert flag in out
    assert "default" in out


class FlakyEnv(gym.Env):
    """Marks odd seeds invalid; seed 7 hangs."""

    observation_space = spaces.Dict({"rgb": spaces.Box(0, 255, (4, 4, 3), np.uint8)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_ = seed
        if seed == 7:
            time.sleep(30)
        return {"rgb": np.full((4, 4, 3), seed % 256, np.uint8)}, {}

    def step(self, action):
        info = {"invalid": self.seed_ % 2 == 1, "success": self.seed_ % 4 == 0}
        return {"rgb": np.zeros((4, 4, 3), np.uint8)}, 1.0, True, False, info


def test_invalid_and_hung_episodes_are_retried_with_the_next_seed(tmp_path):
    gym.register("tests/Flaky-v0", entry_point=FlakyEnv, max_episode_steps=3)
    try:
        # 4 episodes from seed 3: seeds 3,4,5,6 ; odd ones invalid -> retried at +4: 7 (hangs) -> 11 (invalid) ...
        m = collect(
            "tests/Flaky-v0",
            4,
            tmp_path / "f",
            workers=1,
            seed=3,
            episodes_per_shard=4,
            max_retries=3,
            episode_timeout=1.0,
            progress=False,
        )
    finally:
        gym.registry.pop("tests/Flaky-v0")
    shard = m["shards"][0]
    assert shard["seeds"] == [4, 6]
    assert shard["discarded"] == [0, 2]
    reasons = {(r["seed"], r["reason"]) for r in shard["retries"]}
    assert (7, "timeout") in reasons and (3, "invalid") in reasons and (11, "invalid") in reasons
    assert m["totals"]["success_rate"] == pytest.approx(0.5)


def test_minari_export_roundtrip(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")  # the optional extra; `make test` installs it
    from embodied.data.export import export_minari

    out = tmp_path / "ego"
    collect("ego_room", 2, out, workers=1, **SMALL)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    export_minari(out, "embodied/ego-test-v0", progress=False)
    ds = minari.load_dataset("embodied/ego-test-v0")
    assert ds.total_episodes == 2 and ds.total_steps == 12
    ep = next(iter(ds.iterate_episodes()))
    import h5py

    with h5py.File(out / "shard-00000.h5") as f:
        np.testing.assert_array_equal(ep.observations["rgb"], f["data/ep_000000/obs/rgb"][()])  # lossless


def test_ray_backend_writes_the_same_bytes(tmp_path):
    pytest.importorskip("ray")  # the optional extra; `make test` installs it
    local = collect("ego_room", 3, tmp_path / "local", workers=1, **SMALL)
    ray_run = collect("ego_room", 3, tmp_path / "ray", workers=2, backend="ray", **SMALL)
    assert ray_run["complete"] and shard_hashes(tmp_path / "ray") == shard_hashes(tmp_path / "local")
    assert local["totals"]["frames"] == ray_run["totals"]["frames"]


def test_a_worker_that_dies_stops_the_run_cleanly(tmp_path):
    from embodied.collect.backends import CollectionError

    gym.register("tests/Crashing-v0", entry_point="crashing_env:CrashingEnv", max_episode_steps=2)
    try:
        with pytest.raises(CollectionError, match="worker process died.*shard-00002.*--resume"):
            collect("tests/Crashing-v0", 4, tmp_path / "c", workers=2, episodes_per_shard=1, progress=False)
    finally:
        gym.registry.pop("tests/Crashing-v0")
    m = load_manifest(tmp_path / "c")
    assert not m["complete"] and "shard-00002.h5" not in {s["name"] for s in m["shards"]}
    assert verify(tmp_path / "c") == ["manifest: collection not complete (finish it with --resume)"]


def test_a_full_disk_keeps_what_was_written(tmp_path, monkeypatch):
    import errno

    import embodied.collect.worker as worker
    from embodied.collect.backends import CollectionError

    real_write = worker.write_shard

    def fills_up(path, *args, **kwargs):
        if path.name == "shard-00002.h5":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(worker, "write_shard", fills_up)
    out = tmp_path / "full"
    with pytest.raises((CollectionError, OSError), match="No space left"):
        collect("ego_room", 4, out, workers=1, **SMALL)
    partial = shard_hashes(out)
    assert sorted(partial) == ["shard-00000.h5", "shard-00001.h5"] and not list(out.glob(".*.tmp"))
    monkeypatch.undo()
    collect("ego_room", 4, out, workers=1, resume=True, **SMALL)
    assert verify(out) == [] and {k: v for k, v in shard_hashes(out).items() if k in partial} == partial


def test_collection_and_envs_do_not_import_torch():
    """Workers and env subprocesses stay light: torch would add seconds and ~150 MB to each."""
    modules = ["embodied.collect.runner", "embodied.collect.policies", "embodied.collect.tabletop_policies"]
    modules += [f"embodied.envs.{m}" for m in ("ego_motion", "grasp", "push", "poke", "look", "reach")]
    code = f"import sys, embodied, {', '.join(modules)}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    code = "import embodied; f = embodied.load_encoder; print(f.__module__)"  # still there when asked for
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "embodied.encoder"
