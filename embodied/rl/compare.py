"""The encoders-by-seeds comparison: one training process per (encoder, seed), then one figure and one table.

Each run is a train_rl command (``command``: the program and its arguments up to the run's own) writing
``out/<label>/seed<S>``; a run with a run.json is finished and reused, so a killed comparison resumes.
:func:`aggregate` puts the runs' held-out curves on common steps (mean, std and 95 % t-interval over seeds
per encoder; the final success minus random's, paired by seed)
and finds the steps each encoder needs to reach a success threshold (by default the ``random``
trunk's final mean success, floored at the success of uniform random actions when that is given: a
threshold a policy meets by flailing measures nothing); :func:`plot_comparison` and :func:`table` show them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from embodied.cli import UserError
from embodied.rl.extractor import BUILTIN_ENCODERS
from embodied.rl.results import read_evaluations
from embodied.rl.state import STATE_ENCODERS

REACHED_TOLERANCE = 1e-9  # a curve at the threshold up to rounding has reached it
# Student t 0.975 quantiles for 1..10 degrees of freedom (scipy is not a dependency); 1.96 beyond
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_halfwidth(values: np.ndarray) -> np.ndarray:
    """Half-width of the 95 % t-interval of the mean over axis 0 of ``values`` (S, ...) seeds; NaN for one seed."""
    n = values.shape[0]
    if n < 2:
        return np.full(values.shape[1:], np.nan)
    t = T_975[n - 2] if n - 1 <= len(T_975) else 1.96
    return t * values.std(0, ddof=1) / np.sqrt(n)


def interval(values: np.ndarray, bounds: tuple[float, float] = (-np.inf, np.inf)) -> list[float]:
    """[mean, lo, hi] of ``values`` (S,) over seeds: the 95 % t-interval, clipped to ``bounds`` (a success
    rate's to [0, 1])."""
    m, h = float(np.mean(values)), float(t_halfwidth(np.asarray(values, dtype=float)))
    return [m, max(m - h, bounds[0]), min(m + h, bounds[1])]


def parse_encoders(items: list[str]) -> dict[str, str]:
    """["random", "curious=runs/curious"] -> {"random": "random", "curious": "runs/curious"}."""
    out: dict[str, str] = {}
    for item in items:
        label, _, enc = item.partition("=")
        if not label or label in out:
            raise UserError("--encoders", item, "label=checkpoint with a new, non-empty label")
        out[label] = enc or label
    return out


def check_encoders(encoders: dict[str, str]) -> None:
    """UserError unless every encoder is built in or an existing checkpoint / run directory."""
    for label, enc in encoders.items():
        if enc not in BUILTIN_ENCODERS + STATE_ENCODERS and not Path(enc).exists():
            raise UserError(
                "--encoders",
                f"{label}={enc}",
                f"{', '.join(BUILTIN_ENCODERS + STATE_ENCODERS)}, or label=<existing checkpoint>",
            )


def train_args(
    env: str, algo: str, encoder: str, steps: int, seed: int, run_dir: Path, finetune: bool, extra: list[str]
) -> list[str]:
    """The train_rl arguments of one run of the comparison (``extra``: the ones every run gets)."""
    args = ["--env", env, "--algo", algo, "--encoder", encoder, "--steps", str(steps), "--seed", str(seed)]
    args += ["--out", str(run_dir), "--quiet", *extra]
    return [*args, "--finetune"] if finetune else args


def run_seed(command: list[str], run_dir: Path, name: str) -> Path:
    """Run ``command`` (one training, writing ``run_dir``) unless ``run_dir`` holds a finished run.

    Its output goes to ``run_dir/log.txt``; a failed run is a RuntimeError naming ``name`` and the log.
    """
    if (run_dir / "run.json").exists():
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "log.txt", "w") as log:
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {proc.returncode}); see {run_dir / 'log.txt'}")
    return run_dir


def steps_to(timesteps: np.ndarray, curve: np.ndarray, threshold: float, sustained: bool = False) -> int | None:
    """The first evaluated step at which ``curve`` reaches ``threshold`` (None: never).

    ``sustained``: the first step from which it stays there to the last evaluation. A curve near the
    random-action level crosses a low threshold by chance early on, and then the first crossing says
    nothing about learning; the sustained one does not count those."""
    above = curve >= threshold - REACHED_TOLERANCE
    if sustained:
        below = np.nonzero(~above)[0]
        first = below[-1] + 1 if len(below) else 0
        return int(timesteps[first]) if first < len(above) else None
    hit = np.nonzero(above)[0]
    return int(timesteps[hit[0]]) if len(hit) else None


