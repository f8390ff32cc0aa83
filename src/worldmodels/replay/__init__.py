"""Replay storage: sequence replay over environment streams, persisted as on-disk chunks."""

from worldmodels.replay.buffer import ReplayBuffer, random_replay

AGE_KEY = "env_step"
"""Replay key holding the env step each stored step was collected at (its age)."""

__all__ = ["AGE_KEY", "ReplayBuffer", "random_replay"]
