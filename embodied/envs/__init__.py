"""Gymnasium environments; importing this registers every preset in ``envs/``."""

from embodied.envs.registry import ENV_IDS, PRESETS, make, register_all, resolve

register_all()

__all__ = ["ENV_IDS", "PRESETS", "make", "register_all", "resolve"]
