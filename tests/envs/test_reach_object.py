"""embodied/ReachObject-v0: touch the object of the goal category among distractors (and a PPO smoke run)."""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from embodied.envs import make, resolve
from embodied.envs.reach_object import DEFAULT_CATEGORIES, ReachObjectEnv, ReachObjectOracle
from embodied.sim import objects


@pytest.fixture(scope="module")
def env():
    e = ReachObjectEnv()
    yield e
    e.close()


def run_oracle(env, seed, oracle=None, retarget=None):
    """One episode of the oracle (towards object ``retarget`` instead of the goal, if given); the last info."""
    oracle = oracle or ReachObjectOracle.for_env(env)
    obs, info = env.reset(seed=seed)
    for _ in range(50):
        seen = info if retarget is None else {**info, "target": info["objects"][retarget], "target_slot": retarget}
        obs, reward, term, trunc, info = env.step(oracle(obs, seen))
        if term or trunc:
            break
    return info, reward, term


def test_preset_registers_reach_object():
    preset = resolve("reach_object")
    assert preset.id == "embodied/ReachObject-v0"
    e = make("reach_object")
    assert e.spec.max_episode_steps == 50
    assert e.observation_space["rgb"].shape == (64, 64, 3)
    assert e.observation_space["goal"].shape == (len(DEFAULT_CATEGORIES),)
    e.close()


@pytest.mark.parametrize("goal_image", [False, True])
def test_checkers_pass(goal_image):
    e = gym.make("embodied/ReachObject-v0", render_mode="rgb_array", goal_image=goal_image)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        check_env(e.unwrapped, skip_render_check=False)
        sb3_check_env(e.unwrapped, warn=True)
    e.close()


def test_same_seed_same_observations(env):
    first, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    again, _ = env.reset(seed=7)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["rgb"], other["rgb"])
    a = np.array([0.5, -0.25], np.float32)
    step1 = env.step(a)[0]
    env.reset(seed=7)
    step2 = env.step(a)[0]
    np.testing.assert_array_equal(step1["rgb"], step2["rgb"])


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_oracle_succeeds(split):
    e = ReachObjectEnv(split=split)
    results = [run_oracle(e, seed) for seed in range(10)]
    success = np.mean([info["success"] for info, _, _ in results])
    assert success >= 0.9, f"oracle success {success} on {split}"
    assert all(r > 0 for (info, r, term) in results if info["success"])  # the bonus on the touching step
    e.close()


def test_touching_a_wrong_object_is_not_a_success(env):
    for seed in range(3):
        _, info = env.reset(seed=seed)
        wrong = (info["target_slot"] + 1) % env.n_objects
        info, reward, term = run_oracle(env, seed, retarget=wrong)
        assert term and info["wrong"] and not info["success"]
        assert reward < 0  # the penalty outweighs the last step's progress
        assert info["category_ids"][wrong] != info["target_category_id"]


def test_scene_goal_and_observation_agree(env):
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        assert len(set(info["category_ids"].tolist())) == env.n_objects  # distinct categories
        names = [objects.CATEGORIES[c] for c in info["category_ids"]]
        assert set(names) <= set(DEFAULT_CATEGORIES)
        assert obs["goal"].sum() == 1 and int(np.argmax(obs["goal"])) == info["goal"]
        assert DEFAULT_CATEGORIES[info["goal"]] == info["target_category"] == names[info["target_slot"]]
        assert [DEFAULT_CATEGORIES[i] for i in info["category_index"]] == names
        assert info["category_index"][info["target_slot"]] == info["goal"]
        d = np.linalg.norm(info["objects"] - info["fingertip"], axis=1)
        assert d.min() > env.touch_radius and not info["success"] and not info["wrong"]
        sep = np.linalg.norm(info["objects"][:, None] - info["objects"][None], axis=2)
        assert sep[~np.eye(env.n_objects, dtype=bool)].min() >= 0.12 - 1e-6
    # the goal is not tied to a place: over seeds it is every slot and lies all over the table
    slots = {env.reset(seed=s)[1]["target_slot"] for s in range(20)}
    assert slots == set(range(env.n_objects))


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_split_draws_only_its_instances(split):
    e = ReachObjectEnv(split=split)
    allowed = {s.uid for s in objects.instances(split)}
    for seed in range(5):
        _, info = e.reset(seed=seed)
        assert set(info["instances"].tolist()) <= allowed
    e.close()


