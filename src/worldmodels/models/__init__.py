"""Latent dynamics models shared by the agents."""

from .muzero import MuZeroNetwork
from .rssm import RSSM, BlockLinear, overshooting_kl
from .tdmpc2 import PolicyOutput, TDMPC2Model, TDMPC2ModelConfig

__all__ = [
    "RSSM",
    "BlockLinear",
    "MuZeroNetwork",
    "PolicyOutput",
    "TDMPC2Model",
    "TDMPC2ModelConfig",
    "overshooting_kl",
]
