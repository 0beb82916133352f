"""Physics sanity of the tabletop envs: grasps hold, pushes push, pokes feel hardness, blow-ups are caught."""

import math

import numpy as np
import pybullet as p
import pytest

from embodied.collect.tabletop_policies import InformedPolicy, UniformPolicy
from embodied.envs.grasp import GraspEnv
from embodied.envs.poke import PokeEnv
from embodied.envs.push import PushEnv


def _box_grasp(env, info):
    """Grasp at the top face's centre with the fingers closing across the box's narrow side."""
    spec = env.scene.placed[0].spec
    yaw = p.getEulerFromQuaternion(info["poses"][0, 3:])[2]
    closing = yaw if spec.extents[0] < spec.extents[1] else yaw + math.pi / 2  # world yaw of the closing axis
    angle_bin = round(math.degrees(closing - math.pi / 2) / 10.0) % 18  # inverse of grasp.gripper_yaw
    u, v = np.round(info["object_pixels"][0]).astype(int)
    return np.array([u, v, angle_bin])


def test_informed_grasp_on_a_box_lifts_it_in_most_trials():
    env = GraspEnv(categories=["box"], n_objects=1)
    wins = 0
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        action = _box_grasp(env, info)
        obs, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated and not info["invalid"]
        assert info["success"] == (reward == 1.0)
        if info["success"]:
            assert info["lift_height"] > env.success_height
            assert info["category"] == "box" and info["instance"] >= 0
            assert obs["grasp"][4] == 1.0
        wins += info["success"]
    env.close()
    assert wins >= 8, f"only {wins}/10 box grasps held"


def test_grasps_by_the_informed_policy_often_succeed_and_random_ones_rarely():
    env = GraspEnv(categories=["box", "cup", "can"], n_objects=1)
    rates = []
    for cls in (InformedPolicy, UniformPolicy):
        policy, wins = cls(env.action_space), 0
        for seed in range(12):
            policy.reset(seed)
            obs, info = env.reset(seed=seed)
            wins += env.step(policy(obs, info))[1]
        rates.append(wins / 12)
    env.close()
    assert rates[0] >= 0.4 and rates[1] <= 0.25 and rates[0] > rates[1], f"informed, random: {rates}"


def test_push_moves_the_object_roughly_in_the_pushed_direction():
    env = PushEnv(categories=["box", "brick", "can", "cup"])
    policy = InformedPolicy(env.action_space)
    cosines = []
    for seed in range(8):
        policy.reset(seed)
        obs, info = env.reset(seed=seed)
        before = obs["rgb"].copy()
        obs, _, terminated, _, info = env.step(policy(obs, info))
        assert terminated and not info["invalid"]
        np.testing.assert_array_equal(info["rgb_before"], before)
        push = info["push_end"][:2] - info["push_start"][:2]
        assert np.linalg.norm(push) == pytest.approx(info["length"], rel=1e-6)
        if info["moved"] >= 0:
            d = info["object_displacement"][:2]
            cosines.append(float(d @ push / (np.linalg.norm(d) * np.linalg.norm(push))))
    env.close()
    assert len(cosines) >= 5, f"only {len(cosines)}/8 pushes through an object moved it"
    assert np.median(cosines) > 0.7, f"objects moved off the push direction: {np.round(cosines, 2)}"


def _peak_forces(category: str, trials: int = 3) -> list[float]:
    env = PokeEnv(categories=[category])
    policy = InformedPolicy(env.action_space)  # pokes a pixel of the object's mask
    peaks = []
    for seed in range(trials):
        policy.reset(seed)
        obs, info = env.reset(seed=seed)
        obs, _, _, _, info = env.step(policy(obs, info))
        assert info["category"] == category, "the poke should land on the object"
        assert obs["force"].shape == (env.samples,) and obs["force"].dtype == np.float32
        np.testing.assert_array_equal(obs["force"], info["force_profile"])
        peaks.append(info["peak_force"])
    env.close()
    return peaks


def test_poke_on_a_hard_object_peaks_higher_than_on_a_soft_one():
    hard = _peak_forces("brick")
    soft = _peak_forces("teddy")
    assert min(hard) > 2.0 * max(soft), f"hard {np.round(hard, 1)} vs soft {np.round(soft, 1)}"


def test_a_blow_up_ends_the_episode_as_invalid_and_the_next_reset_recovers():
    env = GraspEnv(n_objects=2)
    obs0, info = env.reset(seed=7)
    body = env.scene.placed[0].body
    env.sim.p.resetBaseVelocity(body, (300.0, 0.0, 200.0), (50.0, 0.0, 0.0))  # fling it
    obs, reward, terminated, truncated, info = env.step((10, 10, 0))
    assert info["invalid"] and terminated and reward == 0.0 and not info["success"]
    assert env.observation_space.contains(obs)
    assert not obs["rgb"].any() and np.all(np.isfinite(obs["grasp"]))
    with pytest.raises(RuntimeError, match="reset"):
        env.step((10, 10, 0))
    # after the blow-up the world is rebuilt: the same seed gives the same scene as a fresh env
    obs1, _ = env.reset(seed=7)
    np.testing.assert_array_equal(obs1["rgb"], obs0["rgb"])
    fresh = GraspEnv(n_objects=2)
    obs2, _ = fresh.reset(seed=7)
    np.testing.assert_array_equal(obs2["rgb"], obs0["rgb"])
    fresh.close()
    _, _, _, _, info = env.step((64, 64, 3))
    assert not info["invalid"]
    env.close()


def test_nan_poses_are_caught():
    env = PokeEnv()
    env.reset(seed=1)
    assert env.scene.valid()
    env.sim.p.resetBasePositionAndOrientation(env.scene.placed[0].body, (math.nan, 0.0, 0.1), (0, 0, 0, 1))
    assert not env.scene.valid()
    env.close()


def test_settled_scene_is_still_and_on_the_table():
    # the plain scenes: these seeds' draws settle within SETTLE_MAX_S (under randomize=True the
    # same seeds draw other scenes, and one of them still rolls after 1 s: settle() gives up then)
    env = GraspEnv(n_objects=3, randomize=False)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        assert env.scene.still() and env.scene.valid()
        n = info["n_objects"]
        assert 1 <= n <= 3 and np.all(info["instances"][n:] == -1)
        z = info["poses"][:n, 2]
        assert np.all(z > 0.0) and np.all(z < 0.25)
        # every object is seen in the observation and the mask matches its index
        assert set(np.unique(info["mask"])) - {-1} <= set(range(n))
    env.close()
