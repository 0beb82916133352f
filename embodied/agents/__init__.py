"""Learners: one module per method (all sharing ``embodied.nn.Trunk``), presets under top-level ``agents/``."""

from embodied.agents.base import Agent, AgentDataError
from embodied.agents.registry import (
    AgentPreset,
    agent_class,
    apply_overrides,
    build_agent,
    list_presets,
    load_preset,
    open_datasets,
)

__all__ = [
    "Agent",
    "AgentDataError",
    "AgentPreset",
    "agent_class",
    "apply_overrides",
    "build_agent",
    "list_presets",
    "load_preset",
    "open_datasets",
]
