"""The held-out evaluation's closest approach and wrong touches, on a scripted env whose values are known."""

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from embodied.rl.callbacks import SeededEval
from embodied.rl.results import read_evaluations


class Scripted(gym.Env):
    """Episode k (counted from the last seeded reset) lasts 3 steps at distances 0.5, 0.1 (k + 1), 0.4 m
    and ends with ``wrong`` for odd k; ``success`` for even k."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, report_wrong: bool = True) -> None:
        self.report_wrong, self.episode, self.t = report_wrong, -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode = 0 if seed is not None else self.episode + 1
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        distance = [0.5, 0.1 * (self.episode + 1), 0.4][self.t - 1]
        info = {"distance": distance, "is_success": done and self.episode % 2 == 0}
        if self.report_wrong:
            info["wrong"] = done and self.episode % 2 == 1
        return np.zeros(1, np.float32), 0.0, done, False, info


def evaluate_twice(tmp_path, report_wrong: bool) -> dict[str, np.ndarray]:
    env = make_vec_env(lambda: Scripted(report_wrong), n_envs=1)
    evaluator = SeededEval(env, n_eval_episodes=4, eval_freq=1, log_path=str(tmp_path / "eval"), eval_seed=7, verbose=0)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, device="cpu")
    model.set_logger(configure(None, []))
    evaluator.init_callback(model)
    evaluator.evaluate_now()
    evaluator.num_timesteps = 5  # a later evaluation replays the same seeded episodes
    evaluator.evaluate_now()
    return dict(np.load(tmp_path / "eval" / "evaluations.npz"))


def test_closest_approach_and_wrong_touches_per_episode(tmp_path):
    data = evaluate_twice(tmp_path, report_wrong=True)
    np.testing.assert_allclose(data["closest"], [[0.1, 0.2, 0.3, 0.4]] * 2)  # min over each episode's steps
    np.testing.assert_array_equal(data["wrong"], [[False, True, False, True]] * 2)
    np.testing.assert_array_equal(data["successes"], [[True, False, True, False]] * 2)
    ev = read_evaluations(tmp_path)
    np.testing.assert_allclose(ev["closest"], [0.25, 0.25])
    np.testing.assert_allclose(ev["wrong"], [0.5, 0.5])
    np.testing.assert_allclose(ev["success"], [0.5, 0.5])


def test_an_env_without_wrong_touches_reports_none(tmp_path):
    data = evaluate_twice(tmp_path, report_wrong=False)
    assert "wrong" not in data and data["closest"].shape == (2, 4)
    assert np.isnan(read_evaluations(tmp_path)["wrong"]).all()
