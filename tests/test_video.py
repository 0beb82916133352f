import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from embodied.envs import make
from embodied.video import annotate, rollout, write_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env_name, steps", [("ego_room", 5), ("poke", 3)])
def test_render_cli_writes_a_playable_video(tmp_path, env_name, steps):
    out = tmp_path / f"{env_name}.mp4"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "render.py"),
            "--env",
            env_name,
            "--steps",
            str(steps),
            "--size",
            "96",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    reader = imageio.get_reader(out)
    env = make(env_name, render_mode="rgb_array", render_size=96)
    episodes_end = env.spec.max_episode_steps == 1
    env.close()
    # one frame after reset, one per step, and one more after each reset that an episode end triggered
    expected = 1 + steps + (steps - 1 if episodes_end else 0)
    assert reader.count_frames() == expected
    frame = reader.get_data(0)
    assert frame.shape[0] > 96 and frame.shape[1] >= 2 * 96 and frame.dtype == np.uint8
    assert frame.std() > 5


def test_gif_and_episode_count(tmp_path):
    env = make("grasp", render_mode="rgb_array", render_size=64)
    frames = rollout(env, None, episodes=2, seed=1, progress=False)
    env.close()
    assert len(frames) == 4  # reset, attempt, reset, attempt
    path = write_video(frames, tmp_path / "g.gif", fps=4)
    assert imageio.mimread(path)[0].shape[:2] == frames[0].shape[:2]


def test_annotation_keeps_every_frame_the_same_size():
    view = np.zeros((64, 64, 3), np.uint8)
    obs = {"rgb": np.zeros((32, 32, 3), np.uint8), "motor": np.zeros(4, np.float32)}
    a = annotate(obs, np.zeros(0), {}, view)
    b = annotate(
        obs,
        np.array([1]),
        {
            "scene_class": "kitchen",
            "view_index": 3,
            "pixel": [3, 4],
            "angle": 0.5,
            "poke_pixel": [1, 2],
            "force_profile": np.arange(8.0),
        },
        view,
    )
    assert a.shape == b.shape


def test_bad_video_arguments(tmp_path):
    with pytest.raises(ValueError, match="expected a .mp4 or .gif"):
        write_video([np.zeros((8, 8, 3), np.uint8)], tmp_path / "x.avi")
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "x.mp4")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render.py"), "--env", "moon", "--out", str(tmp_path / "m.mp4")],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "moon" in out.stderr and "Traceback" not in out.stderr
