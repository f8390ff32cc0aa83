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


# ---------------------------------------------------------------- the sum tree inside the buffer


def brute_force(rb, length, alpha):
    """{(created, position): p^alpha} of every valid window start, from the chunks."""
    out = {}
    for inc in rb._incs.values():
        if not inc.chunks:
            continue
        end = inc.chunks[-1].start + inc.chunks[-1].length
        for chunk in inc.chunks:
            for row in range(chunk.length):
                if chunk.start + row + length <= end:
                    out[(inc.created, chunk.start + row)] = chunk.priority[row] ** alpha
    return out


def tree_contents(rb):
    """{(created, position): leaf} of every positive leaf of the buffer's tree."""
    out = {}
    leaves = rb._tree.leaves
    for leaf in np.flatnonzero(leaves).tolist():
        slot, row = divmod(leaf, rb._block)
        chunk = rb._slot_chunk[slot]
        assert chunk is not None and chunk.slot == slot and row < chunk.length
        out[(chunk.inc.created, chunk.start + row)] = leaves[leaf]
    return out


def assert_tree_exact(rb, length, alpha):
    rb._apply_pending()  # priority updates reach the tree at the next prioritised call
    expected, got = brute_force(rb, length, alpha), tree_contents(rb)
    assert got.keys() == expected.keys()
    keys = list(expected)
    np.testing.assert_allclose([got[k] for k in keys], [expected[k] for k in keys], rtol=1e-12)
    assert rb._tree_count == len(expected)  # N of the importance weights


@pytest.mark.parametrize("seed", range(6))
def test_tree_holds_exactly_the_valid_starts_through_adds_evictions_and_flushes(seed, tmp_path):
    rng = np.random.default_rng(seed)
    capacity, chunk = int(rng.integers(30, 300)), int(rng.integers(1 + 5 * (seed % 2), 25))
    directory = tmp_path if seed % 2 else None  # flush writes short chunks only with a dir
    rb = ReplayBuffer(capacity, directory, chunk_size=chunk, seed=seed)
    length, alpha = int(rng.integers(1, 10)), 0.6
    counters: dict[int, int] = {}
    for _ in range(500):
        # mostly streams 0..2; now and then a new stream, which needs a new partial block
        stream = int(rng.integers(0, 3)) if rng.random() < 0.97 else int(rng.integers(3, 40))
        counters[stream] = counters.get(stream, -1) + 1
        rb.add({"counter": np.int64(counters[stream]), "stream": np.int64(stream)}, stream)
        if rng.random() < 0.02:
            rb.flush()
        if rng.random() < 0.01:
            length = int(rng.integers(1, 10))
        if rng.random() < 0.01:
            alpha = float(rng.choice([0.4, 0.6, 1.0]))
        if rng.random() < 0.15:
            try:
                batch = rb.sample(8, length, priority_alpha=alpha, priority_beta=0.5)
            except ValueError as e:
                assert "no stream has" in str(e)
                continue
            assert (np.diff(batch["counter"], axis=1) == 1).all()
            assert (batch["stream"] == batch["stream"][:, :1]).all()
            assert_tree_exact(rb, length, alpha)
            rb.update_priorities(batch["index"], rng.random(8) * 4 + 0.01)
            if rng.random() < 0.3:  # else the updates reach the tree with the next sample
                assert_tree_exact(rb, length, alpha)


def test_last_steps_of_a_stream_start_no_window_until_followed():
    rb = ReplayBuffer(1000, chunk_size=4, seed=1)
    for t in range(10):
        rb.add({"counter": np.int64(t)})
    rb.update_priorities(np.array([[0, 9]]), np.array([1000.0]))  # step 9 cannot start yet
    batch = rb.sample(3000, 3, priority_alpha=1.0, priority_beta=1.0)
    assert batch["counter"][:, 0].max() == 7  # starts 0..7
    # N = 8 valid starts; step 9 has priority 1000 but no weight in P
    np.testing.assert_allclose(np.bincount(batch["counter"][:, 0]) / 3000, 1 / 8, atol=0.03)
    np.testing.assert_array_equal(batch["weight"], 1.0)
    for t in (10, 11):
        rb.add({"counter": np.int64(t)})
    batch = rb.sample(3000, 3, priority_alpha=1.0, priority_beta=1.0)
    freq = np.bincount(batch["counter"][:, 0], minlength=10) / 3000
    P = np.r_[np.ones(9), 1000.0]  # starts 0..9 (steps 10, 11 still follow no window)
    P /= P.sum()
    np.testing.assert_allclose(freq, P, atol=0.01)
    idx = batch["counter"][:, 0]
    w = (10 * P[idx]) ** -1.0
    np.testing.assert_allclose(batch["weight"], w / w.max(), rtol=1e-6)


