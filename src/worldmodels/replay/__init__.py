"""Replay storage: sequence replay over environment streams, persisted as on-disk chunks."""

from worldmodels.replay.buffer import ReplayBuffer, random_replay

__all__ = ["ReplayBuffer", "random_replay"]
