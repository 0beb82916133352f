"""SB3 models: built from an :class:`~embodied.rl.config.RLConfig`, saved, and loaded back as policies.

Reload a saved model and act with it (no checkpoint file needed: the trunk's weights
are inside the SB3 zip)::

    policy = load_sb3_policy("runs/rl/model.zip")
    action = policy(obs, info)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from embodied.rl.extractor import EmbodiedExtractor, policy_kwargs
from embodied.rl.state import STATE_ENCODERS, state_vector

if TYPE_CHECKING:
    from embodied.rl.config import RLConfig

ALGOS = ("ppo", "sac")
PPO_MAX_N_STEPS = 128  # steps per env per rollout unless the run is shorter
PPO_MIN_N_STEPS = 8
DEFAULT_BATCH_SIZE = 128


def algo_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 algorithm class for "ppo" or "sac"."""
    from stable_baselines3 import PPO, SAC

    classes: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
    if name not in classes:
        raise ValueError(f"algo={name!r}; expected one of {ALGOS}")
    return classes[name]


def config_policy_kwargs(cfg: RLConfig) -> dict[str, Any] | None:
    """``policy_kwargs`` of the run ``cfg`` describes (its encoder, features and seed); None (SB3's
    MlpPolicy defaults) for a state encoder."""
    if cfg.encoder in STATE_ENCODERS:
        return None
    pk = policy_kwargs(
        cfg.encoder,
        finetune=cfg.finetune,
        resize=cfg.resize,
        seed=cfg.seed,
        features=cfg.features,
        keypoints=cfg.keypoints,
        glimpses=cfg.glimpses,
        proprio_dim=cfg.proprio_dim,
        cache_mb=cfg.cache_mb,
        gate=cfg.gate,
        exemplar=cfg.exemplar,
        trunk_lr_scale=cfg.trunk_lr_scale,
    )
    if cfg.share_trunk is not None:
        pk["share_features_extractor"] = bool(cfg.share_trunk)
    if cfg.algo == "ppo" and "optimizer_class" in pk:
        pk["optimizer_kwargs"] = {"eps": 1e-5}  # what SB3's actor-critic policies give their own Adam
    return pk


def make_model(cfg: RLConfig, venv: VecEnv, out: Path) -> BaseAlgorithm:
    """The PPO or SAC model of ``cfg`` on the training envs ``venv``, logging TensorBoard to ``out/tb``."""
    policy = "MlpPolicy" if cfg.encoder in STATE_ENCODERS else "MultiInputPolicy"
    common: dict[str, Any] = dict(
        policy_kwargs=config_policy_kwargs(cfg),
        learning_rate=cfg.lr,
        seed=cfg.seed,
        device=cfg.device,
        tensorboard_log=str(Path(out) / "tb"),
        verbose=0 if cfg.quiet else 1,
    )
    if cfg.algo == "ppo":
        n_steps = cfg.n_steps or min(PPO_MAX_N_STEPS, max(PPO_MIN_N_STEPS, cfg.steps // venv.num_envs))
        batch = cfg.batch_size or DEFAULT_BATCH_SIZE
        return algo_class("ppo")(
            policy,
            venv,
            n_steps=n_steps,
            batch_size=min(batch, n_steps * venv.num_envs),
            n_epochs=cfg.n_epochs,
            ent_coef=cfg.ent_coef,
            **common,
        )
    return algo_class("sac")(
        policy,
        venv,
        buffer_size=cfg.buffer_size,
        batch_size=cfg.batch_size or DEFAULT_BATCH_SIZE,
        learning_starts=cfg.learning_starts,
        train_freq=1,
        gradient_steps=1,
        **common,
    )


def load_model(path: str | Path, algo: str | None = None, device: str = "cpu") -> BaseAlgorithm:
    """A saved SB3 model (``model.zip``, or a run directory holding one), rebuilt without its checkpoint.

    algo: "ppo" / "sac"; None detects it from the saved policy class.
    """
    from stable_baselines3.common.save_util import load_from_zip_file

    path = Path(path)
    if path.is_dir():
        path = path / "model.zip"
    if not path.exists():
        raise FileNotFoundError(f"no SB3 model at {path}")
    data, _, _ = load_from_zip_file(path, device=device, load_data=True)
    if data is None:
        raise ValueError(f"{path} holds no SB3 model data")
    if algo is None:
        module = getattr(data.get("policy_class"), "__module__", "")
        algo = "sac" if ".sac." in module else "ppo"
    pk = dict(data.get("policy_kwargs") or {})
    fe = dict(pk.get("features_extractor_kwargs") or {})
    custom: dict[str, Any] = {}
    if pk.get("features_extractor_class") is EmbodiedExtractor and fe.get("encoder") not in (None, "nature"):
        # the architecture from the recorded config; the weights (trunk included) come from the zip
        fe["encoder"] = "random"
        pk["features_extractor_kwargs"] = fe
        custom["policy_kwargs"] = pk
    return algo_class(algo).load(path, device=device, custom_objects=custom)


class SB3Policy:
    """``policy(obs, info) -> action`` around a trained SB3 model (the ``embodied.video`` Policy shape).

    state: the state encoder ("state" / "goal-state") the model was trained with, if any: its input is
    then :func:`embodied.rl.state.state_vector` of the env's Dict observation and info.
    """

    def __init__(self, model: BaseAlgorithm, deterministic: bool = True, state: str | None = None) -> None:
        self.model, self.deterministic, self.state = model, deterministic, state

    def __call__(self, obs: dict[str, np.ndarray], info: dict | None = None) -> np.ndarray:
        if self.state is not None:
            if info is None:
                raise ValueError(f"a {self.state!r} policy reads the env's info; pass it as policy(obs, info)")
            obs = state_vector(obs, info, self.state)  # type: ignore[assignment]
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return action

    def reset(self, seed: int | None = None) -> None:
        """Stateless (feed-forward policies); present for ``embodied.video.rollout``."""


def load_sb3_policy(
    path: str | Path, deterministic: bool = True, device: str = "cpu", algo: str | None = None
) -> Callable[[dict, dict], np.ndarray]:
    """A saved SB3 model as ``policy(obs, info) -> action`` for ``embodied.video.rollout`` / scripts/render.py.

    A model trained on a state encoder is recognised by the run.json beside it (``train_rl.py`` writes one).
    """
    path = Path(path)
    run = (path if path.is_dir() else path.parent) / "run.json"
    encoder = json.loads(run.read_text()).get("encoder") if run.exists() else None
    state = encoder if encoder in STATE_ENCODERS else None
    return SB3Policy(load_model(path, algo=algo, device=device), deterministic=deterministic, state=state)


__all__ = [
    "ALGOS",
    "SB3Policy",
    "algo_class",
    "config_policy_kwargs",
    "load_model",
    "load_sb3_policy",
    "make_model",
]
