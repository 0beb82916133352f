"""Stable-Baselines3 glue: learned trunks as RL feature extractors, the run loop, and its results.

- :mod:`~embodied.rl.extractor`: ``EmbodiedExtractor`` (a trunk, random or NatureCNN on the image key of a
  Dict observation) and ``policy_kwargs`` for ``MultiInputPolicy``;
- :mod:`~embodied.rl.models`: ``make_model`` (PPO / SAC from an ``RLConfig``), ``load_model`` and
  ``load_sb3_policy`` (a saved model as ``policy(obs, info) -> action``, without its checkpoint);
- :mod:`~embodied.rl.callbacks`: ``SeededEval`` (the same seeded held-out episodes at every evaluation);
- :mod:`~embodied.rl.config`: ``RLConfig`` (field docstrings are the ``--help``) and the presets under ``rl/``;
- :mod:`~embodied.rl.state`: the privileged-state encoders ``"state"`` / ``"goal-state"`` (the RL ceiling);
- :mod:`~embodied.rl.runner`: ``train(cfg)``, one run from checks to run.json;
- :mod:`~embodied.rl.results` / :mod:`~embodied.rl.compare`: learning curves, the encoders-by-seeds comparison.

::

    from stable_baselines3 import PPO
    from embodied.rl import load_sb3_policy, policy_kwargs
    model = PPO("MultiInputPolicy", env, policy_kwargs=policy_kwargs("runs/curious", features="keypoints"))
    policy = load_sb3_policy("runs/rl/model.zip")  # policy(obs, info) -> action
"""

from embodied.rl.callbacks import EVAL_SEED_OFFSET, SeededEval, eval_schedule
from embodied.rl.config import RLConfig, load_preset, parse_args
from embodied.rl.extractor import BUILTIN_ENCODERS, FEATURES, EmbodiedExtractor, SpatialSoftmax, policy_kwargs
from embodied.rl.models import ALGOS, SB3Policy, algo_class, load_model, load_sb3_policy, make_model
from embodied.rl.results import plot_learning_curve, read_evaluations
from embodied.rl.runner import train
from embodied.rl.state import STATE_ENCODERS, PrivilegedState, state_vector
from embodied.rl.wrappers import SuccessInfo

__all__ = [
    "ALGOS",
    "BUILTIN_ENCODERS",
    "EVAL_SEED_OFFSET",
    "FEATURES",
    "EmbodiedExtractor",
    "RLConfig",
    "PrivilegedState",
    "SB3Policy",
    "SeededEval",
    "STATE_ENCODERS",
    "SpatialSoftmax",
    "SuccessInfo",
    "algo_class",
    "eval_schedule",
    "load_model",
    "load_preset",
    "load_sb3_policy",
    "make_model",
    "parse_args",
    "plot_learning_curve",
    "policy_kwargs",
    "read_evaluations",
    "state_vector",
    "train",
]
