"""The agent contract: what the training modes may ask of an agent, and what it gives back."""

from .agent import (
    Agent,
    AgentBase,
    EvalInterrupted,
    Imaginer,
    Playable,
    ProgressAware,
    Reporter,
    Sampling,
    Stage,
    Step,
    Traits,
    Update,
    check_stop,
)

__all__ = [
    "Agent",
    "AgentBase",
    "EvalInterrupted",
    "Imaginer",
    "Playable",
    "ProgressAware",
    "Reporter",
    "Sampling",
    "Stage",
    "Step",
    "Traits",
    "Update",
    "check_stop",
]
