"""Replay storage: sequence replay over environment streams, persisted as on-disk chunks."""

from worldmodels.replay.buffer import ReplayBuffer

__all__ = ["ReplayBuffer"]
