"""BulletSim's named methods (what the envs use instead of the raw client) and the arm's motion primitives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embodied.sim import BulletSim
from embodied.sim.arm import DESCEND_SPEED, LANDED_FORCE, KukaArm, closing_yaw


@pytest.fixture
def sim():
    s = BulletSim()
    yield s
    s.close()


def test_bodies_poses_and_velocities(sim):
    box = sim.create_body("box", (0.0, 0.0, 0.5), mass=1.0, halfExtents=(0.1, 0.2, 0.05))
    ball = sim.create_body("sphere", (1.0, 0.0, 0.5), collision=False, radius=0.05)
    rig = sim.create_body("cylinder", (2.0, 0.0, 0.5), (0.0, 0.0, 1.0, 0.0), mass=5.0, radius=0.1, height=0.4)
    assert sim.body_ids() == [box, ball, rig]
    lo, hi = sim.aabb(box)
    np.testing.assert_allclose(np.subtract(hi, lo), (0.2, 0.4, 0.1), atol=0.01)  # AABB margins are small
    lo, hi = sim.aabb(rig)
    assert hi[2] - lo[2] == pytest.approx(0.4, abs=0.01)
    sim.set_base_pose(box, (0.3, 0.2, 1.0), (0.0, 0.0, 0.0, 1.0))
    pos, orn = sim.base_pose(box)
    np.testing.assert_allclose(pos, (0.3, 0.2, 1.0))
    sim.set_base_velocity(box, (1.0, 0.0, 0.0), (0.0, 0.0, 2.0))
    lin, ang = sim.base_velocity(box)
    assert lin[0] == pytest.approx(1.0) and ang[2] == pytest.approx(2.0)
    sim.remove(ball)
    assert sim.body_ids() == [box, rig]


def test_rays_contacts_and_collision_filters(sim):
    floor = sim.create_body("box", (0.0, 0.0, -0.05), halfExtents=(1.0, 1.0, 0.05))
    ghost = sim.create_body("box", (0.0, 0.0, 0.5), collision=False, halfExtents=(0.1, 0.1, 0.1))
    hit = sim.ray((0.0, 0.0, 1.0), (0.0, 0.0, -1.0))
    assert hit[0] == floor and hit[3][2] == pytest.approx(0.0, abs=1e-6)  # the visual-only box is not seen
    assert [h[0] for h in sim.rays([(0.5, 0.5, 1.0), (5.0, 5.0, 1.0)], [(0.5, 0.5, -1.0), (5.0, 5.0, -1.0)])] == [
        floor,
        -1,
    ]
    ball = sim.create_body("sphere", (0.0, 0.0, 0.049), mass=1.0, radius=0.05)
    sim.step(5)
    assert sim.contacts(ball, floor) and not sim.contacts(ball, ghost)
    assert sum(c[9] for c in sim.contacts(ball)) > 0.0  # normal force, N
    sim.disable_collisions(floor)
    assert sim.ray((0.0, 0.5, 1.0), (0.0, 0.5, -1.0))[0] == -1


def test_looks(sim):
    body = sim.create_body("box", (0.0, 0.0, 0.0), rgba=(0.2, 0.4, 0.6, 1.0), halfExtents=(0.1, 0.1, 0.1))
    assert sim.visual_shapes(body)[0][7] == pytest.approx((0.2, 0.4, 0.6, 1.0))
    sim.set_color(body, (1.0, 0.0, 0.0, 0.0))
    assert sim.visual_shapes(body)[0][7] == pytest.approx((1.0, 0.0, 0.0, 0.0))
    sim.set_dynamics(body, lateralFriction=0.25)
    assert sim.p.getDynamicsInfo(body, -1)[1] == pytest.approx(0.25)


def test_closing_yaw_folds_into_half_a_turn():
    for axis in np.linspace(-3 * math.pi, 3 * math.pi, 97):
        yaw = closing_yaw(float(axis))
        assert -math.pi / 2 <= yaw < math.pi / 2
        assert math.isclose(abs(math.cos(yaw - axis)), 1.0, abs_tol=1e-9)  # the same axis, either sign


def test_steps_and_a_guarded_descent_that_lands_on_the_table():
    sim = BulletSim(timestep=1 / 240)
    sim.create_body("box", (0.5, 0.0, -0.025), halfExtents=(0.4, 0.4, 0.025))
    arm = KukaArm(sim)
    assert arm.steps_for(0.08, 0.8) == 24 and arm.steps_for(0.0, 1.0) == 2 and arm.steps_in(0.1) == 24
    arm.teleport((0.5, 0.0, 0.2), 0.0, opening=1.0)
    assert not arm.descend_until((0.5, 0.0, 0.2), (0.5, 0.0, 0.12), LANDED_FORCE, speed=DESCEND_SPEED)  # in the air
    assert arm.finger_load() == 0.0
    assert arm.descend_until((0.5, 0.0, 0.12), (0.5, 0.0, -0.1), LANDED_FORCE)  # stops on the table
    assert arm.finger_load() > LANDED_FORCE and arm.tcp()[2] > -0.02
    sim.close()
