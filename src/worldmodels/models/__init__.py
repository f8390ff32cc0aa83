"""Latent dynamics models shared by the agents."""

from .rssm import RSSM, BlockLinear

__all__ = ["RSSM", "BlockLinear"]
