import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from embodied.eval.metrics import PerQuery
from embodied.eval.report import (
    Summary,
    bar_chart,
    markdown,
    protocol_table,
    retrieval_grid,
    role,
    training_table,
    trend,
    trend_table,
    verdicts,
)

ROOT = Path(__file__).resolve().parents[2]


def scores(gap=0.3, n=400, seed=0):
    """Per-query outcomes on one object set: a learner ``gap`` above random, and one tied with it."""
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(n // 4), 4)
    base = (rng.random(n) < 0.3).astype(float)
    better = np.maximum(base, (rng.random(n) < gap).astype(float))
    per = {
        "random": base,
        "pixels": base,
        "colour histogram": base,
        "good": better,
        "tied": base.copy(),
        "supervised (category)": np.ones(n),
    }
    return {
        "centric": {e: {m: PerQuery(v, clusters) for m in ("category R@1", "category kNN")} for e, v in per.items()}
    }


def test_roles_follow_the_labels_a_supervised_encoder_saw():
    assert role("random") == "floor" and role("pixels") == "floor"
    assert role("supervised (category)", "centric") == "ceiling"
    assert role("supervised (category)", "scenes") == "learner"
    assert role("supervised (scene_class_id)", "scenes") == "ceiling"
    assert role("curious", "centric") == "learner"


def test_verdicts_say_beats_only_beyond_noise():
    lines = "\n".join(verdicts(Summary(scores(), draws=500)))
    assert "**good**" in lines and "beats random on category R@1, category kNN" in lines
    tied = lines.split("**tied**")[1]
    assert "does not beat random" in tied and "beats" not in tied.replace("does not beat", "")
    assert "does not beat supervised (category)" in lines  # the ceiling stays above the learners


def test_report_renders_tables_with_intervals_and_pictures(tmp_path):
    summary = Summary(scores(), draws=300)
    meta = {"size": "small", "device": "cpu", "sets": {"centric": "centric: 400 images"}, "pictures": {}}
    text = markdown(summary, meta)
    assert "| good | learner | " in text and "| supervised (category) | ceiling | 1.000 [1.000, 1.000]" in text
    assert "centric: 400 images" in text and "real-robot" in text and "N of 18" not in text
    assert "supervised (category) - random" in text  # the set-separation check
    png = bar_chart(summary, "centric", tmp_path / "bars.png")
    assert png.stat().st_size > 1000
    imgs = np.random.default_rng(0).integers(0, 255, (32, 8, 8, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(8), 4)
    embs = {"a": torch.randn(32, 4), "b": torch.randn(32, 4)}
    assert retrieval_grid(imgs, embs, labels, tmp_path / "g.png", queries=3, k=4).stat().st_size > 100


def run_evaluate(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), *map(str, args)], capture_output=True, text=True
    )


def test_evaluate_cli_names_a_missing_or_bad_checkpoint(tmp_path):
    out = run_evaluate("--ckpt", tmp_path / "nope.pt", "--out", tmp_path / "r")
    assert out.returncode == 2 and "nope.pt" in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = run_evaluate("--ckpt", bad, "--out", tmp_path / "r")
    assert out.returncode == 2 and "bad.pt" in out.stderr and "Traceback" not in out.stderr
    out = run_evaluate("--sets", "faces", "--out", tmp_path / "r")
    assert out.returncode == 2 and "faces" in out.stderr and "Traceback" not in out.stderr


def test_evaluate_cli_floors_end_to_end(tmp_path):
    out = run_evaluate("--out", tmp_path / "r", "--draws", "1", "--no-ceiling", "--sets", "shape", "scenes")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(report["results"]) == {"shape", "scenes"}
    assert {"pixels", "colour histogram", "random"} == set(report["results"]["shape"])
    iv = report["results"]["shape"]["random"]["instance R@1"]
    assert iv["lo"] <= iv["value"] <= iv["hi"]
    for pic in ("bars_shape.png", "retrieval_shape.png", "bars_scenes.png", "report.md"):
        assert (tmp_path / "r" / pic).exists()
    assert "rendered in" in (tmp_path / "r" / "report.md").read_text()


def test_protocol_and_training_tables():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(50), 4)
    base = (rng.random(200) < 0.4).astype(float)
    per = {"labels_only": base, "equivariant_labels": np.maximum(base, rng.random(200) < 0.5), "slowness_labels": base}
    summary = Summary({"scenes": {e: {"scene 6-shot": PerQuery(v, clusters)} for e, v in per.items()}}, draws=300)
    rows = "\n".join(protocol_table(summary))
    assert "| equivariant_labels - labels_only | +0." in rows and "(noise)" not in rows.split("\n")[2]
    assert "| slowness_labels - labels_only | +0.000 [+0.000, +0.000] (noise)" in rows
    assert protocol_table(Summary({"scenes": {"random": {"scene 6-shot": PerQuery(base, clusters)}}})) == []
    table = "\n".join(training_table({"equivariant": {"step": 300, "val/equivariance_gain": 0.0712}}))
    assert "| equivariant | 300 | 0.071 |" in table and "val/equivariance_gain" in table


def test_trend_is_the_least_squares_slope_after_warm_up_and_says_rising_only_beyond_noise():
    rng = np.random.default_rng(0)
    steps = np.arange(20, 301, 20)
    rising = [{"step": int(s), "g": -0.3 if s == 20 else 0.0002 * s + rng.normal(0, 0.005)} for s in steps]
    iv = trend(rising, "g")
    x = steps[steps > 30].astype(float)  # the first 10 % (the warm-up outlier at step 20) left out
    y = np.array([r["g"] for r in rising if r["step"] > 30])
    assert iv.value == pytest.approx(np.polyfit(x, y, 1)[0] * 100, rel=1e-9)
    assert 0 < iv.lo < 0.02 < iv.hi
    flat = [{"step": int(s), "g": rng.normal(0, 0.01)} for s in steps]
    table = "\n".join(trend_table({"a": {"g": iv.to_dict()}, "b": {"g": trend(flat, "g").to_dict()}}))
    assert "| a | g |" in table and "rising" in table
    assert "| b | g |" in table and "flat (within noise)" in table
    assert trend(rising[:3], "g") is None and trend([{"step": 1}], "g") is None
    assert trend([{"step": int(s), "g": 0.0} for s in steps], "g") is None  # slowness: gain 0 by definition
