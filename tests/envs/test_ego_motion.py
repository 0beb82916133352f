import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest

from embodied.collect.explore import ExplorePolicy
from embodied.envs import make, resolve
from embodied.envs.ego_motion import DISCRETE_ACTIONS, MAX_VISIBLE, RIG_HEIGHT, RIG_RADIUS, EgoMotionEnv
from embodied.envs.scenes import OBJECT_SCALE, SCENE_CLASSES, SCENE_STYLES, build_scene
from embodied.sim import BulletSim, objects


@pytest.fixture
def env():
    e = EgoMotionEnv(motor_noise=0.0, motor_noise_floor=0.0)
    yield e
    e.close()


def test_presets_resolve_by_name_and_id():
    assert resolve("ego_room").id == "embodied/EgoMotion-v0"
    assert resolve("embodied/EgoMotionContinuous-v0").kwargs["action_mode"] == "continuous"
    env = make("ego_room", size=32)
    assert env.observation_space["rgb"].shape == (32, 32, 3)
    env.close()


def test_odometry_is_the_executed_motion(env):
    env.reset(seed=4)
    before = env.unwrapped._pose()
    obs, _, _, _, info = env.step(DISCRETE_ACTIONS.index("turn_left"))
    assert obs["motor"][2] == pytest.approx(math.radians(15), abs=1e-3)
    assert abs(obs["motor"][0]) < 1e-3
    turned = (info["pose"][2] - before[2] + math.pi) % (2 * math.pi) - math.pi
    assert turned == pytest.approx(obs["motor"][2], abs=1e-6)  # noise-free odometry is the pose change
    obs, _, _, _, info = env.step(DISCRETE_ACTIONS.index("look_up"))
    assert obs["motor"][3] == pytest.approx(math.radians(10), abs=1e-6)
    assert info["pose"][3] == pytest.approx(math.radians(10), abs=1e-6)


def test_forward_moves_forward_until_a_wall_stops_it(env):
    obs, info = env.reset(seed=1)
    start = info["pose"].copy()
    obs, _, _, _, info = env.step(0)
    if not info["collided"]:
        assert obs["motor"][0] == pytest.approx(0.2, abs=0.02)
    hx, hy = env.scene.half_size
    for _ in range(80):  # long enough to cross any room
        obs, _, _, _, info = env.step(0)
    x, y = info["pose"][:2]
    assert abs(x) < hx - 0.14 and abs(y) < hy - 0.14, "the rig went into or through a wall"
    assert info["collided"] and abs(obs["motor"][0]) < 0.05
    assert np.hypot(*(info["pose"][:2] - start[:2])) > 0.2
    # Turning on the spot away from the wall it touches is not a collision
    obs, _, _, _, info = env.step(DISCRETE_ACTIONS.index("turn_left"))
    assert not info["collided"]
    assert np.allclose(info["pose"][:2], [x, y], atol=1e-4)


def test_sliding_along_a_wall_a_hair_away_is_not_a_collision(env):
    """Bullet reports contacts up to 2 cm apart; only sinking into something blocks the rig."""
    look_up = DISCRETE_ACTIONS.index("look_up")
    for seed in range(20):
        env.reset(seed=seed)
        hx, _ = env.scene.half_size
        x, y, yaw = hx - RIG_RADIUS - 0.002, 0.0, math.pi / 2  # 2 mm from the +x wall, facing along it
        env.sim.p.resetBasePositionAndOrientation(
            env.rig, (x, y, RIG_HEIGHT / 2), (0, 0, math.sin(yaw / 2), math.cos(yaw / 2))
        )
        env._last_pose = (x, y, yaw, 0.0)
        if env.step(look_up)[4]["range"][1] > 1.0:
            break
    else:
        pytest.fail("no seed with 1 m free along the wall")
    obs, _, _, _, info = env.step(DISCRETE_ACTIONS.index("forward"))
    assert env.sim.p.getContactPoints(bodyA=env.rig), "expected a reported contact with the wall"
    assert not info["collided"]
    assert obs["motor"][0] == pytest.approx(0.2, abs=0.01)
    assert info["pose"][0] == pytest.approx(x, abs=1e-3)


def test_range_finder_sees_the_lowest_objects_and_not_the_floor(env):
    """A plate (the flattest category) ahead shortens the centre range; the floor never does."""
    look_up = DISCRETE_ACTIONS.index("look_up")  # senses again without moving
    rim = RIG_RADIUS + 0.01
    for seed in range(20):
        env.reset(seed=seed)
        clear = env.step(look_up)[4]["range"]
        if clear[1] > 1.5:
            break
    assert clear[1] > 1.5, "no seed with 1.5 m free ahead"
    plate = objects.instances("train", categories=["plate"])[0]
    ex, _, ez = (e * OBJECT_SCALE for e in plate.extents)
    x, y, yaw, _ = env.unwrapped._pose()
    d = 1.0  # m from the rig's centre to the plate's centre
    ahead = (x + d * math.cos(yaw), y + d * math.sin(yaw), ez / 2)
    objects.spawn(env.sim, plate, ahead, static=True, scale=OBJECT_SCALE)
    ranges = env.step(look_up)[4]["range"]
    assert d - ex / 2 - rim - 0.02 < ranges[1] < d - rim, (ranges, ex)
    np.testing.assert_array_equal(ranges[[0, 2]], clear[[0, 2]])


