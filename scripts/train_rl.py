#!/usr/bin/env python
"""Train an SB3 agent (PPO or SAC) on a pixel task with a learned, random or NatureCNN image encoder.

python scripts/train_rl.py --env reach --algo ppo --encoder runs/curious --steps 100000 --seed 0 --out runs/rl/curious-0
python scripts/train_rl.py --env reach --algo ppo --encoder random --steps 20000 --seed 0 --out runs/rl/random-0
python scripts/train_rl.py --env reach --algo sac --encoder nature --steps 20000 --seed 0 --out runs/rl/nature-0
python scripts/train_rl.py --preset reach_ppo --encoder runs/curious --out runs/rl/curious-0 --env-kwargs size=64

Settings: the RLConfig defaults, then the preset (rl/*.toml) if --preset names one, then the flags given.
Writes to --out: model.zip (final), checkpoints/, tb/ (TensorBoard), monitor/ (training episodes),
eval/evaluations.npz (held-out instances, the same seeded episodes at every evaluation),
learning_curve.png and run.json (config, env steps/s, final success).
Roll the result out to video: ``embodied.rl.load_sb3_policy(out / "model.zip")``.
"""

from __future__ import annotations

from embodied.cli import catch_user_errors, run
from embodied.rl.config import parse_args
from embodied.rl.runner import run_label, train


@catch_user_errors
def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv, description=__doc__)
    s = train(cfg)
    print(
        f"{run_label(cfg, s['preset'])}: {s['steps']} steps, {s['env_steps_per_s']} env steps/s (training, eval "
        f"excluded), final held-out success {s['final_success']:.2f}, return {s['final_return']:.1f} -> {cfg.out}"
    )
    return 0


if __name__ == "__main__":
    run(main)
