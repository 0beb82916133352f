"""Simulation core: the PyBullet client, cameras, generated assets and the object library."""

from embodied.sim.bullet import BulletSim
from embodied.sim.camera import Camera, Frame, look_at, mounted_view

__all__ = ["BulletSim", "Camera", "Frame", "look_at", "mounted_view"]
