"""Single-frame and hindsight-goal samplers against episode ids stored in the data."""

import numpy as np
import pytest

from worldmodels.replay import ReplayBuffer
from worldmodels.replay.samplers import sample_frames, sample_with_goals


def _episodes(lengths, streams=2):
    """Episodes of the given lengths on each stream; ``vector`` = (episode id, step in it)."""
    rb = ReplayBuffer(10_000, chunk_size=16, seed=0)
    ep = 0
    for s in range(streams):
        for n in lengths:
            for t in range(n):
                rb.add(
                    {
                        "vector": np.array([ep, t], np.float32),
                        "is_first": np.bool_(t == 0),
                        "is_last": np.bool_(t == n - 1),
                    },
                    stream=s,
                )
            ep += 1
    return rb


def test_frames_are_single_steps():
    rb = _episodes([5, 7])
    frames = sample_frames(rb, 32)
    assert frames["vector"].shape == (32, 2) and frames["is_first"].shape == (32,)


def test_goals_come_from_the_last_steps_episode_within_the_horizon():
    rb = _episodes([4, 9, 3, 12])
    length, horizon = 3, 5
    out = sample_with_goals(rb, 4000, length, horizon, rng=np.random.default_rng(0))
    last = out["vector"][:, -1]
    goal = out["goal/vector"]
    offset = out["goal_offset"]
    assert out["vector"].shape == (4000, length, 2)
    np.testing.assert_array_equal(goal[:, 0], last[:, 0])  # same episode
    np.testing.assert_array_equal(goal[:, 1], last[:, 1] + offset)  # offset steps later
    assert offset.min() == 0 and offset.max() == horizon
    # Away from an episode's end every offset 0..horizon is equally likely
    far = last[:, 1] + horizon < 9 - 1
    counts = np.bincount(offset[far & (last[:, 0] % 4 == 1)], minlength=horizon + 1)
    assert counts.min() > 0.6 * counts.mean()


def test_goal_horizon_must_be_non_negative():
    with pytest.raises(ValueError, match="horizon"):
        sample_with_goals(_episodes([8]), 4, 2, -1)
