"""Rollouts to mp4 / gif: what a person would rather watch than read.

Each video frame shows the observation camera (what the policy saw when it chose
its action, with the action drawn on it) beside the env's ``render()`` view after
the step, over a caption strip with the action, the outcome and, for ego-motion,
the motor signal; pokes get a live force plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
from tqdm import tqdm

Policy = Callable[[dict, dict], Any]
CAPTION_LINES = 4
GREEN, RED, YELLOW, WHITE = (40, 220, 40), (230, 50, 50), (250, 220, 40), (255, 255, 255)


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write (H, W, 3) uint8 frames to ``path`` (.mp4 via ffmpeg, or .gif)."""
    path = Path(path)
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    if path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"video path {path}; expected a .mp4 or .gif file name")
    if fps <= 0:
        raise ValueError(f"fps={fps}; expected a positive number of frames per second")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        # macro_block_size=1: sizes that are not multiples of 16 are kept, not rescaled
        imageio.mimsave(path, frames, fps=fps, codec="libx264", quality=7, macro_block_size=1)
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    if isinstance(v, np.ndarray) and v.size <= 4:
        return "[" + " ".join(_fmt(x) for x in v.ravel()) + "]"
    return str(v)


def _force_plot(profile: np.ndarray, width: int, height: int) -> np.ndarray:
    """A small (height, width, 3) plot of a force profile (newtons against sample)."""
    img = np.full((height, width, 3), 30, np.uint8)
    f = np.asarray(profile, dtype=np.float64)
    if f.size >= 2 and np.all(np.isfinite(f)):
        top = max(float(f.max()), 1e-6)
        xs = np.linspace(4, width - 5, f.size)
        ys = height - 6 - (f / top) * (height - 20)
        cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, YELLOW, 2, cv2.LINE_AA)
        cv2.putText(img, f"force, peak {top:.1f} N", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, WHITE, 1, cv2.LINE_AA)
    return img


def annotate(obs: dict[str, np.ndarray], action: Any, info: dict[str, Any], view: np.ndarray | None) -> np.ndarray:
    """One video frame: observation (+ drawn action) | render view, over a caption strip."""
    height = view.shape[0] if view is not None else 256
    rgb = obs["rgb"]
    scale = height / rgb.shape[0]
    panel = cv2.resize(rgb, (round(rgb.shape[1] * scale), height), interpolation=cv2.INTER_NEAREST)
    panel = np.ascontiguousarray(panel)
    ok = bool(info.get("success", False))
    color = GREEN if ok else RED

    def px(p: Any) -> tuple[int, int]:
        return int(round((float(p[0]) + 0.5) * scale)), int(round((float(p[1]) + 0.5) * scale))

    lines = [f"action {_fmt(np.asarray(action))}"]
    if "pixel" in info and "angle" in info:  # grasp: point and gripper closing direction
        c = px(info["pixel"])
        d = 0.06 * height
        dx, dy = d * math.cos(float(info["angle"])), d * math.sin(float(info["angle"]))
        cv2.line(panel, (int(c[0] - dx), int(c[1] - dy)), (int(c[0] + dx), int(c[1] + dy)), color, 2, cv2.LINE_AA)
        cv2.circle(panel, c, 4, color, -1, cv2.LINE_AA)
        lines.append(f"grasp {'SUCCESS' if ok else 'fail'}  lift {_fmt(info.get('lift_height', 0.0))} m")
    if "start_pixel" in info and "end_pixel" in info:  # push arrow
        cv2.arrowedLine(panel, px(info["start_pixel"]), px(info["end_pixel"]), YELLOW, 2, cv2.LINE_AA, tipLength=0.2)
        disp = np.asarray(info.get("object_displacement", np.zeros(3)))
        lines.append(f"object moved {np.linalg.norm(disp[:2]):.3f} m, turned {_fmt(info.get('object_rotation', 0.0))}")
    if "poke_pixel" in info:
        cv2.circle(panel, px(info["poke_pixel"]), 5, YELLOW, 2, cv2.LINE_AA)
        lines.append(
            f"poke {info.get('category', '')}: peak {_fmt(info.get('peak_force', 0.0))} N, "
            f"fit {_fmt(np.asarray(info.get('fit', [])))}"
        )
    if "motor" in obs:
        m = obs["motor"]
        lines.append(
            f"odometry fwd {m[0]:+.2f} m  side {m[1]:+.2f} m  yaw {math.degrees(m[2]):+.1f} deg  "
            f"pitch {math.degrees(m[3]):+.1f} deg"
        )
    if "scene_class" in info:
        lines.append(f"scene {info['scene_class']}")
    if "view_index" in info:
        lines.append(f"view {info['view_index']} of {info.get('instance', '')} ({info.get('category', '')})")
    top = np.concatenate([panel, view], axis=1) if view is not None else panel
    strip_h = 16 * CAPTION_LINES + 8  # fixed: every frame of a video has the same size
    lines = lines[:CAPTION_LINES]
    strip = np.full((strip_h, top.shape[1], 3), 20, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(strip, text, (6, 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, WHITE, 1, cv2.LINE_AA)
    frame = np.concatenate([top, strip], axis=0)
    if "force_profile" in info:
        plot = _force_plot(info["force_profile"], top.shape[1] // 3, min(90, height // 3))
        frame[: plot.shape[0], panel.shape[1] - plot.shape[1] : panel.shape[1]] = plot  # top right of the obs
    return frame


def rollout(
    env: gym.Env,
    policy: Policy | None,
    steps: int | None = None,
    seed: int = 0,
    episodes: int | None = None,
    progress: bool = True,
) -> list[np.ndarray]:
    """Annotated frames of ``policy`` (random actions when None) acting in ``env``.

    Runs ``episodes`` whole episodes, or ``steps`` steps (resetting at episode ends).
    The env must have ``render_mode="rgb_array"``; every frame has the same size.
    """
    if env.render_mode != "rgb_array":
        raise ValueError(f"render_mode={env.render_mode!r}; rollout videos need render_mode='rgb_array'")
    if (steps is None) == (episodes is None):
        raise ValueError("give exactly one of steps= or episodes=")
    env.action_space.seed(seed)
    if policy is not None and hasattr(policy, "reset"):
        policy.reset(seed)
    obs, info = env.reset(seed=seed)
    frames = [annotate(obs, np.zeros(0), info, env.render())]
    done_episodes, t = 0, 0
    bar = tqdm(total=steps or episodes, desc="rollout", unit="step" if steps else "ep", disable=not progress)
    while (steps is not None and t < steps) or (episodes is not None and done_episodes < episodes):
        action = env.action_space.sample() if policy is None else policy(obs, info)
        next_obs, _, term, trunc, info = env.step(action)
        frames.append(annotate(obs, action, info, env.render()))
        obs = next_obs
        t += 1
        if steps is not None:
            bar.update()
        if term or trunc:
            done_episodes += 1
            if episodes is not None:
                bar.update()
            if (steps is not None and t < steps) or (episodes is not None and done_episodes < episodes):
                obs, info = env.reset()
                frames.append(annotate(obs, np.zeros(0), info, env.render()))
    bar.close()
    return frames
