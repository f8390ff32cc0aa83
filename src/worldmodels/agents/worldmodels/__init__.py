"""World Models (Ha & Schmidhuber 2018): VAE + MDN-RNN + a controller evolved in the dream."""

from .agent import WorldModelsAgent
from .config import PRESETS, WorldModelsConfig

__all__ = ["PRESETS", "WorldModelsAgent", "WorldModelsConfig"]
