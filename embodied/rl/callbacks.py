"""SB3 callbacks of an RL run: the seeded held-out evaluation, PPO's loss gradients on the image
pathway, a progress bar, and when to evaluate."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from tqdm import tqdm

EVAL_SEED_OFFSET = 1_000_003  # eval episodes never share seeds with training episodes
MIN_EVAL_EVERY = 2000  # env steps: the default never evaluates more often (short runs: start and end only)
EVALS_PER_RUN = 10
MAX_EVAL_EPISODES, MIN_EVAL_EPISODES = 20, 2
STEPS_PER_EVAL_EPISODE = 1000  # default episodes per evaluation: one per this many env steps of the run


class SeededEval(EvalCallback):
    """EvalCallback that replays the same seeded episodes at every evaluation (one at step 0 too)
    and keeps count of the wall time it spends, so env steps/s can leave it out.

    Beside SB3's arrays, evaluations.npz gets, per evaluation and episode (E, N), where the env's info
    has them: ``closest``, the smallest ``info["distance"]`` (m) over the episode's steps, and
    ``wrong``, ``info["wrong"]`` at its last step (it touched an object that was not the goal). They
    tell a policy that never gets there from one that gets to the wrong object.
    """

    def __init__(self, *args: Any, eval_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seed = eval_seed
        self.eval_seconds = 0.0
        self._closest_so_far: dict[int, float] = {}  # env index -> smallest distance of its running episode
        self._closest_buffer: list[float] = []
        self._wrong_buffer: list[bool] = []
        self.evaluations_closest: list[list[float]] = []
        self.evaluations_wrong: list[list[bool]] = []

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.evaluate_now()

    def evaluate_now(self) -> None:
        """One evaluation at the current step, whatever ``eval_freq`` says."""
        if self.evaluations_timesteps and self.evaluations_timesteps[-1] == self.num_timesteps:
            return
        n_calls = self.n_calls
        self.n_calls = 0
        try:
            self._on_step()
        finally:
            self.n_calls = n_calls

    def _on_step(self) -> bool:
        due = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        if not due:
            return True
        self.eval_env.seed(self.eval_seed)
        self._closest_so_far, self._closest_buffer, self._wrong_buffer = {}, [], []
        t0 = time.perf_counter()
        keep_going = super()._on_step()
        self.eval_seconds += time.perf_counter() - t0
        self._save_outcomes()
        return keep_going

    def _log_success_callback(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        super()._log_success_callback(locals_, globals_)
        info, i = locals_["info"], int(locals_["i"])
        if "distance" in info:
            self._closest_so_far[i] = min(self._closest_so_far.get(i, np.inf), float(info["distance"]))
        if locals_["done"]:
            if i in self._closest_so_far:
                self._closest_buffer.append(self._closest_so_far.pop(i))
            if "wrong" in info:
                self._wrong_buffer.append(bool(info["wrong"]))

    def _save_outcomes(self) -> None:
        """Rewrites evaluations.npz (SB3 has just saved it) with ``closest`` and ``wrong`` added."""
        if self.log_path is None or not (self._closest_buffer or self._wrong_buffer):
            return
        extra: dict[str, Any] = {}
        for name, buffer, history in (
            ("closest", self._closest_buffer, self.evaluations_closest),
            ("wrong", self._wrong_buffer, self.evaluations_wrong),
        ):
            if buffer:
                history.append(buffer)
                extra[name] = np.asarray(history)
        if self.evaluations_successes:
            extra["successes"] = self.evaluations_successes
        np.savez(
            self.log_path,
            timesteps=self.evaluations_timesteps,
            results=self.evaluations_results,
            ep_lengths=self.evaluations_length,
            **extra,
        )


class LossGradients(BaseCallback):
    """PPO's two loss terms' gradients on the policy's image pathway, logged after every rollout.

    PPO trains one loss, policy term + ``vf_coef`` x value term (+ entropy), through the features
    extractor the actor and critic share. The value term regresses returns that are not normalised
    (Reach's are ~10-20 in std), so it can own the shared features. On the first ``n`` samples of
    each new rollout (a fixed slice: no random draw, so the run is the same with or without this
    callback), it logs the L2 norm of each term's gradient over the actor's extractor's trunk
    (``grad/policy_trunk``, ``grad/value_trunk``: only while the trunk trains) and over its other
    trainable parameters (``grad/policy_head``, ``grad/value_head``: keypoints, the proprio MLP), and
    the value term's share ``v / (p + v)`` of each (``grad/value_share_trunk``, ``..._head``).
    ``last`` keeps the latest values.
    """

    def __init__(self, n: int = 128) -> None:
        super().__init__()
        self.n = int(n)
        self.last: dict[str, float] = {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model = self.model
        policy, buf = model.policy, model.rollout_buffer
        ext = policy.pi_features_extractor
        trunk = [p for p in getattr(ext, "cnn", torch.nn.Module()).parameters() if p.requires_grad]
        ids = {id(p) for p in trunk}
        head = [p for p in ext.parameters() if p.requires_grad and id(p) not in ids]
        steps = min(buf.buffer_size, max(1, self.n // buf.n_envs))  # a rollout may be shorter than n

        def first(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a[:steps].reshape(steps * buf.n_envs, *a.shape[2:]), device=policy.device)

        obs = (
            {k: first(v) for k, v in buf.observations.items()}
            if isinstance(buf.observations, dict)
            else first(buf.observations)
        )
        actions = first(buf.actions)
        values, log_prob, _ = policy.evaluate_actions(obs, actions.float())
        adv = first(buf.advantages).flatten()
        if model.normalize_advantage and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = torch.exp(log_prob - first(buf.log_probs).flatten())
        terms = {
            "policy": -(adv * ratio).mean(),
            "value": model.vf_coef * F.mse_loss(first(buf.returns).flatten(), values.flatten()),
        }
        for part, params in (("trunk", trunk), ("head", head)):
            if not params:
                continue
            norms = {}
            for name, loss in terms.items():
                grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                # None: this term does not reach these weights (the critic's own trunk, --no-share-trunk)
                norms[name] = sum(float(g.norm()) ** 2 for g in grads if g is not None) ** 0.5
            share = norms["value"] / max(norms["policy"] + norms["value"], 1e-12)
            for key, v in (*((f"{k}_{part}", n) for k, n in norms.items()), (f"value_share_{part}", share)):
                self.last[key] = v
                self.logger.record(f"grad/{key}", v)


class ProgressBar(BaseCallback):
    """A tqdm bar over env steps (SB3's own needs rich)."""

    def __init__(self, total: int, disable: bool = False) -> None:
        super().__init__()
        self.total, self.disable = total, disable
        self.bar: Any = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, unit="step", desc="train_rl", disable=self.disable, dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def eval_schedule(steps: int, eval_freq: int | None, eval_episodes: int | None) -> tuple[int, int]:
    """(env steps between evaluations, episodes per evaluation); both scale with ``steps``.

    Defaults: ten evaluations over the run, but none closer than 2000 steps (so a short run evaluates at
    its start and end only), and 20 held-out episodes, fewer for short runs (one per 1000 steps, at
    least 2): ``--steps 256`` is a smoke run of seconds, ``--steps 20000`` evaluates 10 x 20 episodes.
    """
    freq = eval_freq or max(steps // EVALS_PER_RUN, MIN_EVAL_EVERY)
    episodes = eval_episodes or min(MAX_EVAL_EPISODES, max(MIN_EVAL_EPISODES, steps // STEPS_PER_EVAL_EPISODE))
    return freq, episodes


__all__ = ["EVAL_SEED_OFFSET", "ProgressBar", "SeededEval", "eval_schedule"]
