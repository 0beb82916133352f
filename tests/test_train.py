"""Training loop: a smoke run of every preset, exact resume, NaN handling, checkpoints, load_encoder, CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from embodied.agents import apply_overrides, load_preset
from embodied.agents.synthetic import synthetic_datasets
from embodied.data.episode import EpisodeRecorder
from embodied.data.manifest import SCHEMA_VERSION, save_manifest, shard_name
from embodied.data.shards import write_shard
from embodied.encoder import load_encoder
from embodied.train import CHECKPOINT_FORMAT, TrainingError, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "trunk.width=4",
    "trunk.embed_dim=8",
    "trunk.image_size=32",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.log_every=1",
    "train.warmup=0",
]
PRESETS = ["equivariant", "slowness", "curious", "simclr", "supervised", "random"]


def preset(name, *extra):
    return apply_overrides(load_preset(name), TINY + list(extra))


@pytest.mark.parametrize("name", PRESETS)
def test_smoke_every_preset(tmp_path, name):
    steps = 0 if name == "random" else 3
    result = train(preset(name, f"train.steps={steps}"), synthetic_datasets(name, n=12), tmp_path, progress=False)
    assert result["step"] == steps
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["step"] == steps and ckpt["preset"]["name"] == name
    if steps:
        rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in rows)
        assert (tmp_path / "loss_curve.png").stat().st_size > 0
        assert any((tmp_path / "tb").iterdir())
    enc = load_encoder(tmp_path)
    images = torch.randint(0, 256, (5, 40, 40, 3), dtype=torch.uint8)  # another size: resized inside
    z = enc(images)
    assert z.shape == (5, 8) and z.dtype == torch.float32
    assert torch.allclose(z, enc(images.permute(0, 3, 1, 2).float() / 255), atol=1e-5)
    assert not any(p.requires_grad for p in enc.parameters())


@pytest.mark.parametrize("name", ["equivariant", "simclr", "curious"])
def test_resume_continues_exactly(tmp_path, name):
    data = synthetic_datasets(name, n=10)  # 10 items, batch 4: epochs turn over mid-run
    extra = ["train.checkpoint_every=2"]
    train(preset(name, "train.steps=6", *extra), data, tmp_path / "straight", progress=False)
    train(preset(name, "train.steps=3", *extra), data, tmp_path / "split", progress=False)
    with pytest.raises(TrainingError, match="exists"):
        train(preset(name, "train.steps=6", *extra), data, tmp_path / "split", progress=False)
    train(preset(name, "train.steps=6", *extra), data, tmp_path / "split", resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6 and a["samples"] == b["samples"]
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    steps = [json.loads(x)["step"] for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_another_preset(tmp_path):
    data = synthetic_datasets("supervised", n=8)
    train(preset("supervised", "train.steps=1"), data, tmp_path, progress=False)
    with pytest.raises(TrainingError, match="trunk differs"):
        train(preset("supervised", "train.steps=2", "trunk.width=6"), data, tmp_path, resume=True, progress=False)
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(preset("supervised", "train.steps=2"), data, tmp_path / "new", resume=True, progress=False)


class _TurnsNaN(Dataset):
    """Poke items whose target becomes NaN after ``good`` reads (deterministic with num_workers=0)."""

    def __init__(self, base, good):
        self.base, self.good, self.reads = base, good, 0
        self.tensors = base.tensors  # target statistics read the clean tensors, not counted items

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        item = dict(self.base[i])
        if self.reads > self.good:
            item["line"] = torch.full_like(item["line"], float("nan"))
        return item


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    base = synthetic_datasets("curious", n=16)["poke"]
    data = {"poke": _TurnsNaN(base, good=2 + 4 * 4)}  # 2 reads checking the data, steps 1-4 fine, step 5 NaN
    p = preset("curious", "options.tasks=['poke']", "options.hidden=8", "train.steps=8", "train.checkpoint_every=2")
    with pytest.raises(TrainingError, match=r"non-finite loss of task 'poke' at step 5.*checkpoint\.pt \(step 4\)"):
        train(p, data, tmp_path, progress=False)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_curious_accumulates_the_four_tasks_into_one_step(tmp_path):
    """One SGD step (lr 1, full-dataset batches) moves the trunk by minus the sum of the four tasks' gradients."""
    from embodied.agents import build_agent
    from embodied.train import seed_everything

    n = 6
    data = synthetic_datasets("curious", n=n)
    p = preset(
        "curious",
        "trunk.norm='none'",
        "options.hidden=8",
        f"train.batch_size={n}",
        "train.steps=1",
        "train.optimizer='sgd'",
        "train.momentum=0.0",
        "train.weight_decay=0.0",
        "train.lr=1.0",
    )
    seed_everything(0)
    agent = build_agent(p, data)
    w0 = agent.trunk.layers["conv2"][0].weight.detach().clone()
    grad = torch.zeros_like(w0)
    for task, ds in data.items():
        agent.zero_grad()
        agent.loss(task, {k: torch.stack([ds[i][k] for i in range(n)]) for k in ds[0]})[0].backward()
        grad += agent.trunk.layers["conv2"][0].weight.grad
    train(p, data, tmp_path, progress=False)
    w1 = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]["trunk.layers.conv2.0.weight"]
    torch.testing.assert_close(w1, w0 - grad, rtol=1e-4, atol=1e-5)


