"""The comparison's arithmetic on hand-made runs: common steps, mean and std, steps to the threshold."""

import json

import numpy as np
import pytest

from embodied.cli import UserError
from embodied.rl.compare import (
    aggregate,
    interval,
    parse_encoders,
    plot_comparison,
    steps_to,
    t_halfwidth,
    table,
    train_args,
)
from embodied.rl.results import plot_learning_curve, read_evaluations


def fake_run(path, encoder, seed, timesteps, successes, returns, closest=None):
    """A run directory as train_rl writes it: eval/evaluations.npz (2 episodes per evaluation) and run.json;
    with ``closest`` (metres per evaluation), the closest approach and wrong touches (the failed episodes)."""
    (path / "eval").mkdir(parents=True)
    succ = np.array([[s >= 0.5, s >= 1.0] for s in successes])  # per evaluation: mean 0, 0.5 or 1
    res = np.array([[r, r] for r in returns], dtype=float)
    extra = {} if closest is None else {"closest": np.array([[c, c] for c in closest]), "wrong": ~succ}
    np.savez(path / "eval" / "evaluations.npz", timesteps=np.array(timesteps), results=res, successes=succ, **extra)
    (path / "run.json").write_text(json.dumps({"encoder": encoder, "seed": seed, "env_steps_per_s": 100.0 + seed}))
    return path


