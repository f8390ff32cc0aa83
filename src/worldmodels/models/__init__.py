"""Latent dynamics models shared by the agents."""

from .rssm import RSSM, BlockLinear, overshooting_kl

__all__ = ["RSSM", "BlockLinear", "overshooting_kl"]
