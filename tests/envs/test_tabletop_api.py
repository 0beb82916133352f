"""Spaces, input validation, pixel <-> world mapping, tactile fit and policies of the tabletop envs."""

import math

import gymnasium as gym
import numpy as np
import pytest

import embodied  # noqa: F401  (registers the ids)
from embodied.collect.tabletop_policies import InformedPolicy, UniformPolicy
from embodied.envs.grasp import GraspEnv, gripper_yaw
from embodied.envs.look import LookEnv
from embodied.envs.poke import PokeEnv
from embodied.envs.push import PushEnv
from embodied.sim import BulletSim
from embodied.sim import objects as O
from embodied.sim.arm import TIP_LINKS, KukaArm
from embodied.sim.tactile import line_fit


@pytest.fixture(scope="module")
def grasp_env():
    env = GraspEnv(size=64)
    yield env
    env.close()


def test_spaces_of_the_registered_ids():
    spaces = {
        "embodied/Grasp-v0": (gym.spaces.MultiDiscrete, {"rgb", "grasp"}),
        "embodied/Push-v0": (gym.spaces.Box, {"rgb", "push"}),
        "embodied/Poke-v0": (gym.spaces.MultiDiscrete, {"rgb", "force", "force_fit"}),
        "embodied/Look-v0": (gym.spaces.Discrete, {"rgb", "view"}),
    }
    for env_id, (action_type, keys) in spaces.items():
        env = gym.make(env_id)
        assert isinstance(env.action_space, action_type)
        assert set(env.observation_space.spaces) == keys
        assert env.observation_space["rgb"].shape == (128, 128, 3)
        env.close()
    env = gym.make("embodied/Grasp-v0")
    assert env.action_space.nvec.tolist() == [128, 128, 18]
    env.close()


@pytest.mark.parametrize(
    "action, match",
    [
        ((64, 0, 0), r"u=64"),
        ((-1, 5, 0), r"u=-1"),
        ((5, 70, 0), r"v=70"),
        ((5, 5, 18), r"angle_bin=18"),
        ((5, 5, -1), r"angle_bin=-1"),
        ((math.nan, 5, 1), r"NaN"),
        ((5, 5), r"expected \(u, v, angle_bin\)"),
        ((5.5, 5, 1), r"u=5.5"),
    ],
)
def test_grasp_rejects_bad_actions_with_one_clear_line(grasp_env, action, match):
    grasp_env.reset(seed=0)
    with pytest.raises(ValueError, match=match) as err:
        grasp_env.step(action)
    assert "\n" not in str(err.value)


