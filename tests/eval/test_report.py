import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from embodied.eval.report import evaluate_embeddings, markdown, object_split, retrieval_grid, scene_split

ROOT = Path(__file__).resolve().parents[2]


def fake_sets(n_inst=8, views=4, classes=4, rooms=4, frames=3):
    inst = np.repeat(np.array([c * 24 + i for c in range(2) for i in (4, 9, 14, 19)][:n_inst]), views)
    objects = {"instance": inst, "category": inst // 24, "images": np.zeros((len(inst), 8, 8, 3), np.uint8)}
    sc = np.repeat(np.arange(classes), rooms * frames)
    sid = np.repeat(np.arange(classes * rooms), frames)
    scenes = {"scene_class": sc, "scene_id": sid}
    return objects, scenes


def test_splits_hold_out_instances_and_rooms():
    objects, scenes = fake_sets()
    tr, te = object_split(objects["instance"])
    assert not set(objects["instance"][tr]) & set(objects["instance"][te])
    assert set(objects["category"][tr]) == set(objects["category"][te])
    tr, te = scene_split(scenes["scene_id"], scenes["scene_class"])
    assert not set(scenes["scene_id"][tr]) & set(scenes["scene_id"][te])
    assert set(scenes["scene_class"][tr]) == set(scenes["scene_class"][te])


def test_perfect_embeddings_score_one_and_report_renders(tmp_path):
    objects, scenes = fake_sets()
    obj = torch.nn.functional.one_hot(torch.as_tensor(objects["instance"]) % 97, 97).float()
    obj[:, :2] += torch.nn.functional.one_hot(torch.as_tensor(objects["category"]), 2).float() * 0.5
    scn = torch.nn.functional.one_hot(torch.as_tensor(scenes["scene_class"]), 4).float()
    res = evaluate_embeddings(obj, objects, scn, scenes, draws=2)
    assert res["instance_recall"][1] == 1.0
    assert res["scene_linear"] == 1.0 and res["scene_knn"] == 1.0
    meta = {"size": "tiny", "device": "cpu", "objects": 32, "scenes": 48, "grids": {"x": "g.png"}, "plot": "p.png"}
    text = markdown({"x": res}, meta)
    assert "| x | 1.000" in text and "real-robot" in text
    grid = retrieval_grid(
        np.random.default_rng(0).integers(0, 255, (32, 8, 8, 3), dtype=np.uint8),
        obj,
        objects["instance"],
        tmp_path / "grid.png",
        queries=3,
        k=4,
    )
    assert grid.exists() and grid.stat().st_size > 100


def test_evaluate_cli_names_a_missing_checkpoint(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            "--ckpt",
            str(tmp_path / "nope.pt"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "nope.pt" in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--ckpt", str(bad), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "bad.pt" in out.stderr and "Traceback" not in out.stderr


def test_evaluate_cli_random_baseline_end_to_end(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--out", str(tmp_path / "r"), "--draws", "1"],
        check=True,
        capture_output=True,
    )
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "random" in report["results"]
    assert (tmp_path / "r" / "report.md").exists() and (tmp_path / "r" / "retrieval_random.png").exists()
    assert (tmp_path / "r" / "embeddings_pca.png").exists()
