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
    assert {"random", "equivariant", "slowness", "curious", "supervised"} <= set(report["results"])
    assert (out / "report" / "report.md").exists() and (out / "report" / "embeddings_pca.png").exists()
    for agent in ("equivariant", "slowness", "curious", "supervised"):
        assert (out / "runs" / agent / "checkpoint.pt").exists()
        assert (out / "report" / f"retrieval_{agent}.png").exists()
    assert (out / "videos" / "ego_room.mp4").stat().st_size > 1000
    assert "report:" in proc.stdout
