"""Throughput bounds of worldmodels.replay.ReplayBuffer (generous, to avoid flakiness)."""

import time

import numpy as np

from worldmodels.replay import ReplayBuffer


def test_sample_and_add_speed():
    rb = ReplayBuffer(200_000, chunk_size=1024)
    n_steps, n_streams = 100_000, 8
    vector = np.random.default_rng(0).standard_normal((n_steps, 16)).astype(np.float32)
    action = np.zeros((n_steps, 4), np.float32)
    start = time.perf_counter()
    for i in range(n_steps):
        rb.add(
            {
                "vector": vector[i],
                "action": action[i],
                "reward": np.float32(0.0),
                "is_first": np.bool_(i % 1000 < n_streams),
                "is_last": np.bool_(False),
                "is_terminal": np.bool_(False),
            },
            stream=i % n_streams,
        )
    add_us = (time.perf_counter() - start) / n_steps * 1e6
    assert len(rb) == n_steps

    rb.sample(16, 64)  # warm up
    n_samples = 50
    start = time.perf_counter()
    for _ in range(n_samples):
        batch = rb.sample(16, 64)
    sample_ms = (time.perf_counter() - start) / n_samples * 1e3
    print(f"\nreplay: add {add_us:.1f} us/step, sample(16, 64) {sample_ms:.3f} ms")
    assert batch["vector"].shape == (16, 64, 16)
    assert sample_ms < 20, f"sample(16, 64) took {sample_ms:.2f} ms on average"
    assert add_us < 500, f"add took {add_us:.1f} us per step"
