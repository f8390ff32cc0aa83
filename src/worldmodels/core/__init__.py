"""The agent contract: what the training modes may ask of an agent, and what it gives back."""

from .agent import Agent, AgentBase, Imaginer, Reporter, Sampling, Stage, Step, Traits, Update

__all__ = [
    "Agent",
    "AgentBase",
    "Imaginer",
    "Reporter",
    "Sampling",
    "Stage",
    "Step",
    "Traits",
    "Update",
]
