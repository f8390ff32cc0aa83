"""Dreamer (V3; V1/V2 axes follow): world model + actor-critic in imagination."""

from .agent import DreamerAgent
from .config import PRESETS, DreamerConfig

__all__ = ["PRESETS", "DreamerAgent", "DreamerConfig"]
