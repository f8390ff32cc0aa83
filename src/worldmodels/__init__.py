"""worldmodels: world-model reinforcement-learning agents in one PyTorch library."""

__version__ = "0.1.0"