def test_frequencies_over_streams_chunks_and_evictions():
    rng = np.random.default_rng(4)
    rb = ReplayBuffer(120, chunk_size=8, seed=2)
    for t in range(400):
        rb.add({"counter": np.int64(t // 3), "stream": np.int64(t % 3)}, stream=t % 3)
        if t % 17 == 0 and t > 30:
            batch = rb.sample(8, 4, priority_alpha=0.7, priority_beta=0.5)
            rb.update_priorities(batch["index"], rng.random(8) * 5 + 0.1)
    expected = brute_force(rb, 4, 0.7)
    keys = sorted(expected)
    P = np.array([expected[k] for k in keys])
    P /= P.sum()
    n = 60_000
    batch = rb.sample(n, 4, priority_alpha=0.7, priority_beta=0.5)
    drawn = [tuple(x) for x in batch["index"].tolist()]
    pos = {k: i for i, k in enumerate(keys)}
    counts = np.bincount([pos[d] for d in drawn], minlength=len(keys))
    tol = 5 * np.sqrt(n * P * (1 - P)) + 1
    assert np.all(np.abs(counts - n * P) <= tol)
    idx = np.array([pos[d] for d in drawn])
    w = (len(keys) * P[idx]) ** -0.5
    np.testing.assert_allclose(batch["weight"], w / w.max(), rtol=1e-5)


def test_tree_is_built_once_and_kept_up_to_date():
    rb = ReplayBuffer(2000, chunk_size=16, seed=0)
    builds = []
    build = rb._build_tree
    rb._build_tree = lambda *a: builds.append(a) or build(*a)
    rng = np.random.default_rng(0)
    for t in range(6000):  # three times the capacity: evictions all along
        rb.add({"counter": np.int64(t // 4)}, stream=t % 4)
        if t % 8 == 7 and t > 100:
            batch = rb.sample(4, 5, priority_alpha=0.6, priority_beta=0.4)
            rb.update_priorities(batch["index"], rng.random(4) + 0.1)
    assert len(builds) == 1
    assert_tree_exact(rb, 5, 0.6)
    rb.sample(4, 6, priority_alpha=0.6)  # another length: one rebuild
    rb.sample(4, 6, priority_alpha=0.5)  # another alpha: one rebuild
    rb.sample(4, 6, priority_alpha=0.5)
    assert len(builds) == 3
    assert_tree_exact(rb, 6, 0.5)


def test_repeated_index_last_priority_wins():
    rb = _filled()
    rb.sample(1, 1, priority_alpha=1.0)  # the tree exists
    rb.update_priorities(np.array([[0, 2], [0, 2], [0, 1]]), np.array([5.0, 3.0, 2.0]))
    assert rb._incs[0].chunks[1].priority[0] == 3.0
    assert_tree_exact(rb, 1, 1.0)
    assert rb._tree.total == 1.0 + 2.0 + 3.0 + 1.0


def test_resume_with_evictions_draws_the_same_windows(tmp_path):
    """The tree layout depends only on the held chunks: a buffer reloaded from the flushed
    directory, with the state, draws what the original draws."""
    import copy

    rng = np.random.default_rng(0)
    rb = ReplayBuffer(300, tmp_path, chunk_size=16, seed=1)
    for t in range(1000):
        rb.add({"counter": np.int64(t), "stream": np.int64(t % 3)}, stream=t % 3)
        if t % 10 == 9 and t > 60:
            batch = rb.sample(8, 5, priority_alpha=0.6, priority_beta=0.4)
            rb.update_priorities(batch["index"], rng.random(8) * 3 + 1e-3)
    rb.flush()
    state = copy.deepcopy(rb.state_dict())
    expected = [rb.sample(32, 5, priority_alpha=0.6, priority_beta=0.4) for _ in range(3)]
    resumed = ReplayBuffer(300, tmp_path, chunk_size=16, seed=5)
    resumed.load_state_dict(state)
    for e in expected:
        got = resumed.sample(32, 5, priority_alpha=0.6, priority_beta=0.4)
        for key in ("counter", "stream", "weight"):
            np.testing.assert_array_equal(e[key], got[key])


def test_bad_exponents_refused():
    rb = _filled()
    for kw in ({"priority_alpha": -0.5}, {"priority_alpha": np.nan}, {"priority_beta": -1.0}):
        with pytest.raises(ValueError, match="priority_"):
            rb.sample(2, 1, **kw)
    with pytest.raises(ValueError, match="no stream has 5 consecutive"):
        rb.sample(2, 5, priority_alpha=0.6)


def test_held_back_updates_stay_bounded_and_reach_the_tree():
    rb = ReplayBuffer(1000, chunk_size=16, seed=0)
    for t in range(300):
        rb.add({"counter": np.int64(t)})
    rb.sample(1, 4, priority_alpha=1.0)
    rng = np.random.default_rng(0)
    for _ in range(500):  # updates without samples in between
        starts = rng.integers(0, 297, 16)
        rb.update_priorities(np.stack([np.zeros(16, np.int64), starts], 1), rng.random(16) + 0.1)
        assert len(rb._pending) <= 4096 + 16
    batch = rb.sample(4000, 4, priority_alpha=1.0)  # takes the held-back updates
    assert not rb._pending
    assert_tree_exact(rb, 4, 1.0)
    p = np.concatenate([c.priority[: c.length] for c in rb._incs[0].chunks])[:297]
    freq = np.bincount(batch["counter"][:, 0], minlength=297) / 4000
    assert np.abs(freq - p / p.sum()).max() < 0.01
