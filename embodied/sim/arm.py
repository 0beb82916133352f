"""A Kuka iiwa arm with a WSG-50 parallel gripper, driven by inverse kinematics.

The model is pybullet_data's ``kuka_iiwa/kuka_with_gripper2.sdf`` (the one
KukaDiverseObjectEnv uses): its visual meshes are ~4x cheaper to render than the
Panda's. Motion is joint position control towards IK solutions, so fingers meet
objects through real contacts: an object is held, slips or drops by physics.

Conventions (world frame, metres, radians):

- TCP (tool centre point): midway between the fingertips, at the height of their
  lowest point with the gripper open. All positions below are TCP positions.
- The gripper always points straight down; ``yaw`` is its rotation about the
  world z axis. At yaw 0 the fingers close along the world x axis, at yaw y
  along ``(cos y, sin y)``.
- ``opening`` in [0, 1]: 0 = fingers closed, 1 = fully open (about 12 cm).

IK is always seeded from the same joint configuration (``READY``), never from the
arm's current state, so a target gives the same joints whatever happened before.

Motion primitives shared by the tabletop tasks: :meth:`KukaArm.steps_for` (physics steps
of a stroke), :meth:`KukaArm.descend_until` (a force-guarded descent) and
:func:`closing_yaw` (the folded gripper yaw).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pybullet as p

from embodied.sim.bullet import BulletSim

SDF = "kuka_iiwa/kuka_with_gripper2.sdf"
ARM_JOINTS = (0, 1, 2, 3, 4, 5, 6)
WRIST_LINK = 6  # lbr_iiwa_link_7, the flange; IK target link
YAW_JOINT = 7  # gripper_to_arm: rotates the gripper about the flange axis
LEFT_FINGER, RIGHT_FINGER = 8, 11  # open: -0.3 / +0.3 rad, closed: 0
LEFT_TIP, RIGHT_TIP = 10, 13
FINGER_LINKS = (8, 9, 10, 11, 12, 13)
TIP_LINKS = (LEFT_TIP, RIGHT_TIP)
FINGER_OPEN = 0.3  # rad

# KukaDiverseObjectEnv's start pose: gripper hanging over the workspace.
READY = (0.006418, 0.413184, -0.011401, -1.589317, 0.005379, 1.137684, -0.006539)
# Out of the head camera's way: the READY pose swung 90 degrees to the robot's left.
HOME = (math.pi / 2, *READY[1:])
# Null-space IK (limits slightly inside the joint limits, rest pose = READY) keeps the elbow up.
_LOWER = (-2.96, -2.0, -2.96, -2.0, -2.96, -2.0, -3.05)
_UPPER = (2.96, 2.0, 2.96, 2.0, 2.96, 2.0, 3.05)
_RANGES = tuple(u - lo for lo, u in zip(_LOWER, _UPPER, strict=True))
_DOWN = p.getQuaternionFromEuler((0.0, -math.pi, 0.0))  # flange pointing at the table

_CONTROLLED = (*ARM_JOINTS, YAW_JOINT, LEFT_FINGER, RIGHT_FINGER, LEFT_TIP, RIGHT_TIP)

DESCEND_SPEED = 0.8  # m/s, the guarded descents (and the push's lift)
LANDED_FORCE = 20.0  # N of finger contact force: a descent landed on something


def closing_yaw(axis: float) -> float:
    """The gripper yaw (rad) that closes the fingers along the world direction ``axis`` (rad from +x).

    Folded into [-90, 90) deg: the closing axis has no sign, and a small yaw keeps the wrist
    joint near zero.
    """
    return (axis + math.pi / 2) % math.pi - math.pi / 2


class KukaArm:
    """The arm in ``sim``'s world; construction loads it (about 40 ms), reuse it across episodes.

    Args:
        sim: the world to load into.
        arm_force: N m, the most torque each arm joint motor applies.
        finger_force: N m, the most torque each finger motor applies (sets the grip force).
        position_gain: the joint motors' position gain (0..1, fraction of the error corrected per step).
    """

    def __init__(
        self,
        sim: BulletSim,
        *,
        arm_force: float = 300.0,
        finger_force: float = 3.0,
        position_gain: float = 0.3,
    ) -> None:
        self.sim = sim
        bodies = sim.p.loadSDF(SDF)
        if not bodies:
            raise RuntimeError(f"pybullet could not load {SDF}")
        self.body = sim.add_body("arm", bodies[0])
        self.arm_force = float(arm_force)
        self.finger_force = float(finger_force)
        self.position_gain = float(position_gain)
        self._forces = [self.arm_force] * 8 + [self.finger_force] * 4
        self._gains = [self.position_gain] * len(_CONTROLLED)
        self._colors = {s[1]: s[7] for s in sim.p.getVisualShapeData(self.body)}
        self.visible = True
        self._last_ik: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        self.tcp_offset = np.zeros(3)
        # PyBullet's IK works in the base's inertial frame, which this SDF offsets from the link
        # frame by a constant; measure that bias once and subtract it from every target.
        self._ik_bias = (0.0, 0.0, 0.0)
        target = (0.5, 0.0, 0.4)
        self.reset(self.ik(target, iterations=200), yaw=0.0)
        got = sim.p.getLinkState(self.body, WRIST_LINK, computeForwardKinematics=1)[4]
        self._ik_bias = tuple(g - t for g, t in zip(got, target, strict=True))
        # Tip geometry measured once, in the READY pose at yaw 0 with the gripper open:
        # the TCP's offset from the flange (world frame; it turns with the yaw).
        self.reset(READY, yaw=0.0, opening=1.0)
        flange = np.asarray(sim.p.getLinkState(self.body, WRIST_LINK, computeForwardKinematics=1)[4])
        tips = np.array([sim.p.getAABB(self.body, link) for link in TIP_LINKS])  # (2 tips, lo/hi, xyz)
        tcp = np.array([*tips[:, :, :2].mean(axis=(0, 1)), tips[:, 0, 2].min()])
        self.tcp_offset = tcp - flange  # (3,) m at yaw 0
        pos, orn = sim.p.getLinkState(self.body, YAW_JOINT)[4:6]
        inv_pos, inv_orn = p.invertTransform(pos, orn)
        self._tcp_local = p.multiplyTransforms(inv_pos, inv_orn, tcp.tolist(), (0.0, 0.0, 0.0, 1.0))[0]
        # closed fingers swing their tips this far below the TCP (m): pokes and pushes use the closed tips
        self.reset(READY, yaw=0.0, opening=0.0)
        self.closed_dip = float(self.tcp()[2] - min(sim.p.getAABB(self.body, link)[0][2] for link in TIP_LINKS))
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(self, joints: Sequence[float] = HOME, *, yaw: float = 0.0, opening: float = 1.0) -> None:
        """Teleport every joint (zero velocity) and make the motors hold that pose."""
        q = self._full(joints, yaw, opening)
        self._last_ik = None
        reset = self.sim.p.resetJointState
        for j, qj in zip(_CONTROLLED, q, strict=True):
            reset(self.body, j, qj, 0.0)
        self._command(q)

    def teleport(self, tcp: Sequence[float], yaw: float = 0.0, opening: float = 1.0) -> tuple[float, ...]:
        """Put the TCP at ``tcp`` with gripper ``yaw`` instantly; returns the arm joints used."""
        q = self.ik(tcp, yaw)
        self.reset(q, yaw=yaw, opening=opening)
        return q

    def ik(
        self, tcp: Sequence[float], yaw: float = 0.0, seed: Sequence[float] = READY, iterations: int = 60
    ) -> tuple[float, ...]:
        """Arm joint angles (7,) that put the TCP at ``tcp`` (m) with the gripper down at ``yaw`` (rad).

        ``seed``: the joint angles the solver starts from; a nearby solution needs few ``iterations``
        (each costs ~5 us; 60 from READY reach ~1 mm, 15 from a waypoint 5 cm away likewise).
        """
        c, s = math.cos(yaw), math.sin(yaw)
        ox, oy, oz = self.tcp_offset
        bx, by, bz = self._ik_bias
        flange = (tcp[0] - (c * ox - s * oy) - bx, tcp[1] - (s * ox + c * oy) - by, tcp[2] - oz - bz)
        q = self.sim.p.calculateInverseKinematics(
            self.body,
            WRIST_LINK,
            flange,
            _DOWN,
            lowerLimits=_LOWER,
            upperLimits=_UPPER,
            jointRanges=_RANGES,
            restPoses=READY,
            currentPositions=[*seed, 0.0, -FINGER_OPEN, 0.0, FINGER_OPEN, 0.0],
            maxNumIterations=iterations,
            residualThreshold=1e-5,
        )
        return tuple(float(x) for x in q[:7])

    def joints(self) -> np.ndarray:
        """(7,) current arm joint angles in radians."""
        return np.array([s[0] for s in self.sim.p.getJointStates(self.body, ARM_JOINTS)])

    def tcp(self) -> np.ndarray:
        """(3,) the TCP's current world position in metres (a fixed point of the gripper's base link)."""
        pos, orn = self.sim.p.getLinkState(self.body, YAW_JOINT)[4:6]
        return np.asarray(p.multiplyTransforms(pos, orn, self._tcp_local, (0.0, 0.0, 0.0, 1.0))[0])

    def _full(self, joints: Sequence[float], yaw: float, opening: float) -> list[float]:
        a = FINGER_OPEN * float(np.clip(opening, 0.0, 1.0))
        # yaw joint turns the gripper about the downward flange axis: world yaw = -joint angle
        return [*map(float, joints), -float(yaw), -a, a, 0.0, 0.0]

    def _command(self, q: Sequence[float]) -> None:
        self.sim.p.setJointMotorControlArray(
            self.body,
            _CONTROLLED,
            p.POSITION_CONTROL,
            targetPositions=q,
            forces=self._forces,
            positionGains=self._gains,
        )

    # -- motion --------------------------------------------------------------------------
    def move(
        self,
        start: Sequence[float],
        end: Sequence[float],
        steps: int,
        *,
        yaw: float = 0.0,
        opening: float = 1.0,
        end_opening: float | None = None,
        on_step: Callable[[int], bool] | None = None,
        waypoint_spacing: float = 0.05,
    ) -> int:
        """Drive the TCP along the straight line ``start`` -> ``end`` over ``steps`` physics steps.

        Joint targets are interpolated between IK solutions at waypoints every
        ``waypoint_spacing`` metres (one IK per waypoint, not per step: IK costs
        more than a physics step). ``opening`` -> ``end_opening`` is interpolated
        alongside. ``on_step(i)`` runs after each step; returning True stops the
        motion there (the motors then hold the last target). Returns the steps taken.
        """
        start, end = np.asarray(start, float), np.asarray(end, float)
        n_way = max(1, math.ceil(float(np.linalg.norm(end - start)) / waypoint_spacing))
        key = (*start.tolist(), float(yaw))
        # a motion that starts where the last one ended reuses its IK solution (the common case)
        qs = [self._last_ik[1] if self._last_ik is not None and self._last_ik[0] == key else self.ik(start, yaw)]
        for k in range(1, n_way + 1):  # each waypoint seeded from the previous one: few iterations
            qs.append(self.ik(start + (end - start) * k / n_way, yaw, seed=qs[-1], iterations=15))
        # all joint targets at once (steps, 12): numpy per step would cost more than the physics
        s = np.arange(1, steps + 1) / steps * n_way
        k = np.minimum(s.astype(np.int64), n_way - 1)
        q_way = np.asarray(qs)
        q = q_way[k] + (q_way[k + 1] - q_way[k]) * (s - k)[:, None]
        end_opening = opening if end_opening is None else end_opening
        grip = FINGER_OPEN * np.clip(opening + (end_opening - opening) * np.arange(1, steps + 1) / steps, 0.0, 1.0)
        self._last_ik = ((*end.tolist(), float(yaw)), qs[-1])
        targets = np.concatenate(
            [q, np.full((steps, 1), -float(yaw)), -grip[:, None], grip[:, None], np.zeros((steps, 2))], axis=1
        ).tolist()
        step, command = self.sim.p.stepSimulation, self._command
        for i in range(steps):
            command(targets[i])
            step()
            if on_step is not None and on_step(i + 1):
                return i + 1
        return steps

    def steps_for(self, distance: float, speed: float) -> int:
        """Physics steps that cover ``distance`` (m) at ``speed`` (m/s); at least 2."""
        return max(2, round(distance / speed / self.sim.timestep))

    def steps_in(self, seconds: float) -> int:
        """Physics steps that last ``seconds``; at least 2."""
        return max(2, round(seconds / self.sim.timestep))

    def descend_until(
        self,
        start: Sequence[float],
        end: Sequence[float],
        force: float,
        *,
        yaw: float = 0.0,
        opening: float = 1.0,
        speed: float = DESCEND_SPEED,
    ) -> bool:
        """Move the TCP down from ``start`` to ``end`` at ``speed`` (m/s), stopping as soon as the
        fingers' contact normal forces sum to more than ``force`` (N). True: it stopped on contact
        (the TCP is where it stopped, :meth:`tcp`); False: it reached ``end``."""
        n = self.steps_for(start[2] - end[2], speed)
        return self.move(start, end, n, yaw=yaw, opening=opening, on_step=lambda i: self.finger_load() > force) < n

    def hold(
        self,
        tcp: Sequence[float],
        steps: int,
        *,
        yaw: float = 0.0,
        opening: float = 1.0,
        end_opening: float | None = None,
        on_step: Callable[[int], bool] | None = None,
    ) -> int:
        """Keep the TCP at ``tcp`` for ``steps`` physics steps (while the fingers move to ``end_opening``)."""
        return self.move(tcp, tcp, steps, yaw=yaw, opening=opening, end_opening=end_opening, on_step=on_step)

    # -- sensing / looks -----------------------------------------------------------------
    def finger_contacts(self, body: int | None = None) -> list[tuple]:
        """PyBullet contact points between the fingers and ``body`` (any body when None)."""
        pts = []
        for link in FINGER_LINKS:
            if body is None:
                pts += self.sim.p.getContactPoints(bodyA=self.body, linkIndexA=link)
            else:
                pts += self.sim.p.getContactPoints(bodyA=self.body, bodyB=body, linkIndexA=link)
        return pts

    def finger_load(self) -> float:
        """N, the sum of the contact normal forces on the finger links."""
        return sum(c[9] for c in self.finger_contacts())

    def set_visible(self, visible: bool) -> None:
        """Show or hide the arm in renders (TinyRenderer skips fully transparent shapes: ~8x cheaper frames)."""
        if visible == self.visible:
            return
        for link, rgba in self._colors.items():
            color = rgba if visible else (rgba[0], rgba[1], rgba[2], 0.0)
            self.sim.p.changeVisualShape(self.body, link, rgbaColor=color)
        self.visible = visible

    def finite(self) -> bool:
        """False when the arm's joint state has gone NaN / inf (a physics blow-up)."""
        states = self.sim.p.getJointStates(self.body, _CONTROLLED)
        return all(math.isfinite(s[0]) and math.isfinite(s[1]) for s in states)