def test_push_poke_look_reject_bad_actions():
    push = PushEnv(size=64)
    push.reset(seed=0)
    with pytest.raises(ValueError, match=r"u=1.5 .*\[-1, 1\]"):
        push.step(np.array([1.5, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        push.step(np.array([0, 0, math.nan, 0], np.float32))
    push.close()
    poke = PokeEnv(size=64)
    poke.reset(seed=0)
    with pytest.raises(ValueError, match=r"v=64.*\[0, 64\)"):
        poke.step((3, 64))
    poke.close()
    look = LookEnv(size=64)
    look.reset(seed=0)
    with pytest.raises(ValueError, match=r"action=8"):
        look.step(8)
    look.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": -3}, "size=-3"),
        ({"split": "test"}, "split='test'"),
        ({"categories": ["spaceship"]}, "spaceship"),
        ({"n_objects": 0}, "n_objects=0"),
        ({"n_objects": [3, 1]}, r"n_objects=\[3, 1\]"),
        ({"render_mode": "human"}, "render_mode='human'"),
        ({"attempts": 0}, "attempts=0"),
    ],
)
def test_constructor_validates_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GraspEnv(**kwargs)


def test_heldout_split_uses_heldout_instances():
    env = GraspEnv(size=64, split="heldout", n_objects=3)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        idx = info["instances"][: info["n_objects"]] % O.INSTANCES_PER_CATEGORY
        assert all(O.split_of(int(i)) == "heldout" for i in idx)
    env.close()


def test_pixel_world_round_trip():
    grasp_env = GraspEnv(size=64, randomize=False)  # the fixed head camera (random ones: test_randomize.py)
    scene = grasp_env.scene
    for u, v in ((0, 0), (63, 0), (10, 50), (32, 32)):
        point, _ = scene.pixel_to_world(u, v)
        np.testing.assert_allclose(scene.world_to_pixel(point), (u + 0.5, v + 0.5), atol=1e-6)
    # image u grows with world +y, image v with world +x (the camera faces the robot)
    a, _ = scene.pixel_to_world(10, 32)
    b, _ = scene.pixel_to_world(50, 32)
    c, _ = scene.pixel_to_world(32, 50)
    assert b[1] > a[1] and c[0] > a[0]
    grasp_env.close()


def test_arm_ik_reaches_targets_and_yaw_turns_the_fingers():
    sim = BulletSim()
    arm = KukaArm(sim)
    for target, yaw in (((0.55, 0.1, 0.05), 0.0), ((0.45, -0.15, 0.2), 1.0), ((0.68, 0.12, 0.03), -1.3)):
        arm.teleport(target, yaw)
        np.testing.assert_allclose(arm.tcp(), target, atol=3e-3)
        a, b = (np.asarray(sim.p.getLinkState(arm.body, link)[4]) for link in TIP_LINKS)
        axis = math.atan2(*(a - b)[1::-1])
        assert math.isclose((axis - yaw + math.pi / 2) % math.pi - math.pi / 2, 0.0, abs_tol=1e-3)
    sim.close()


def test_grasp_angle_bins_map_to_image_directions():
    # bin 0 closes along image rows = world y; bin 9 along columns = world x
    assert math.isclose(abs(math.sin(gripper_yaw(0.0))), 1.0, abs_tol=1e-9)
    assert math.isclose(abs(math.cos(gripper_yaw(math.pi / 2))), 1.0, abs_tol=1e-9)
    for k in range(18):
        assert -math.pi / 2 <= gripper_yaw(k * math.pi / 18) < math.pi / 2


def test_line_fit_recovers_a_line():
    t = np.arange(20) * 0.01
    slope, intercept = line_fit(3.0 + 250.0 * t, 0.01)
    assert slope == pytest.approx(250.0, rel=1e-4) and intercept == pytest.approx(3.0, abs=1e-3)
    with pytest.raises(ValueError):
        line_fit(np.zeros(1), 0.01)


def test_look_gives_k_views_of_one_object_with_relative_poses():
    env = LookEnv(size=64, views=4)
    policy = InformedPolicy(env.action_space)
    policy.reset(0)
    obs, info = env.reset(seed=2)
    np.testing.assert_allclose(info["relative_pose"], np.eye(4), atol=1e-9)
    seen, instance, terminated, steps = {0}, info["instance"], False, 0
    while not terminated:
        action = policy(obs, info)
        obs, _, terminated, _, info = env.step(action)
        steps += 1
        seen.add(action)
        assert info["instance"] == instance and info["view_index"] == steps
        assert (info["mask"] == 0).sum() > 20, "the object must be in view"
        assert obs["view"][0] == pytest.approx(2 * math.pi * action / 4)
    assert steps == 3 and seen == {0, 1, 2, 3}
    env.close()


@pytest.mark.parametrize("env_cls", [GraspEnv, PushEnv, PokeEnv, LookEnv])
def test_policies_are_seeded_and_stay_in_the_action_space(env_cls):
    env = env_cls(size=64)
    obs, info = env.reset(seed=3)
    for cls in (UniformPolicy, InformedPolicy):
        a, b = cls(env.action_space), cls(env.action_space)
        a.reset(11)
        b.reset(11)
        for _ in range(3):
            x, y = a(obs, info), b(obs, info)
            np.testing.assert_array_equal(x, y)
            space = env.action_space
            assert space.contains(np.asarray(x, dtype=space.dtype).reshape(space.shape))
    env.close()