def test_reward_is_progress_plus_bonus(env):
    obs, info = env.reset(seed=4)
    d0 = info["distance"]
    oracle = ReachObjectOracle.for_env(env)
    total = 0.0
    for _ in range(50):
        obs, reward, term, _, info = env.step(oracle(obs, info))
        total += reward
        if term:
            break
    assert info["success"]
    assert total == pytest.approx(env.distance_weight * (d0 - info["distance"]) + env.success_bonus)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0},
        {"split": "test"},
        {"step_size": -1.0},
        {"touch_radius": 0.2},
        {"categories": ["spoon"]},
        {"categories": ["ball"]},
        {"n_objects": 5},
        {"n_objects": 1},
        {"wrong_penalty": float("nan")},
        {"render_mode": "human"},
        {"category_colours": "yes"},
        {"goal_image": 1},
        {"camera_elevation": 30.0},
        {"camera_elevation": 91.0},
        {"camera_elevation": "low"},
    ],
)
def test_bad_arguments_are_value_errors(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"^{name}=") as e:  # one line naming the bad value
        ReachObjectEnv(**kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad", [np.array([np.nan, 0.0]), np.array([2.0, 0.0]), np.zeros(3), "left"])
def test_bad_actions_are_value_errors(env, bad):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action="):
        env.step(bad)


def test_category_colours_paint_each_object_in_its_categorys_colour():
    """The diagnostic variant: every object pixel is its category's flat colour; the scene is the same."""
    from embodied.envs.reach_object import CATEGORY_RGB

    plain, painted = ReachObjectEnv(), ReachObjectEnv(category_colours=True)
    for seed in range(3):
        a, info = plain.reset(seed=seed)
        b, info_b = painted.reset(seed=seed)
        assert (info["instances"] == info_b["instances"]).all()
        seg = painted.camera.render(painted.sim, painted.view, seg=True).seg
        for i, spec in enumerate(painted.specs):
            mask = seg == painted.sim.bodies[f"object{i}"]
            assert mask.any() and (b["rgb"][mask] == CATEGORY_RGB[painted.categories.index(spec.category)]).all()
        others = ~np.isin(seg, [painted.sim.bodies[f"object{i}"] for i in range(painted.n_objects)])
        assert (a["rgb"][others] == b["rgb"][others]).all()  # table and fingertip untouched
    with pytest.raises(ValueError, match="true for at most 6 categories"):
        ReachObjectEnv(category_colours=True, categories=list(objects.CATEGORIES)[:7], n_objects=2)
    plain.close()
    painted.close()


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_goal_image_shows_another_instance_of_the_goal_category_alone(split):
    """The exemplar: the goal's category, not the goal's instance, of the same split, centred, without
    the fingertip, fixed for the episode; the scene is that of the env without it."""
    from embodied.envs.reach import TABLE_RGB

    plain, named = ReachObjectEnv(split=split), ReachObjectEnv(split=split, goal_image=True)
    assert named.observation_space["goal_rgb"].shape == (64, 64, 3)
    uids = {s.uid: s for s in objects.instances(split)}
    for seed in range(6):
        a, info_a = plain.reset(seed=seed)
        b, info = named.reset(seed=seed)
        assert (a["rgb"] == b["rgb"]).all() and info["target_instance"] == info_a["target_instance"]
        exemplar = uids[info["exemplar_instance"]]  # a KeyError would mean another split
        assert exemplar.uid != info["target_instance"] and exemplar.category == info["target_category"]
        ys, xs = np.nonzero((b["goal_rgb"] != TABLE_RGB).any(-1))
        assert len(ys) > 0 and abs(ys.mean() - 31.5) < 6 and abs(xs.mean() - 31.5) < 6  # one object, centred
        red = (b["goal_rgb"][..., 0] > 200) & (b["goal_rgb"][..., 1] < 60) & (b["goal_rgb"][..., 2] < 60)
        assert not red.any()  # no fingertip
        for _ in range(5):
            obs, *_, step_info = named.step(named.action_space.sample())
            assert (obs["goal_rgb"] == b["goal_rgb"]).all() and step_info["exemplar_instance"] == exemplar.uid
    again, _ = named.reset(seed=5)
    assert (again["goal_rgb"] == b["goal_rgb"]).all()  # a pure function of the seed
    plain.close()
    named.close()


@pytest.mark.parametrize("elevation", [45.0, 60.0])
def test_tilted_camera_sees_the_fingertip_everywhere_and_the_far_side_up(elevation):
    """A tilted camera keeps the whole workspace in view and world +x towards image up; the scene (and
    so the oracle's success) is the top-down env's, only the view differs."""
    from embodied.envs.reach import FINGER_RANGE

    top, tilted = ReachObjectEnv(), ReachObjectEnv(camera_elevation=elevation, goal_image=True)
    a, info_a = top.reset(seed=3)
    b, info_b = tilted.reset(seed=3)
    assert np.array_equal(info_a["objects"], info_b["objects"]) and not np.array_equal(a["rgb"], b["rgb"])
    rows = {}
    for fx in (-FINGER_RANGE, FINGER_RANGE):
        for fy in (-FINGER_RANGE, FINGER_RANGE):
            tilted.finger_xy = np.array([fx, fy])
            tilted._place_finger()
            seen = tilted.camera.render(tilted.sim, tilted.view, seg=True).seg == tilted.finger
            assert seen.sum() >= 4, (fx, fy)  # visible, not clipped away
            rows[fx] = np.nonzero(seen)[0].mean()
    assert rows[FINGER_RANGE] < rows[-FINGER_RANGE] - 16  # the far side (+x) is up
    top.close()
    assert np.mean([run_oracle(tilted, seed)[0]["success"] for seed in range(10)]) >= 0.9
    tilted.close()


def test_render_frame():
    e = gym.make("embodied/ReachObject-v0", render_mode="rgb_array", render_size=96)
    e.reset(seed=0)
    frame = e.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    e.close()


@pytest.mark.parametrize("name", ["reach_object_ppo", "reach_object_exemplar_ppo", "reach_object_glimpse_ppo"])
def test_ppo_smoke_run(tmp_path, name):
    """PPO on the new task through the RL runner with the comparison's presets (gated keypoints, cached
    frozen trunk; the goal named by example; glimpses), cut short, headless; the saved model reloads and acts."""
    from embodied.rl import RLConfig, load_preset, load_sb3_policy, train

    threads = torch.get_num_threads()
    preset = load_preset(name)
    assert preset["gate"] == "goal" and preset["features"] in ("keypoints", "glimpses")
    short = dict(steps=128, n_envs=2, vec="dummy", n_steps=32, batch_size=32, n_epochs=1, eval_episodes=2, threads=1)
    cfg = RLConfig(**{**preset, **short}, quiet=True, out=tmp_path / "run")
    try:
        summary = train(cfg)
    finally:
        torch.set_num_threads(threads)
    assert summary["steps"] >= 128 and summary["env_steps_per_s"] > 0
    assert 0.0 <= summary["final_success"] <= 1.0
    assert (tmp_path / "run" / "model.zip").stat().st_size > 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["env"] == "embodied/ReachObject-v0" and run["eval_timesteps"][-1] == summary["steps"]
    policy = load_sb3_policy(tmp_path / "run" / "model.zip")
    env = gym.make("embodied/ReachObject-v0", split="heldout", **preset["env_kwargs"])
    obs, info = env.reset(seed=3)
    action = policy(obs, info)
    assert action.shape == (2,) and env.action_space.contains(action.astype(np.float32))
    env.close()
