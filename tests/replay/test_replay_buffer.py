"""In-memory semantics of worldmodels.replay.ReplayBuffer."""

import json

import numpy as np
import pytest

from worldmodels.replay import ReplayBuffer


def make_step(counter: int, stream: int = 0, episode_len: int = 7, image: bool = False) -> dict:
    step = {
        "vector": np.full(3, counter, np.float32),
        "action": np.array([counter % 5], np.int64),
        "reward": np.float32(counter * 0.5),
        "is_first": np.bool_(counter % episode_len == 0),
        "is_last": np.bool_(counter % episode_len == episode_len - 1),
        "is_terminal": np.bool_(False),
        "counter": np.int64(counter),
        "stream": np.int64(stream),
    }
    if image:
        step["image"] = np.full((8, 6, 3), counter % 256, np.uint8)
    return step


def fill(rb: ReplayBuffer, counts: dict[int, int], **kw) -> None:
    """Interleave steps over streams; stream s gets counters 0..counts[s]-1."""
    done = dict.fromkeys(counts, 0)
    while any(done[s] < counts[s] for s in counts):
        for s in counts:
            if done[s] < counts[s]:
                rb.add(make_step(done[s], s, **kw), stream=s)
                done[s] += 1


def assert_windows_consecutive(batch: dict) -> None:
    counter = batch["counter"]
    assert (np.diff(counter, axis=1) == 1).all(), counter
    assert (batch["stream"] == batch["stream"][:, :1]).all()


def test_round_trip_shapes_and_dtypes():
    rb = ReplayBuffer(1000, chunk_size=16)
    fill(rb, {0: 50, 1: 40}, image=True)
    assert len(rb) == 90 and rb.num_added == 90
    batch = rb.sample(4, 10)
    expected = make_step(0, image=True)
    assert set(batch) == set(expected)
    for key, value in expected.items():
        assert batch[key].shape == (4, 10, *value.shape), key
        assert batch[key].dtype == value.dtype, key
    assert batch["image"].dtype == np.uint8
    # stored once, as uint8
    chunk_arrays = [c.data["image"] for inc in rb._incs.values() for c in inc.chunks]
    assert all(a.dtype == np.uint8 for a in chunk_arrays)
    # values match the step they came from
    np.testing.assert_array_equal(batch["image"][..., 0, 0, 0], batch["counter"] % 256)
    np.testing.assert_array_equal(batch["vector"][..., 0], batch["counter"].astype(np.float32))
    np.testing.assert_array_equal(batch["reward"], batch["counter"] * np.float32(0.5))


def test_windows_consecutive_span_chunks_and_never_cross_streams():
    rb = ReplayBuffer(10_000, chunk_size=8)
    fill(rb, {0: 61, 1: 45, 3: 20})  # partial chunks at the end of every stream
    batch = rb.sample(256, 20)  # windows span 3-4 chunks
    assert_windows_consecutive(batch)
    # windows that include the partial (in-memory) chunk are reachable
    assert (batch["counter"][:, -1] == 60).any()


def test_is_first_preserved():
    rb = ReplayBuffer(1000, chunk_size=8)
    fill(rb, {0: 100})
    batch = rb.sample(64, 15)
    np.testing.assert_array_equal(batch["is_first"], batch["counter"] % 7 == 0)
    np.testing.assert_array_equal(batch["is_last"], batch["counter"] % 7 == 6)


def test_sampling_is_uniform_over_start_positions():
    rb = ReplayBuffer(1000, chunk_size=4, seed=3)
    fill(rb, {0: 10, 1: 30})  # 6 + 26 = 32 valid starts for length 5
    batch = rb.sample(32_000, 5)
    starts = batch["stream"][:, 0] * 100 + batch["counter"][:, 0]
    values, counts = np.unique(starts, return_counts=True)
    assert len(values) == 32
    assert counts.min() > 850 and counts.max() < 1150, counts


def test_add_batch_routes_rows_to_streams():
    rb = ReplayBuffer(1000, chunk_size=4)
    for t in range(12):
        steps = [make_step(t, s) for s in (5, 2, 9)]
        batch = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        rb.add_batch(batch, streams=[5, 2, 9])
    for t in range(6):
        steps = [make_step(100 + t, s) for s in (0, 1)]
        rb.add_batch({k: np.stack([s[k] for s in steps]) for k in steps[0]})
    assert len(rb) == 3 * 12 + 2 * 6
    out = rb.sample(200, 6)
    assert_windows_consecutive(out)
    assert set(np.unique(out["stream"])) == {0, 1, 2, 5, 9}
    with pytest.raises(ValueError, match="stream ids"):
        rb.add_batch(batch, streams=[0, 1])


