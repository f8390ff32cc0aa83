"""Prioritised sampling: P(i) = p_i^a / sum p^a and w_i = (N P(i))^-b / max w against a hand
computation; priorities survive state_dict -> reload from disk."""

import numpy as np
import pytest

from worldmodels.replay import ReplayBuffer


def _filled(directory=None, steps=4, chunk=2):
    rb = ReplayBuffer(100, directory, chunk_size=chunk, seed=0)
    for t in range(steps):
        rb.add({"counter": np.int64(t)})
    return rb


def test_priorities_and_importance_weights_hand_computed():
    rb = _filled()
    # One incarnation (created id 0), window length 1: the starts are positions 0..3.
    rb.update_priorities(np.array([[0, 0], [0, 1], [0, 2], [0, 3]]), np.array([1.0, 2.0, 3.0, 4.0]))
    alpha, beta = 0.5, 0.5
    p = np.array([1.0, 2.0, 3.0, 4.0]) ** alpha
    P = p / p.sum()
    batch = rb.sample(20_000, 1, priority_alpha=alpha, priority_beta=beta)
    idx = batch["counter"][:, 0]
    np.testing.assert_array_equal(batch["index"][:, 1], idx)
    assert (batch["index"][:, 0] == 0).all()
    freq = np.bincount(idx, minlength=4) / len(idx)
    np.testing.assert_allclose(freq, P, atol=0.015)
    w = (4 * P[idx]) ** -beta
    np.testing.assert_allclose(batch["weight"], w / w.max(), rtol=1e-6)
    # Uniform sampling keeps its old keys (and its old draws).
    assert set(rb.sample(3, 2)) == {"counter"}


def test_windows_and_new_steps_get_max_priority():
    rb = _filled(steps=5)
    rb.update_priorities(np.array([[0, 1]]), np.array([9.0]))
    rb.add({"counter": np.int64(5)})  # new data: the largest priority so far (9)
    batch = rb.sample(4000, 3, priority_alpha=1.0, priority_beta=0.0)
    # Steps 0..5; windows of 3 start at 0..3 with priorities 1, 9, 1, 1 (step 5, priority 9,
    # starts no window yet).
    freq = np.bincount(batch["counter"][:, 0], minlength=4) / 4000
    np.testing.assert_allclose(freq, np.array([1, 9, 1, 1]) / 12, atol=0.02)
    assert np.all(batch["weight"] == 1.0)  # beta = 0


def test_bad_priorities_refused():
    rb = _filled()
    with pytest.raises(ValueError, match="> 0"):
        rb.update_priorities(np.array([[0, 0]]), np.array([0.0]))
    rb.update_priorities(np.array([[7, 0], [0, 99]]), np.array([2.0, 2.0]))  # unknown: skipped


def test_priorities_survive_resume(tmp_path):
    rb = _filled(tmp_path, steps=6, chunk=2)
    rb.update_priorities(np.array([[0, 0], [0, 3]]), np.array([5.0, 7.0]))
    rb.flush()
    state = rb.state_dict()
    before = rb.sample(64, 2, priority_alpha=1.0, priority_beta=1.0)
    resumed = ReplayBuffer(100, tmp_path, chunk_size=2, seed=0)
    resumed.load_state_dict(state)
    after = resumed.sample(64, 2, priority_alpha=1.0, priority_beta=1.0)
    np.testing.assert_array_equal(before["counter"], after["counter"])
    np.testing.assert_allclose(before["weight"], after["weight"])
