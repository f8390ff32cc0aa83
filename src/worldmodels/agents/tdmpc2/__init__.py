"""TD-MPC2 (Hansen, Su & Wang, ICLR 2024): decoder-free latent model + MPPI with a policy prior."""

from .agent import TDMPC2Agent
from .config import PRESETS, TDMPC2Config

__all__ = ["PRESETS", "TDMPC2Agent", "TDMPC2Config"]
