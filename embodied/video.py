"""Rollouts to mp4 / gif: what a person would rather watch than read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
from tqdm import tqdm

Policy = Callable[[dict, dict], Any]


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write (H, W, 3) uint8 frames to ``path`` (.mp4 via ffmpeg, or .gif)."""
    path = Path(path)
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    if path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"video path {path}; expected a .mp4 or .gif file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        # macro_block_size=1: sizes that are not multiples of 16 are kept, not rescaled
        imageio.mimsave(path, frames, fps=fps, codec="libx264", quality=7, macro_block_size=1)
    return path


def rollout(env: gym.Env, policy: Policy | None, steps: int, seed: int = 0, progress: bool = True) -> list[np.ndarray]:
    """Run ``policy`` (random actions when None) for ``steps`` steps and return ``env.render()`` frames.

    The env must have ``render_mode="rgb_array"``; episodes that end are reset and continue.
    """
    if env.render_mode != "rgb_array":
        raise ValueError(f"render_mode={env.render_mode!r}; rollout videos need render_mode='rgb_array'")
    env.action_space.seed(seed)
    if policy is not None and hasattr(policy, "reset"):
        policy.reset(seed)
    obs, info = env.reset(seed=seed)
    frames = [env.render()]
    for _ in tqdm(range(steps), desc="rollout", unit="step", disable=not progress):
        action = env.action_space.sample() if policy is None else policy(obs, info)
        obs, _, term, trunc, info = env.step(action)
        frames.append(env.render())
        if term or trunc:
            obs, info = env.reset()
            frames.append(env.render())
    return frames
