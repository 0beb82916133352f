"""Randomised tabletop scenes: what varies, that randomize=False is the scene of before, determinism."""

import hashlib
import math

import cv2
import numpy as np
import pytest

from embodied.envs.grasp import GraspEnv
from embodied.envs.look import ROOM_SEEDS, LookEnv
from embodied.envs.poke import PokeEnv
from embodied.envs.push import PushEnv
from embodied.envs.tabletop import REACH, training_textures

ENVS = {"grasp": GraspEnv, "push": PushEnv, "poke": PokeEnv, "look": LookEnv}
# sha256 of observations and masks (rollout below) computed with the code before randomisation
# existed (commit 81b0498): randomize=False must give exactly these scenes.
BEFORE = {
    "grasp": "6190a30c222c7a865eba334e16132332e3b301049badcc4e89266f58e4b6a338",
    "push": "adff8d9817b6fd06814bc71e47eca1a315d5e67db0e3faad72961d1320f48a3d",
    "poke": "aa53048c0b7789b05ba1fd0cc75379f6995b7548dc74e1f61cd7665715cfc9e7",
    "look": "c7e91ebaaec3b9bd8b20621d07a6d3ba50e29c13009d5939b5d6f6b7730d615e",
}


def _action(name, space, rng):
    if name == "look":
        return int(rng.integers(space.n))
    if name == "push":
        return rng.uniform(-1, 1, 4).astype(np.float32)
    return rng.integers(space.nvec)


def rollout(name: str, **kwargs) -> str:
    """Two seeds, two steps each (a reset after a terminal step): one hash of every observation and mask."""
    env = ENVS[name](size=64, **kwargs)
    h = hashlib.sha256()
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        obs, info = env.reset(seed=seed)
        for _ in range(2):
            for k in sorted(obs):
                h.update(np.ascontiguousarray(obs[k]).tobytes())
            h.update(np.ascontiguousarray(info["mask"]).tobytes())
            obs, _, terminated, _, info = env.step(_action(name, env.action_space, rng))
            if terminated:
                obs, info = env.reset()
    env.close()
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(ENVS))
def test_randomize_false_gives_the_scenes_of_before_bit_for_bit(name):
    assert rollout(name, randomize=False) == BEFORE[name]


@pytest.mark.parametrize("name", sorted(ENVS))
def test_randomised_scenes_are_deterministic_and_differ_from_the_plain_ones(name):
    a = rollout(name)
    assert a == rollout(name), "the same seeds and actions must give the same bytes"
    assert a != BEFORE[name]


@pytest.mark.parametrize(
    "cls, elevation, distance",
    [(GraspEnv, (45, 75), (0.62, 0.9)), (PushEnv, (55, 75), (0.62, 0.9)), (PokeEnv, (30, 75), (0.62, 1.0))],
)
def test_grasp_push_poke_vary_backdrop_light_and_camera(cls, elevation, distance):
    env = cls(size=64, n_objects=1)
    eyes, lights, backdrops = [], [], []
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        eyes.append(info["camera_eye"])
        lights.append(info["light_direction"])
        backdrops.append(obs["rgb"][info["mask"] < 0].mean(axis=0))
        eye, target = info["camera_eye"], info["camera_target"]
        d = np.linalg.norm(eye - target)
        el = math.degrees(math.asin((eye[2] - target[2]) / d))
        assert elevation[0] - 1e-6 <= el <= elevation[1] + 1e-6 and distance[0] - 1e-9 <= d <= distance[1] + 1e-9
        assert abs(eye[1] - target[1]) < 1e-9 and eye[0] > target[0], "the camera faces the robot"
        light = info["light_direction"]
        assert -1 <= light[0] <= 1 and -1 <= light[1] <= 1 and 0.3 <= light[2] <= 1.5
    env.close()
    assert np.ptp(np.array(eyes), axis=0)[[0, 2]].min() > 0.05
    assert np.ptp(np.array(lights), axis=0).min() > 0.3
    assert np.ptp(np.array(backdrops), axis=0).max() > 40, "the table's colour must vary"


def test_pixel_world_round_trip_uses_the_episodes_camera():
    env = GraspEnv(size=64)
    for seed in range(4):
        env.reset(seed=seed)
        scene = env.scene
        for u, v in ((10, 50), (32, 32), (50, 40), (32, 60)):
            point, _ = scene.pixel_to_world(u, v)
            inside = REACH[0][0] < point[0] < REACH[0][1] and REACH[1][0] < point[1] < REACH[1][1]
            if inside:
                np.testing.assert_allclose(scene.world_to_pixel(point), (u + 0.5, v + 0.5), atol=1e-6)
        # every object's top centre projects where the mask shows it (most of the time)
    env.close()


def test_objects_are_seen_where_object_pixels_say():
    env = PokeEnv(size=64)
    on = 0
    for seed in range(10):
        _, info = env.reset(seed=seed)
        u, v = np.clip(np.round(info["object_pixels"][0]).astype(int), 0, 63)
        on += info["mask"][v, u] == 0
    env.close()
    assert on >= 7