def test_capacity_evicts_oldest_chunks_and_keeps_index_consistent():
    rb = ReplayBuffer(100, chunk_size=10)
    fill(rb, {0: 1000})
    assert 90 <= len(rb) <= 100
    assert rb.num_added == 1000
    # exactly one window covers everything held: it starts at the oldest remaining step
    whole = rb.sample(3, len(rb))
    assert_windows_consecutive(whole)
    assert (whole["counter"][:, 0] == 1000 - len(rb)).all()
    assert (whole["counter"][:, -1] == 999).all()
    # several streams at once
    rb = ReplayBuffer(200, chunk_size=10)
    fill(rb, {0: 700, 1: 333, 2: 50})
    assert len(rb) <= 200
    batch = rb.sample(500, 12)
    assert_windows_consecutive(batch)
    assert batch["counter"][batch["stream"] == 0].min() >= 700 - 200


def test_chunk_size_is_capped_by_capacity():
    rb = ReplayBuffer(100)  # default chunk_size 1024 would make eviction drop everything
    fill(rb, {0: 1000})
    assert rb.chunk_size == 25
    assert 75 <= len(rb) <= 100


def test_not_enough_data_error_message():
    rb = ReplayBuffer(1000, chunk_size=4)
    with pytest.raises(ValueError, match="replay holds 0 steps"):
        rb.sample(2, 5)
    fill(rb, {0: 4, 1: 4, 2: 3})
    with pytest.raises(ValueError, match="replay holds 11 steps.*no stream has 5 consecutive"):
        rb.sample(2, 5)
    with pytest.raises(ValueError, match="collect more before training"):
        rb.sample(2, 5)
    assert rb.sample(2, 4)["counter"].shape == (2, 4)
    with pytest.raises(ValueError):
        rb.sample(0, 4)


def test_step_validation():
    rb = ReplayBuffer(1000, chunk_size=4)
    rb.add(make_step(0, image=True))
    bad = make_step(1, image=True)
    del bad["reward"]
    with pytest.raises(ValueError, match="keys"):
        rb.add(bad)
    bad = make_step(1, image=True)
    bad["image"] = bad["image"].astype(np.float32)
    with pytest.raises(TypeError, match="image"):
        rb.add(bad)
    bad = make_step(1, image=True)
    bad["vector"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="shape"):
        rb.add(bad)
    with pytest.raises(ValueError, match=">= 0"):
        rb.add(make_step(1, image=True), stream=-1)
    # Python scalars cast into the stored dtype
    ok = make_step(1, image=True)
    ok["reward"] = 2.0
    rb.add(ok)
    assert len(rb) == 2


def test_arrays_are_copied():
    rb = ReplayBuffer(1000, chunk_size=4)
    step = make_step(0)
    rb.add(step)
    step["vector"][:] = -1
    rb.add(make_step(1))
    assert rb.sample(1, 2)["vector"][0, 0, 0] == 0


def test_state_dict_is_json_and_sampling_resumes_identically():
    a = ReplayBuffer(1000, chunk_size=8, seed=7)
    b = ReplayBuffer(1000, chunk_size=8, seed=123)
    for rb in (a, b):
        fill(rb, {0: 100, 1: 77})
    a.sample(5, 9)  # advance the RNG
    state = json.loads(json.dumps(a.state_dict()))
    expected = [a.sample(16, 9) for _ in range(3)]
    b.load_state_dict(state)
    got = [b.sample(16, 9) for _ in range(3)]
    for e, g in zip(expected, got):
        for key in e:
            np.testing.assert_array_equal(e[key], g[key])
    assert b.num_added == a.num_added
    # same seed, same data -> same samples
    c = ReplayBuffer(1000, chunk_size=8, seed=7)
    d = ReplayBuffer(1000, chunk_size=8, seed=7)
    for rb in (c, d):
        fill(rb, {0: 100, 1: 77})
    np.testing.assert_array_equal(c.sample(5, 9)["counter"], d.sample(5, 9)["counter"])