def aggregate(
    runs: dict[str, list[Path]], threshold: float | None, random_actions: list[float] | None = None
) -> dict[str, Any]:
    """Per encoder: mean / std / 95 % t-interval curves on common eval steps, final numbers, steps-to-threshold,
    and the final success minus random's, paired by seed (``final_minus_random``, [mean, lo, hi]) when the
    encoder ran random's seeds.

    ``random_actions``: [mean, lo, hi] success of uniform random actions on the evaluation env
    (:func:`embodied.rl.runner.random_action_success`); the default threshold (random's final) is raised
    to its mean when below it. A ``threshold`` given is used as it is.
    """
    result: dict[str, Any] = {"encoders": {}}
    for label, dirs in runs.items():
        evs = [read_evaluations(d) for d in dirs]
        n = min(len(e["timesteps"]) for e in evs)
        t = evs[0]["timesteps"][:n]
        succ = np.stack([e["success"][:n] for e in evs])
        ret = np.stack([e["return"][:n] for e in evs])
        meta = [json.loads((d / "run.json").read_text()) for d in dirs]
        result["encoders"][label] = {
            "encoder": meta[0]["encoder"],
            "seeds": [m["seed"] for m in meta],
            "timesteps": t.tolist(),
            "success_mean": succ.mean(0).tolist(),
            "success_std": succ.std(0).tolist(),
            "success_ci": t_halfwidth(succ).tolist(),
            "return_mean": ret.mean(0).tolist(),
            "return_std": ret.std(0).tolist(),
            "success_per_seed": succ.tolist(),
            "final_success_mean": float(succ[:, -1].mean()),
            "final_success_std": float(succ[:, -1].std()),
            "final_success_interval": interval(succ[:, -1], (0.0, 1.0)),
            "final_return_mean": float(ret[:, -1].mean()),
            **_outcomes(evs, n),
            "env_steps_per_s": float(np.mean([m["env_steps_per_s"] for m in meta])),
        }
    result["random_actions"] = random_actions
    result["threshold_floored"] = False
    if threshold is None:
        threshold = result["encoders"].get("random", {}).get("final_success_mean")
        if threshold is not None and random_actions is not None and threshold < random_actions[0]:
            threshold, result["threshold_floored"] = random_actions[0], True
    result["threshold"] = threshold
    if threshold is None:
        return result
    for sustained, suffix in ((False, ""), (True, "_sustained")):
        base = None
        if "random" in result["encoders"]:
            r = result["encoders"]["random"]
            base = steps_to(np.asarray(r["timesteps"]), np.asarray(r["success_mean"]), threshold, sustained)
        for e in result["encoders"].values():
            t = np.asarray(e["timesteps"])
            s = steps_to(t, np.asarray(e["success_mean"]), threshold, sustained)
            e[f"steps_to_threshold{suffix}"] = s
            e[f"ratio_to_random{suffix}"] = (s / base) if (s is not None and base) else None
            if not sustained:
                per_seed = e["success_per_seed"]
                e["steps_to_threshold_per_seed"] = [steps_to(t, np.asarray(c), threshold) for c in per_seed]
        result[f"random_steps_to_threshold{suffix}"] = base
    _paired_to_random(result["encoders"])
    return result


def _outcomes(evs: list[dict[str, np.ndarray]], n: int) -> dict[str, Any]:
    """Mean curves and final [mean, lo, hi] over seeds of the closest approach to the goal (m) and of
    the wrong-touch rate, for envs that report them (absent otherwise)."""
    out: dict[str, Any] = {}
    for key, bounds in (("closest", (0.0, np.inf)), ("wrong", (0.0, 1.0))):
        values = np.stack([e[key][:n] for e in evs])
        if np.isnan(values).any():
            continue
        out[f"{key}_mean"] = values.mean(0).tolist()
        out[f"final_{key}_interval"] = interval(values[:, -1], bounds)
    return out


def _paired_to_random(encoders: dict[str, Any]) -> None:
    """``final_minus_random`` of each encoder that ran random's seeds: per-seed differences, t-interval."""
    r = encoders.get("random")
    if r is None:
        return
    final_r = {seed: s[-1] for seed, s in zip(r["seeds"], r["success_per_seed"], strict=True)}
    for label, e in encoders.items():
        if label == "random" or sorted(e["seeds"]) != sorted(final_r):
            continue
        diffs = [s[-1] - final_r[seed] for seed, s in zip(e["seeds"], e["success_per_seed"], strict=True)]
        e["final_minus_random"] = interval(np.asarray(diffs), (-1.0, 1.0))