def test_motor_noise_is_configurable_and_seeded():
    noisy = EgoMotionEnv(motor_noise=0.2, motor_noise_floor=0.01)
    noisy.reset(seed=2)
    a = noisy.step(0)[0]["motor"]
    noisy.reset(seed=2)
    b = noisy.step(0)[0]["motor"]
    np.testing.assert_array_equal(a, b)
    clean = EgoMotionEnv(motor_noise=0.0, motor_noise_floor=0.0)
    clean.reset(seed=2)
    c = clean.step(0)[0]["motor"]
    assert not np.array_equal(a, c) and abs(a[0] - c[0]) < 0.2
    noisy.close()
    clean.close()


def test_every_scene_class_builds_and_looks_different():
    env = EgoMotionEnv()
    means = []
    for cls in SCENE_CLASSES:
        obs, info = env.reset(seed=0, options={"scene_class": cls})
        assert info["scene_class"] == cls and info["scene_class_id"] == SCENE_CLASSES.index(cls)
        means.append(obs["rgb"].reshape(-1, 3).mean(0))
    assert len({tuple(np.round(m)) for m in means}) == len(SCENE_CLASSES)
    env.close()


def test_rooms_hold_every_category_their_style_names_and_no_other():
    sim = BulletSim()
    for name, style in SCENE_STYLES.items():
        seen: set[str] = set()
        for seed in range(6):
            sim.reset_world()
            seen |= {category for _, category in build_scene(sim, seed, name).object_bodies.values()}
        assert seen == set(style.categories), name
    sim.close()


def test_a_scene_style_with_a_category_the_library_lacks_is_an_error():
    with pytest.raises(ValueError, match=r"names \['lego'\], not in the object library"):
        dataclasses.replace(SCENE_STYLES["playroom"], categories=("ball", "lego"))
    with pytest.raises(ValueError, match="non-empty subset"):
        dataclasses.replace(SCENE_STYLES["playroom"], categories=())


def test_info_names_visible_objects():
    env = EgoMotionEnv()
    seen = 0
    for seed in range(6):
        _, info = env.reset(seed=seed)
        policy = ExplorePolicy(env.action_space)
        policy.reset(seed)
        obs = None
        for _ in range(20):
            obs, _, _, _, info = env.step(policy(obs, info))
            n = info["n_visible"]
            assert info["visible_instances"].shape == info["visible_pixels"].shape == (MAX_VISIBLE,)
            assert len(info["visible_categories"]) == MAX_VISIBLE
            seen += n
            assert np.all(info["visible_pixels"][:n] > 0) and np.all(info["visible_instances"][:n] >= 0)
            assert all(info["visible_categories"][:n])
            # padding: -1 and "" after the first n
            assert np.all(info["visible_pixels"][n:] == -1) and np.all(info["visible_instances"][n:] == -1)
            assert not any(info["visible_categories"][n:])
    assert seen > 0
    env.close()


def test_depth_observation():
    env = EgoMotionEnv(depth=True)
    obs, _ = env.reset(seed=0)
    assert obs["depth"].shape == (64, 64, 1) and obs["depth"].dtype == np.float32
    assert 0.03 < obs["depth"].min() and obs["depth"].max() < 15.0
    env.close()


def test_explore_policy_keeps_moving_without_crashing_into_walls():
    for action_mode in ("discrete", "continuous"):
        env = EgoMotionEnv(action_mode=action_mode)
        policy = ExplorePolicy(env.action_space)
        obs, info = env.reset(seed=3)
        policy.reset(3)
        travelled, collisions = 0.0, 0
        for _ in range(150):
            obs, _, _, _, info = env.step(policy(obs, info))
            travelled += abs(float(obs["motor"][0]))
            collisions += bool(info["collided"])
        assert travelled > 5.0, action_mode
        assert collisions < 15, action_mode
        env.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": -64}, "size=-64"),
        ({"size": 0}, "size=0"),
        ({"action_mode": "teleport"}, "action_mode='teleport'"),
        ({"scene_classes": ["moon"]}, "moon"),
        ({"split": "test"}, "split='test'"),
        ({"motor_noise": float("nan")}, "motor_noise=nan"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EgoMotionEnv(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown env preset 'ego_moon'"):
        make("ego_moon")


@pytest.mark.parametrize("action", [7, -1, 1.5, float("nan"), "left"])
def test_bad_discrete_action(env, action):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action="):
        env.step(action)


@pytest.mark.parametrize("action", [[float("nan"), 0.0], [2.0, 0.0], [0.0], [0.1, 0.2, 0.3]])
def test_bad_continuous_action(action):
    env = gym.make("embodied/EgoMotionContinuous-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action="):
        env.step(np.array(action))
    env.close()


def test_render_shows_ego_view_and_overview():
    env = EgoMotionEnv(render_mode="rgb_array", render_size=96)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (96, 192, 3) and frame.dtype == np.uint8
    assert frame[:, 96:].std() > 5
    env.close()