def test_random_encoder_is_the_random_agent_and_follows_the_seed(tmp_path):
    train(preset("random", "train.steps=0"), {}, tmp_path, progress=False)
    trunk = {"width": 4, "embed_dim": 8, "image_size": 32}
    x = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    z = load_encoder("random", seed=0, trunk=trunk)(x)
    torch.testing.assert_close(z, load_encoder(tmp_path)(x))
    assert not torch.allclose(z, load_encoder("random", seed=1, trunk=trunk)(x))
    enc = load_encoder("random")
    enc.train()
    assert not enc.training and enc(x).shape == (3, enc.embed_dim)


MOTIONS = np.array([[0.2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.26, 0.0], [0.0, 0.0, -0.26, 0.0]])


def ego_dataset(root: Path, episodes=3, steps=12, size=32):
    """An on-disk EgoMotion-like dataset (random frames, motor, scene class) written with the real shard writer."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    eps = []
    for e in range(episodes):
        rec = EpisodeRecorder(seed=e, index=e)

        # odometry as a robot reports it: motions (forward, turn left, turn right) held for a few steps, with noise
        plan = np.repeat(rng.integers(len(MOTIONS), size=steps // 4 + 2), 4)

        def frame(t, plan=plan):
            return {
                "rgb": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                "motor": (MOTIONS[plan[t]] + 0.01 * rng.normal(size=4)).astype(np.float32),
            }

        rec.start(frame(0), {"scene_class_id": e % 2})
        for t in range(1, steps + 1):
            rec.add(0, frame(t), 0.0, False, t == steps, {"scene_class_id": e % 2})
        eps.append(rec.episode)
    info = write_shard(root / shard_name(0), eps)
    entry = {"index": 0, "name": shard_name(0), "frames": sum(ep.frames for ep in eps), **info}
    config = {"env_id": "embodied/EgoMotion-v0"}
    save_manifest(root, {"schema_version": SCHEMA_VERSION, "config": config, "complete": True, "shards": [entry]})
    return root


def _cli():
    spec = importlib.util.spec_from_file_location("train_cli", ROOT / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_trains_resumes_and_explains_bad_data(tmp_path, capsys):
    main = _cli()
    data = ego_dataset(tmp_path / "ego")
    args = ["--data", str(data), "--no-progress", "--device", "cpu", "--workers", "1", *TINY]
    out = tmp_path / "run"
    assert main(["--agent", "equivariant", "--out", str(out), "--steps", "2", *args]) == 0
    assert main(["--agent", "equivariant", "--out", str(out), "--steps", "4", "--resume", *args]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4
    # the paper's variant: a supervised term on a few labelled frames per class
    few = ["options.label_weight=0.5", "options.labels_per_class=2"]
    assert main(["--agent", "equivariant", "--out", str(tmp_path / "few"), "--steps", "2", *args, *few]) == 0
    row = json.loads((tmp_path / "few" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "labels/ce" in row and "ego/pos" in row
    assert main(["--agent", "supervised", "--out", str(tmp_path / "sup"), "--steps", "1", *args]) == 0
    assert torch.load(tmp_path / "sup" / "checkpoint.pt", weights_only=True)["spec"]["num_classes"] == 2
    capsys.readouterr()
    assert main(["--agent", "curious", "--out", str(tmp_path / "c"), *args]) == 2
    assert "needs grasp data" in capsys.readouterr().err
    assert main(["--agent", "supervised", "--out", str(tmp_path / "s"), *args, "options.label='nope'"]) == 2
    assert "no label ['nope']" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--agent", "simclr", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "e")]) == 2
    assert "not a dataset" in capsys.readouterr().err


KILL_STEPS = 40


def _killed_run_args(data: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--agent",
        "equivariant",
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--steps",
        str(KILL_STEPS),
        *TINY,
        "train.checkpoint_every=1",  # a checkpoint write every step: kills land inside writes too
        "train.threads=1",
    ]


def test_kill_9_at_random_moments_then_resume_reaches_the_same_weights(tmp_path):
    """``kill -9`` of scripts/train.py at random moments (>= 3 times) always leaves a loadable checkpoint,
    and --resume continues to the same final weights (and metrics rows) as an uninterrupted run."""
    import random
    import signal
    import time

    data = ego_dataset(tmp_path / "ego")
    straight = tmp_path / "straight"
    p = preset("equivariant", f"train.steps={KILL_STEPS}", "train.checkpoint_every=1", "train.threads=1")
    from embodied.agents.registry import open_datasets

    train(p, open_datasets(p, [data]), straight, progress=False)  # also builds the dataset's frame cache
    ref = torch.load(straight / "checkpoint.pt", weights_only=True)

    out = tmp_path / "killed"
    rng = random.Random(0)
    kills, launches, steps_seen = 0, 0, []
    while kills < 3 and launches < 12:
        resume = (out / "checkpoint.pt").exists()
        proc = subprocess.Popen(
            _killed_run_args(data, out) + (["--resume"] if resume else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        launches += 1
        t0 = time.perf_counter()
        while proc.poll() is None and not (out / "checkpoint.pt").exists() and time.perf_counter() - t0 < 60:
            time.sleep(0.005)
        # a random moment of the training itself (a step takes a few ms here; the run ~0.5-2 s)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            ckpt = load_checkpoint(out)  # loadable after every kill
            assert 0 <= ckpt["step"] <= KILL_STEPS
            steps_seen.append(int(ckpt["step"]))
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
            if launches == 1:  # finished before any kill: too fast to test; start over smaller sleeps
                pytest.fail("the run ended before the first kill; raise KILL_STEPS")
            break
        proc.stderr.close()
    assert kills >= 3, f"only {kills} kills in {launches} launches"
    done = subprocess.run([*_killed_run_args(data, out), "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = torch.load(out / "checkpoint.pt", weights_only=True)
    assert got["step"] == ref["step"] == KILL_STEPS and got["samples"] == ref["samples"], steps_seen
    for k, v in ref["model"].items():
        assert torch.equal(got["model"][k], v), f"{k} differs after kills at steps {steps_seen}"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, KILL_STEPS + 1)), steps_seen
    assert not list(out.glob(".checkpoint.pt.tmp-*")), "stale temporary checkpoint left behind"


SAVE_LOOP = """
import sys, torch
from embodied.checkpoint import save_checkpoint
big = torch.zeros(4_000_000)  # 16 MB: each write takes long enough to be killed inside
for i in range(1, 10_000):
    big[0] = i
    save_checkpoint(sys.argv[1], {"format": "embodied.checkpoint/1", "i": i, "big": big})
    print(i, flush=True)
"""


def test_kill_9_inside_checkpoint_writes_leaves_a_whole_checkpoint(tmp_path):
    """Killed while torch.save writes (most of this loop's time), the checkpoint is the previous one, whole."""
    import random
    import signal
    import time

    path = tmp_path / "checkpoint.pt"
    rng = random.Random(1)
    inside = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "1"  # one checkpoint written
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        written = proc.stdout.read().split()
        proc.stdout.close()
        ckpt = load_checkpoint(path)
        last = int(written[-1]) if written else 1
        assert ckpt["i"] in (last, last + 1) and float(ckpt["big"][0]) == ckpt["i"]  # whole, not torn
        inside += bool(list(tmp_path.glob(".checkpoint.pt.tmp-*")))
        for stale in tmp_path.glob(".checkpoint.pt.tmp-*"):
            stale.unlink()
    assert inside >= 1, "no kill landed inside a write; the test did not test anything"