def test_look_takes_views_in_rooms_and_on_tables_with_fixed_info_shapes():
    env = LookEnv(size=64, views=4)
    signatures, rooms, fills = {}, 0, []
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        for k in (1, 2, 3):
            for key, value in info.items():
                sig = (np.shape(value), np.asarray(value).dtype.kind)
                assert signatures.setdefault(key, sig) == sig, f"info[{key!r}] changes shape"
            assert (info["mask"] == 0).sum() > 20, "the object must be in view"
            fills.append(info["fill"])
            if k == 1:
                rooms += info["scene_class"] >= 0
                if info["scene_class"] >= 0:
                    assert 0 <= info["scene_id"] < ROOM_SEEDS
                else:
                    assert info["scene_id"] == -1
            obs, _, _, _, info = env.step(k)
        el = float(obs["view"][1])
        assert math.radians(10) - 1e-6 <= el <= math.radians(70) + 1e-6
    env.close()
    assert 1 <= rooms <= 5, f"{rooms} of 6 episodes in rooms"
    assert min(fills) < 0.35 and max(fills) > 0.6, f"fills {np.round(fills, 2)}"


def test_look_overhead_views_look_down_at_a_small_object():
    from embodied.envs.look import OVERHEAD_ELEVATION

    env = LookEnv(size=64, views=4, overhead_share=1.0, room_share=0.0)
    fills = []
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        for k in (1, 2, 3):
            assert OVERHEAD_ELEVATION[0] - 1e-6 <= float(obs["view"][1]) <= OVERHEAD_ELEVATION[1] + 1e-6
            assert info["camera_pose"][2, 2] > 0.95, "the camera looks down"  # its +z (backwards) points up
            fills.append(info["fill"])
            obs, _, _, _, info = env.step(k)
    env.close()
    assert 0.05 < np.median(fills) < 0.3, f"fills {np.round(fills, 2)}"  # ReachObject's objects: median 0.19
    with pytest.raises(ValueError, match="overhead_share=1.5; expected a share"):
        LookEnv(overhead_share=1.5)


def test_look_rooms_then_tables_render_and_repeat():
    env = LookEnv(size=64, views=3, render_mode="rgb_array", room_share=1.0)
    obs_room, info = env.reset(seed=5)
    assert info["scene_class"] >= 0 and env.render().shape == (256, 256, 3)
    env.room_share = 0.0
    obs_table, info = env.reset(seed=5)
    assert info["scene_class"] == -1 and env.render().shape == (256, 256, 3)
    env.room_share = 1.0
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(again["rgb"], obs_room["rgb"])
    env.close()


def test_training_textures_are_not_the_evaluations():
    from embodied.eval.render import _texture_pool

    ours = [cv2.imread(p) for p in training_textures()]
    assert len(ours) == 64 and all(t is not None for t in ours)
    theirs = [cv2.imread(p) for seed in (2015, 2016) for p in _texture_pool(seed, "backdrop", 48)]
    assert not set(training_textures()) & {p for seed in (2015, 2016) for p in _texture_pool(seed, "backdrop", 48)}
    for a in ours:
        if np.ptp(a.reshape(-1, 3), axis=0).max() == 0:
            continue  # a plain colour: compare patterns only
        assert not any(a.shape == b.shape and np.array_equal(a, b) for b in theirs)


def test_randomize_must_be_a_bool():
    with pytest.raises(ValueError, match="randomize='yes'"):
        GraspEnv(randomize="yes")
    with pytest.raises(ValueError, match="room_share=2"):
        LookEnv(room_share=2)


def test_a_room_is_the_same_whatever_rooms_came_before():
    fresh = LookEnv(size=64, views=3, room_share=1.0)
    want = [fresh.reset(seed=9)[0]["rgb"], fresh.step(2)[0]["rgb"]]
    fresh.close()
    env = LookEnv(size=64, views=3, room_share=1.0)
    for seed in (1, 2, 3):
        env.reset(seed=seed)
    got = [env.reset(seed=9)[0]["rgb"], env.step(2)[0]["rgb"]]
    env.close()
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_composited_observation_is_the_full_render():
    env = GraspEnv(size=64, n_objects=3)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        scene = env.scene
        scene._show_table(True)
        np.testing.assert_array_equal(obs["rgb"], scene.camera.render(scene.sim, scene.view).rgb)
        # a camera moved after the objects were placed: the backdrop is rendered again without them
        scene.set_head_camera(np.array(scene.eye) + (0.05, 0.02, 0.03), scene.target)
        rgb, _ = scene.observe()
        scene._show_table(True)
        np.testing.assert_array_equal(rgb, scene.camera.render(scene.sim, scene.view).rgb)
    env.close()


@pytest.mark.parametrize("cls", [GraspEnv, PushEnv, LookEnv])
def test_a_randomised_episode_does_not_depend_on_the_episodes_before(cls):
    def episode(env, seed):
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        out = [obs["rgb"]]
        for _ in range(2):
            obs, _, terminated, _, _ = env.step(_action(cls.__name__[:-3].lower(), env.action_space, rng))
            out.append(obs["rgb"])
            if terminated:
                break
        return out

    fresh = cls(size=64)
    want = episode(fresh, 21)
    fresh.close()
    env = cls(size=64)
    for seed in (3, 4, 5, 6):
        episode(env, seed)
    got = episode(env, 21)
    env.close()
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
