"""What an RL run directory holds, read back: the held-out evaluation curve and its plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_RETURN_WINDOW = 20  # training episodes in the rolling mean behind the evaluation curve


def read_evaluations(run_dir: str | Path) -> dict[str, np.ndarray]:
    """From eval/evaluations.npz, per evaluation (E,): timesteps; success, the fraction of episodes;
    return, the mean over episodes; closest, the mean over episodes of the smallest distance (m) to the
    goal; wrong, the fraction that touched a wrong object. NaN where the env reports no such thing."""
    data = np.load(Path(run_dir) / "eval" / "evaluations.npz")
    out = {"timesteps": data["timesteps"], "return": data["results"].mean(axis=1)}
    for key, name in (("success", "successes"), ("closest", "closest"), ("wrong", "wrong")):
        out[key] = data[name].mean(axis=1) if name in data else np.full(len(out["return"]), np.nan)
    return out


def plot_learning_curve(run_dir: str | Path, title: str) -> Path:
    """learning_curve.png: held-out success and return against env steps, training episode returns behind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from stable_baselines3.common.monitor import load_results

    run_dir = Path(run_dir)
    ev = read_evaluations(run_dir)
    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_s.plot(ev["timesteps"], ev["success"], "o-", label="held-out eval")
    ax_s.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title="success")
    try:
        mon = load_results(str(run_dir / "monitor"))
        if len(mon):
            steps = np.cumsum(mon["l"].to_numpy())
            ret = mon["r"].rolling(TRAIN_RETURN_WINDOW, min_periods=1).mean().to_numpy()
            ax_r.plot(steps, ret, color="0.6", lw=1, label=f"train episodes (mean of {TRAIN_RETURN_WINDOW})")
    except Exception:  # noqa: BLE001 - no monitor files: plot the evaluation only
        pass
    ax_r.plot(ev["timesteps"], ev["return"], "o-", label="held-out eval")
    ax_r.set(xlabel="env steps", ylabel="episode return", title="return")
    ax_r.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = run_dir / "learning_curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["plot_learning_curve", "read_evaluations"]
