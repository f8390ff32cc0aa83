"""PlaNet (Hafner et al. 2019): RSSM + CEM planning in latent space."""

from .agent import PlaNetAgent
from .config import PRESETS, PlaNetConfig

__all__ = ["PRESETS", "PlaNetAgent", "PlaNetConfig"]
