"""Samplers over a :class:`~worldmodels.replay.ReplayBuffer` beyond its windows: single frames
(a VAE's training data) and windows with hindsight goals from the same episode (goal-reaching
world models; Andrychowicz et al. 2017's "future" strategy)."""

from __future__ import annotations

import numpy as np

from .buffer import ReplayBuffer


def sample_frames(replay: ReplayBuffer, batch_size: int) -> dict[str, np.ndarray]:
    """``batch_size`` single steps, uniformly over every held step: ``{key: [B, ...]}``."""
    return {k: v[:, 0] for k, v in replay.sample(batch_size, 1).items()}


def sample_with_goals(
    replay: ReplayBuffer,
    batch_size: int,
    length: int,
    horizon: int,
    keys: tuple[str, ...] = ("vector",),
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Windows ``{key: [B, length, ...]}`` plus ``goal/<key>`` ``[B, ...]`` and ``goal_offset``
    ``[B]``: the observation ``goal_offset`` steps after the window's last step, the offset
    drawn uniformly from 0..``horizon`` among the steps of that step's episode (near an
    episode's end, from the steps left in it)."""
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    rng = rng or np.random.default_rng()
    data = replay.sample(batch_size, length + horizon)
    # The last step's episode runs until the next is_first (exclusive).
    first = np.asarray(data["is_first"], bool)
    later = first[:, length:]  # steps after the window's last one
    ended = np.cumsum(later, axis=1) > 0
    reach = np.where(ended.any(1), ended.argmax(1), horizon)  # last offset in the same episode
    offset = np.floor(rng.random(batch_size) * (reach + 1)).astype(np.int64)
    rows = np.arange(batch_size)
    out = {k: v[:, :length] for k, v in data.items()}
    for key in keys:
        out[f"goal/{key}"] = data[key][rows, length - 1 + offset]
    out["goal_offset"] = offset
    return out