def test_read_evaluations_and_the_learning_curve(tmp_path):
    run = fake_run(tmp_path / "r", "random", 0, [0, 10, 20], [0.0, 0.5, 1.0], [-3.0, -2.0, -1.0])
    ev = read_evaluations(run)
    np.testing.assert_array_equal(ev["timesteps"], [0, 10, 20])
    np.testing.assert_allclose(ev["success"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ev["return"], [-3.0, -2.0, -1.0])
    assert plot_learning_curve(run, "t").stat().st_size > 0  # no monitor/ files: the evaluation alone


def test_aggregate_threshold_is_randoms_final_success(tmp_path):
    runs = {
        "random": [
            fake_run(tmp_path / "r0", "random", 0, [0, 10, 20], [0.0, 0.0, 0.5], [-3, -2, -1]),
            fake_run(tmp_path / "r1", "random", 1, [0, 10, 20], [0.0, 0.5, 0.5], [-3, -2, -1]),
        ],
        "mine": [
            fake_run(tmp_path / "m0", "runs/x", 0, [0, 10, 20, 30], [0.0, 0.5, 1.0, 1.0], [-2, -1, 0, 0]),
            fake_run(tmp_path / "m1", "runs/x", 1, [0, 10, 20], [0.5, 1.0, 1.0], [-2, -1, 0]),
        ],
    }
    result = aggregate(runs, None)
    assert result["threshold"] == 0.5 and result["random_steps_to_threshold"] == 20
    mine = result["encoders"]["mine"]
    assert mine["timesteps"] == [0, 10, 20]  # the steps every seed has
    np.testing.assert_allclose(mine["success_mean"], [0.25, 0.75, 1.0])
    np.testing.assert_allclose(mine["success_std"], [0.25, 0.25, 0.0])
    assert mine["steps_to_threshold"] == 10 and mine["steps_to_threshold_per_seed"] == [10, 0]
    assert mine["ratio_to_random"] == 0.5 and mine["env_steps_per_s"] == 100.5
    assert result["random_steps_to_threshold_sustained"] == 20 and mine["steps_to_threshold_sustained"] == 10
    assert mine["ratio_to_random_sustained"] == 0.5
    assert result["encoders"]["random"]["steps_to_threshold_per_seed"] == [20, 10]
    md = table(result)
    assert mine["final_success_interval"] == [1.0, 1.0, 1.0] and mine["final_minus_random"] == [0.5, 0.5, 0.5]
    assert "final_minus_random" not in result["encoders"]["random"]
    row = "| mine | 2 | 1.00 [1.00, 1.00] | +0.50 [+0.50, +0.50] | 0.0 | 10 | 10, 0 | 0.50x | 10 | 0.50x "
    row += "| - | - | 100 |"
    assert row in md  # no closest approach or wrong touches in these runs
    plot_comparison(result, tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").stat().st_size > 0
    alone = table(aggregate({"mine": runs["mine"]}, None))  # no random run, no --threshold: nothing to reach
    assert "threshold: none (no random run)" in alone
    assert "| mine | 2 | 1.00 [1.00, 1.00] | - | 0.0 | - | - | - | - | - | - | - |" in alone


def test_threshold_is_floored_at_random_actions(tmp_path):
    """Random's final 0.25 under random actions' 0.4: the threshold is 0.4, and a curve that reaches 0.25
    early but never 0.4 has no ratio; above random's final, the floor changes nothing; --threshold is kept."""
    runs = {
        "random": [
            fake_run(tmp_path / f"r{s}", "random", s, [0, 10, 20], [0.0, 0.5, v], [0, 0, 0])
            for s, v in ((0, 0.5), (1, 0.0))
        ],
        "mine": [
            fake_run(tmp_path / f"m{s}", "runs/x", s, [0, 10, 20], [0.0, v, 0.0], [0, 0, 0])
            for s, v in ((0, 0.5), (1, 0.0))
        ],
    }
    floored = aggregate(runs, None, random_actions=[0.4, 0.3, 0.5])
    assert floored["threshold"] == 0.4 and floored["threshold_floored"]
    assert floored["encoders"]["mine"]["steps_to_threshold"] is None  # 0.25 at step 10, never 0.4
    md = table(floored)
    assert "threshold: held-out success >= 0.400 (random's final success was below random actions'" in md
    assert "uniform random actions: held-out success 0.40 [0.30, 0.50] (95 % Wilson)" in md
    unfloored = aggregate(runs, None, random_actions=[0.1, 0.05, 0.2])
    assert unfloored["threshold"] == 0.25 and not unfloored["threshold_floored"]
    assert unfloored["encoders"]["mine"]["steps_to_threshold"] == 10
    assert aggregate(runs, 0.2, random_actions=[0.4, 0.3, 0.5])["threshold"] == 0.2
    plot_comparison(floored, tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_random_action_success_and_its_wilson_interval():
    """Wilson 95 % intervals against the textbook values (9 of 100: 0.048-0.162; 0 of 10: 0-0.278), and the
    random-action level of Reach measured twice: seeded, so the same."""
    from embodied.rl.runner import random_action_success, wilson

    assert wilson(9, 100) == pytest.approx([0.09, 0.0481, 0.1623], abs=1e-4)
    assert wilson(0, 10) == pytest.approx([0.0, 0.0, 0.2775], abs=1e-4)
    first = random_action_success("embodied/Reach-v0", {}, episodes=10)
    assert first == random_action_success("embodied/Reach-v0", {}, episodes=10)
    assert 0.0 <= first[1] <= first[0] <= first[2] <= 1.0


def test_aggregate_closest_approach_and_wrong_touches(tmp_path):
    """Final closest approach 0.02 and 0.04 m over 2 seeds: mean 0.03, half-width 12.706 x 0.01414 / sqrt(2)."""
    runs = {
        "mine": [
            fake_run(tmp_path / "m0", "runs/x", 0, [0, 10], [0.0, 0.5], [-2, -1], closest=[0.3, 0.02]),
            fake_run(tmp_path / "m1", "runs/x", 1, [0, 10], [0.0, 1.0], [-2, -1], closest=[0.2, 0.04]),
        ]
    }
    mine = aggregate(runs, None)["encoders"]["mine"]
    np.testing.assert_allclose(mine["closest_mean"], [0.25, 0.03])
    assert mine["final_closest_interval"] == pytest.approx([0.03, 0.0, 0.03 + 0.12706])  # clipped at 0 m
    np.testing.assert_allclose(mine["wrong_mean"], [1.0, 0.25])
    assert "| 0.030 [0.000, 0.157] | 0.25 [0.00, 1.00] |" in table(aggregate(runs, None))
    plot_comparison(aggregate(runs, None), tmp_path / "c.png", "t")  # a third panel: the closest approach
    assert (tmp_path / "c.png").stat().st_size > 0


def test_t_interval_against_hand_computed_values():
    """mean 0.2, sample std 0.1 over 3 seeds: half-width t(0.975, 2) x 0.1 / sqrt(3) = 0.24844."""
    assert interval(np.array([0.1, 0.2, 0.3])) == pytest.approx([0.2, 0.2 - 0.248438, 0.2 + 0.248438], abs=1e-5)
    np.testing.assert_allclose(t_halfwidth(np.array([[0.0, 1.0], [2.0, 1.0]])), [12.706, 0.0])  # sd sqrt(2) / sqrt(2)
    assert interval(np.array([0.0, 0.0, 0.3]), (0.0, 1.0))[1] == 0.0  # a success rate's interval stays in [0, 1]
    assert np.isnan(t_halfwidth(np.array([[0.5]]))).all()  # one seed: no interval
    many = np.tile([0.0, 1.0], 20)  # 40 seeds: the normal quantile
    assert t_halfwidth(many) == pytest.approx(1.96 * many.std(ddof=1) / np.sqrt(40))


def test_steps_to_and_encoder_labels(tmp_path):
    assert steps_to(np.array([0, 5, 9]), np.array([0.1, 0.3, 0.2]), 0.3) == 5
    assert steps_to(np.array([0, 5]), np.array([0.1, 0.2]), 0.3) is None
    # sustained: from the last crossing on, never when the curve ends below
    assert steps_to(np.array([0, 5, 9]), np.array([0.1, 0.3, 0.2]), 0.3, sustained=True) is None
    assert steps_to(np.array([0, 5, 9, 12]), np.array([0.3, 0.1, 0.3, 0.4]), 0.3, sustained=True) == 9
    assert steps_to(np.array([0, 5]), np.array([0.5, 0.6]), 0.3, sustained=True) == 0
    assert parse_encoders(["random", "curious=runs/c"]) == {"random": "random", "curious": "runs/c"}
    with pytest.raises(UserError, match="--encoders"):
        parse_encoders(["random", "random"])
    argv = train_args("reach", "ppo", "nature", 128, 1, tmp_path, True, ["--vec", "dummy"])
    assert argv == ["--env", "reach", "--algo", "ppo", "--encoder", "nature", "--steps", "128", "--seed", "1"] + [
        "--out",
        str(tmp_path),
        "--quiet",
        "--vec",
        "dummy",
        "--finetune",
    ]
