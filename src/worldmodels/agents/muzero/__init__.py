"""MuZero (Schrittwieser et al. 2020): learned model + batched MCTS; EfficientZero's axes later."""

from .agent import MuZeroAgent
from .config import PRESETS, MuZeroConfig

__all__ = ["PRESETS", "MuZeroAgent", "MuZeroConfig"]
