import math

import numpy as np
import pybullet as p
import pytest

from embodied.sim import BulletSim, Camera, look_at
from embodied.sim.camera import instance_mask


def red_cube(sim, pos=(0.0, 0.0, 0.0), half=0.5):
    col = sim.p.createCollisionShape(p.GEOM_BOX, halfExtents=[half] * 3)
    vis = sim.p.createVisualShape(p.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=(1, 0, 0, 1))
    return sim.add_body("cube", sim.p.createMultiBody(0, col, vis, pos))


def test_two_sims_in_one_process_are_independent():
    a, b = BulletSim(), BulletSim()
    assert a.client != b.client
    red_cube(a)
    assert a.p.getNumBodies() == 1 and b.p.getNumBodies() == 0
    a.close()
    assert b.connected and not a.connected
    a.close()  # twice is fine
    b.close()


def test_reset_world_empties_and_keeps_settings():
    with BulletSim(timestep=0.01) as sim:
        red_cube(sim)
        sim.cache["x"] = 1
        sim.reset_world()
        assert sim.p.getNumBodies() == 0 and not sim.bodies and not sim.cache
        assert sim.p.getPhysicsEngineParameters()["fixedTimeStep"] == pytest.approx(0.01)


def test_save_restore_state_roundtrip():
    with BulletSim() as sim:
        col = sim.p.createCollisionShape(p.GEOM_SPHERE, radius=0.1)
        ball = sim.add_body("ball", sim.p.createMultiBody(1.0, col, -1, (0, 0, 1)))
        state = sim.save_state()
        sim.step(50)
        fallen = sim.p.getBasePositionAndOrientation(ball)[0][2]
        assert fallen < 1.0
        sim.restore_state(state)
        assert sim.p.getBasePositionAndOrientation(ball)[0][2] == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="renderer='vulkan'"):
        BulletSim(renderer="vulkan")
    with pytest.raises(ValueError, match="width=-3"):
        Camera(width=-3)
    with pytest.raises(ValueError, match="fov"):
        Camera(fov=0)
    with BulletSim() as sim, pytest.raises(ValueError, match="'cube' already"):
        red_cube(sim)
        red_cube(sim)


def test_egl_falls_back_with_warning_without_gpu():
    import os

    if os.path.exists("/dev/nvidia0"):
        pytest.skip("a GPU is present: EGL may load")
    with pytest.warns(UserWarning, match="TinyRenderer"):
        sim = BulletSim(renderer="egl")
    assert sim.renderer == "tiny"
    sim.close()


def test_camera_rgb_depth_and_segmentation():
    with BulletSim() as sim:
        cube = red_cube(sim)
        cam = Camera(32, 24, fov=60)
        frame = cam.render(sim, look_at((4.0, 0.0, 0.0), (0.0, 0.0, 0.0)), depth=True, seg=True)
        assert frame.rgb.shape == (24, 32, 3) and frame.rgb.dtype == np.uint8
        centre = frame.rgb[12, 16]
        assert centre[0] > 100 and centre[1] < 30 and centre[2] < 30  # the red cube
        assert frame.depth[12, 16] == pytest.approx(3.5, abs=0.02)  # its face is 3.5 m from the eye
        assert frame.seg[12, 16] == cube and frame.seg[0, 0] == -1
        inst = instance_mask(frame.seg, {cube: 77})
        assert inst[12, 16] == 77 and inst[0, 0] == -1


def test_intrinsics_project_a_point_where_the_renderer_draws_it():
    cam = Camera(64, 48, fov=50)
    k = cam.intrinsics
    assert k[1, 1] == pytest.approx(24 / math.tan(math.radians(25)))
    assert k[0, 0] == k[1, 1] and k[0, 2] == 32 and k[1, 2] == 24


def test_attached_view_follows_the_body():
    with BulletSim() as sim:
        cube = red_cube(sim, half=0.1)
        cam = Camera(16, 16)
        v1 = cam.attached_view(sim, cube, offset=(0.2, 0, 0))
        sim.p.resetBasePositionAndOrientation(cube, (1, 2, 0), p.getQuaternionFromEuler((0, 0, math.pi / 2)))
        v2 = cam.attached_view(sim, cube, offset=(0.2, 0, 0))
        eye = -np.asarray(v2).reshape(4, 4).T[:3, :3].T @ np.asarray(v2).reshape(4, 4).T[:3, 3]
        np.testing.assert_allclose(eye, (1.0, 2.2, 0.0), atol=1e-6)
        assert v1 != v2