def plot_comparison(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    closest = any("closest_mean" in e for e in result["encoders"].values())
    fig, axes = plt.subplots(1, 3 if closest else 2, figsize=(16 if closest else 11, 4))
    ax_s, ax_r = axes[:2]
    for label, e in result["encoders"].items():
        t = np.asarray(e["timesteps"])
        for ax, key in ((ax_s, "success"), (ax_r, "return")):
            m, s = np.asarray(e[f"{key}_mean"]), np.asarray(e.get(f"{key}_ci", e[f"{key}_std"]))
            (line,) = ax.plot(t, m, "o-", ms=3, label=f"{label} (n={len(e['seeds'])})")
            ax.fill_between(t, m - s, m + s, color=line.get_color(), alpha=0.2)
        if "closest_mean" in e:
            axes[2].plot(t, e["closest_mean"], "o-", ms=3, color=line.get_color(), label=label)
    if closest:
        axes[2].set(xlabel="env steps", ylabel="m, mean over seeds", title="closest approach to the goal")
    if result.get("threshold") is not None:
        ax_s.axhline(result["threshold"], color="0.4", ls="--", lw=1, label="threshold")
    if result.get("random_actions") is not None:
        ax_s.axhline(result["random_actions"][0], color="0.6", ls=":", lw=1, label="uniform random actions")
    ax_s.set(xlabel="env steps", ylabel="held-out success rate", ylim=(-0.02, 1.02), title="success")
    ax_r.set(xlabel="env steps", ylabel="held-out episode return", title="return")
    ax_s.legend(fontsize=8)
    fig.suptitle(f"{title}\nmean over seeds; bands: 95 % t-interval of success, ± std of return", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    thr = result.get("threshold")
    head = f"threshold: held-out success >= {thr:.3f}" if thr is not None else "threshold: none (no random run)"
    if result.get("threshold_floored"):
        head += " (random's final success was below random actions', so the threshold is theirs)"
    if result.get("random_actions") is not None:
        head += f"\n\nuniform random actions: held-out success {_iv(result['random_actions'])} (95 % Wilson)"
    lines = [
        head,
        "",
        "| encoder | seeds | final success [95 % interval] | minus random (paired by seed) | final return "
        "| steps to threshold (mean curve) | per seed | vs random | stays above from (mean curve) | vs random "
        "| closest approach to the goal (m) | wrong touches | env steps/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, e in result["encoders"].items():
        per_seed = ", ".join("never" if v is None else str(v) for v in e.get("steps_to_threshold_per_seed", []))
        reached = [
            "-" if thr is None else ("never" if (s := e.get(f"steps_to_threshold{x}")) is None else str(s))
            for x in ("", "_sustained")
        ]  # no threshold: nothing to reach
        ratio = ["-" if (r := e.get(f"ratio_to_random{x}")) is None else f"{r:.2f}x" for x in ("", "_sustained")]
        lines.append(
            f"| {label} | {len(e['seeds'])} | {_iv(e['final_success_interval'])} "
            f"| {_iv(e.get('final_minus_random'), signed=True)} "
            f"| {e['final_return_mean']:.1f} | {reached[0]} | {per_seed or '-'} "
            f"| {ratio[0]} | {reached[1]} | {ratio[1]} | {_iv(e.get('final_closest_interval'), fmt='{:.3f}')} "
            f"| {_iv(e.get('final_wrong_interval'))} | {e['env_steps_per_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _iv(iv: list[float] | None, signed: bool = False, fmt: str = "{:.2f}") -> str:
    """``[mean, lo, hi]`` as ``0.12 [0.05, 0.19]`` (the mean alone for one seed)."""
    if iv is None:
        return "-"
    f = "{:+.2f}" if signed else fmt
    m, lo, hi = (f.format(v) for v in iv)
    return m if np.isnan(iv[1]) else f"{m} [{lo}, {hi}]"


__all__ = [
    "T_975",
    "aggregate",
    "check_encoders",
    "parse_encoders",
    "plot_comparison",
    "run_seed",
    "steps_to",
    "table",
    "t_halfwidth",
    "interval",
    "train_args",
]
