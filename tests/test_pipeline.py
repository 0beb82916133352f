"""The main job as package functions (embodied.pipeline), without running it: the trainings it plans are
the scripts/train.py runs of before, and a run of no stages writes only the totals."""

import importlib.util
import json
from pathlib import Path

from embodied.agents.registry import apply_overrides, check_preset, load_preset
from embodied.pipeline import AGENTS, SIZES, main_job, train_runs

ROOT = Path(__file__).resolve().parents[1]


def _train_cli():
    spec = importlib.util.spec_from_file_location("train_cli_pipeline", ROOT / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_in_process_and_subprocess_trainings_get_the_same_preset(tmp_path):
    cli = _train_cli()
    cfg = SIZES["tiny"]
    runs = train_runs(cfg, {p: tmp_path / "data" / p for p in cfg["data"]}, tmp_path, seeds=2)
    assert len(runs) == 2 * len(AGENTS)
    assert [r.out.name for r in runs[:2]] == ["curious-seed0", "curious-seed1"]
    for run in runs:
        from_argv = cli.preset_of(cli.parse(run.argv()))
        direct = apply_overrides(load_preset(run.agent), run.positional() + run.flags())
        check_preset(direct)
        assert direct.to_dict() == from_argv.to_dict(), run.agent
        assert "--resume" not in run.argv()  # no checkpoint yet


def test_no_stages_writes_the_totals_only(tmp_path, capsys):
    assert main_job(tmp_path / "demo", "tiny", stages=[]) == 0
    assert set(json.loads((tmp_path / "demo" / "timings.json").read_text())) == {"total"}
    assert "report:" in capsys.readouterr().out


def test_a_size_can_name_its_agents(tmp_path):
    cfg = SIZES["medium"]
    runs = train_runs(cfg, {p: tmp_path / "data" / p for p in cfg["data"]}, tmp_path, seeds=1)
    assert [r.agent for r in runs] == ["curious", "equivariant"]
    assert all(r.steps == cfg["steps"]["*"] and r.batch == cfg["batch"] for r in runs)
