"""A test env whose process dies on seed 2 (as a segfaulting simulator would)."""

import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CrashingEnv(gym.Env):
    observation_space = spaces.Dict({"rgb": spaces.Box(0, 255, (4, 4, 3), np.uint8)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed == 2:
            os._exit(11)
        return {"rgb": np.zeros((4, 4, 3), np.uint8)}, {}

    def step(self, action):
        return {"rgb": np.zeros((4, 4, 3), np.uint8)}, 0.0, True, False, {}
