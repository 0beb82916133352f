"""embodied.metrics_log: row means and fields, the non-finite check, resume truncation, TensorBoard, the plot."""

from __future__ import annotations

import json

import pytest
import torch

from embodied.checkpoint import TrainingError
from embodied.metrics_log import METRICS_NAME, MetricsLog, read_metrics

CPU = torch.device("cpu")


def lr_at(step):
    return 0.1 * (step + 1)


def log_for(tmp_path, tasks=("a", "b"), resume_step=None):
    return MetricsLog(tmp_path, tasks, CPU, resume_step=resume_step, lr_at=lr_at)


def step(log, i, losses, **metrics):
    for task, loss in losses.items():
        log.record(task, i, torch.tensor(float(loss)), {k: torch.tensor(v) for k, v in metrics.items()}, 4, 8)
    log.end_step()


def test_a_row_holds_the_means_of_its_steps(tmp_path):
    log = log_for(tmp_path)
    assert log.row(0, 0, last_good="x") is None  # no step yet: no row, no file
    assert not (tmp_path / METRICS_NAME).exists()
    step(log, 0, {"a": 1.0, "b": 10.0}, acc=0.5)
    step(log, 1, {"a": 3.0, "b": 30.0}, acc=1.0)
    log.record_grad_norm("a", 1.0)
    log.record_grad_norm("b", 3.0)
    row = log.row(2, 16, last_good="x", validation=lambda: {"r1": torch.tensor(0.25)})
    assert list(row)[:3] == ["step", "samples", "time"] and (row["step"], row["samples"]) == (2, 16)
    assert row["a/loss"] == 2.0 and row["b/loss"] == 20.0 and row["a/acc"] == 0.75 and row["loss"] == 22.0
    assert row["lr"] == lr_at(1)  # the rate of the row's last step
    assert row["samples_per_s"] > 0 and row["images_per_s"] == pytest.approx(2 * row["samples_per_s"])
    assert (row["a/grad_norm"], row["a/grad_share"], row["b/grad_share"]) == (1.0, 0.25, 0.75)
    assert row["val/r1"] == 0.25
    assert read_metrics(tmp_path / METRICS_NAME) == [json.loads(json.dumps(row))]
    assert log.row(2, 16, last_good="x") is None  # the segment starts afresh
    step(log, 2, {"a": 5.0, "b": 0.0})
    assert log.row(3, 24, last_good="x")["a/loss"] == 5.0
    log.close()
    assert [r["step"] for r in read_metrics(tmp_path / METRICS_NAME)] == [2, 3]
    assert any((tmp_path / "tb").iterdir())
    log.plot(tmp_path / "loss_curve.png")
    assert (tmp_path / "loss_curve.png").stat().st_size > 0


def test_a_non_finite_loss_raises_at_the_next_row_naming_task_step_and_checkpoint(tmp_path):
    log = log_for(tmp_path)
    step(log, 0, {"a": 1.0, "b": 1.0})
    step(log, 1, {"a": 1.0, "b": float("nan")})  # recorded without a sync: no error yet
    step(log, 2, {"a": 1.0, "b": float("inf")})  # the first bad step is the one named
    match = r"non-finite loss of task 'b' at step 2 \(learning rate 0\.2\); training stopped, "
    match += "last good checkpoint: here"
    with pytest.raises(TrainingError, match=match):
        log.row(3, 24, last_good="here")
    assert not (tmp_path / METRICS_NAME).exists()  # no row past a non-finite loss
    with pytest.raises(TrainingError, match="task 'b' at step 2"):  # it stays failed
        log.check_finite("here")
    log.close()


def test_finite_losses_pass_the_check(tmp_path):
    log = log_for(tmp_path, tasks=("a",))
    step(log, 0, {"a": -1e30})
    log.check_finite("here")
    assert log.row(1, 4, last_good="here")["loss"] == pytest.approx(-1e30)
    log.close()


def test_resume_keeps_the_rows_up_to_the_checkpoint_and_a_fresh_run_drops_them(tmp_path):
    path = tmp_path / METRICS_NAME
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 6)]
    path.write_text("\n".join(lines) + '\n{"step": 6, "lo')  # the last line cut short by a kill
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    log_for(tmp_path, resume_step=3).close()
    assert path.read_text() == "\n".join(lines[:3]) + "\n"
    log_for(tmp_path, resume_step=None).close()
    assert not path.exists()
