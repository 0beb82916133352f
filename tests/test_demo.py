"""The main job (README's first command) end to end at a tiny size."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_main_job_tiny_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report" / "report.json").read_text())
    encoders = {"pixels", "colour histogram", "random", "equivariant", "slowness", "curious"}
    encoders |= {"labels_only", "slowness_labels", "equivariant_labels"}
    encoders |= {"supervised (scene_class_id)", "supervised (category)"}
    assert set(report["results"]) == {"centric", "scenes"}
    assert encoders == set(report["results"]["centric"]) == set(report["results"]["scenes"])
    for pic in ("report.md", "bars_centric.png", "retrieval_centric.png", "bars_scenes.png"):
        assert (out / "report" / pic).exists()
    for agent in ("equivariant", "slowness", "curious", "supervised", "labels_only", "equivariant_labels"):
        assert (out / "runs" / agent / "checkpoint.pt").exists()
    text = (out / "report" / "report.md").read_text()
    assert "equivariant_labels - labels_only" in text and "val/equivariance_gain" in text
    assert set(json.loads((out / "timings.json").read_text())) == {"collect", "train", "evaluate", "videos", "total"}
    assert (out / "videos" / "ego_room.mp4").stat().st_size > 1000
    assert "report:" in proc.stdout
