"""Replay sampling cost against the number of stored steps, and resident memory over a long run.

    python benchmarks/replay_sampling.py                      # capacities 20k, 200k, 2M
    python benchmarks/replay_sampling.py --memory             # RSS while adding 2x capacity

Sampling mode: for each capacity, a ``ReplayBuffer(capacity, chunk_size=1024)`` is filled to
capacity through ``add_batch`` with 8 streams of small vector steps (``vector`` 8 float32,
``reward`` float32, ``is_first`` / ``is_last`` / ``is_terminal`` bool), then ``sample(16, 64)``
is timed in three modes:

- ``uniform``: ``sample(16, 64)``;
- ``prioritised``: ``sample(16, 64, priority_alpha=0.6, priority_beta=0.4)`` followed by
  ``update_priorities`` with fresh random priorities, as the MuZero agent does each update;
- ``prioritised+add``: the same with one ``add_batch`` of 8 steps (one per stream) before each
  sample, so new steps enter the tree and full chunks are evicted as in training.

Each mode runs ``--blocks`` blocks of ``--samples`` iterations after a warm-up (the first
prioritised call builds the sum tree; its time is printed apart); the table gives the wall time
per iteration of the fastest block (min: the least disturbed by other processes on a shared
machine) and of the median block, the fastest block's time per window (/16) and process CPU
time per iteration, and, per mode, the ratios of the largest capacity to the smallest.
``--impl FILE`` loads ``ReplayBuffer`` from another standalone ``buffer.py`` (e.g. an older
version, written out with ``git show REV:src/worldmodels/replay/buffer.py > old.py``) to
compare against.

Memory mode: a ``ReplayBuffer(--memory-capacity)`` receives twice its capacity in steps of a
64x64x3 uint8 ``image`` plus an 8-float ``vector`` (8 streams through ``add_batch``), with a
prioritised ``sample(16, 64)`` + ``update_priorities`` every ``--sample-every`` steps; VmRSS from
/proc/self/status is printed at intervals, and the spread (max - min) / min of the readings taken
once the replay is full must stay within 5 %.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from worldmodels.bench.machine import cpu_model

STREAMS = 8
CHUNK = 1024
BATCH = 16
LENGTH = 64
ALPHA = 0.6
BETA = 0.4


def rss_mib() -> float:
    """Resident set size of this process in MiB (VmRSS of /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def load_buffer_class(impl: str | None):
    """``ReplayBuffer`` from worldmodels, or from the standalone module file ``impl``."""
    if impl is None:
        from worldmodels.replay import ReplayBuffer

        return ReplayBuffer
    spec = importlib.util.spec_from_file_location("replay_impl", impl)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load a module from {impl}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ReplayBuffer


def vector_steps(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` rows of small vector steps (one per stream): {key: [n, ...]}."""
    return {
        "vector": rng.standard_normal((n, 8)).astype(np.float32),
        "reward": rng.standard_normal(n).astype(np.float32),
        "is_first": np.zeros(n, bool),
        "is_last": np.zeros(n, bool),
        "is_terminal": np.zeros(n, bool),
    }


def fill(rb, steps: int, rng: np.random.Generator) -> float:
    """Add ``steps`` vector steps over 8 streams through ``add_batch``; returns seconds."""
    block = vector_steps(rng, 4096 * STREAMS)  # reused rows: the content does not matter
    start = time.perf_counter()
    for i in range(steps // STREAMS):
        j = (i % 4096) * STREAMS
        rb.add_batch({k: v[j : j + STREAMS] for k, v in block.items()})
    return time.perf_counter() - start


def time_mode(rb, mode: str, samples: int, blocks: int, rng) -> tuple[float, float, float]:
    """Seconds per iteration of ``mode``: (fastest block's wall, median block's wall, fastest
    block's CPU) over ``blocks`` blocks of ``samples`` iterations."""
    new = vector_steps(rng, STREAMS)
    prioritised = mode != "uniform"

    def once() -> None:
        if mode == "prioritised+add":
            rb.add_batch(new)
        if prioritised:
            batch = rb.sample(BATCH, LENGTH, priority_alpha=ALPHA, priority_beta=BETA)
            rb.update_priorities(batch["index"], rng.random(BATCH) + 1e-3)
        else:
            rb.sample(BATCH, LENGTH)

    for _ in range(max(3, samples // 10)):
        once()
    walls, cpus = [], []
    for _ in range(blocks):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(samples):
            once()
        walls.append((time.perf_counter() - wall) / samples)
        cpus.append((time.process_time() - cpu) / samples)
    return min(walls), statistics.median(walls), min(cpus)


def sampling(args, ReplayBuffer) -> None:
    modes = ["uniform", "prioritised", "prioritised+add"]
    print(
        f"sample({BATCH}, {LENGTH}); {STREAMS} streams, chunk {CHUNK}; prioritised: alpha {ALPHA}, "
        f"beta {BETA}, update_priorities after each sample; {args.blocks} blocks of "
        f"{args.samples} iterations; min = fastest block, med = median block"
    )
    print()
    print(
        "| capacity | mode | ms / iteration, min | ms / iteration, med | us / window, min | "
        "CPU ms / iteration, min | fill s | first prioritised call ms |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    results: dict[tuple[int, str], tuple[float, float, float]] = {}
    for capacity in args.capacities:
        rng = np.random.default_rng(0)
        rb = ReplayBuffer(capacity, chunk_size=CHUNK, seed=0)
        fill_s = fill(rb, capacity, rng)
        start = time.perf_counter()
        rb.sample(BATCH, LENGTH, priority_alpha=ALPHA, priority_beta=BETA)
        first_ms = 1e3 * (time.perf_counter() - start)
        for mode in modes:
            wall, median, cpu = time_mode(rb, mode, args.samples, args.blocks, rng)
            results[(capacity, mode)] = (wall, median, cpu)
            print(
                f"| {capacity:,} | {mode} | {1e3 * wall:.3f} | {1e3 * median:.3f} | "
                f"{1e6 * wall / BATCH:.1f} | {1e3 * cpu:.3f} | {fill_s:.1f} | {first_ms:.1f} |",
                flush=True,
            )
        del rb
    lo, hi = min(args.capacities), max(args.capacities)
    if lo != hi:
        print()
        print(f"| mode | ratio {hi:,} / {lo:,}: wall, min | wall, med | CPU, min |")
        print("|---|---:|---:|---:|")
        for mode in modes:
            ratios = [h / l for h, l in zip(results[(hi, mode)], results[(lo, mode)])]
            print(f"| {mode} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")


def memory(args, ReplayBuffer) -> int:
    capacity = args.memory_capacity
    total = 2 * capacity
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, STREAMS, 64, 64, 3), dtype=np.uint8)
    vectors = rng.standard_normal((64, STREAMS, 8)).astype(np.float32)
    rb = ReplayBuffer(capacity, chunk_size=CHUNK, seed=0)
    every = max(STREAMS, args.sample_every)
    interval = max(STREAMS, args.report_every)
    print(
        f"capacity {capacity:,}, adding {total:,} steps (64x64x3 uint8 image + 8 float32) over "
        f"{STREAMS} streams, chunk {CHUNK}; prioritised sample({BATCH}, {LENGTH}) + "
        f"update_priorities every {every} steps"
    )
    print()
    print("| steps added | held | VmRSS MiB | s |")
    print("|---:|---:|---:|---:|")
    full_readings = []
    start = time.perf_counter()
    added = 0
    next_report = interval
    while added < total:
        i = (added // STREAMS) % 64
        rb.add_batch({"image": images[i], "vector": vectors[i]})
        added += STREAMS
        if added % every == 0 and len(rb) >= LENGTH * STREAMS:
            batch = rb.sample(BATCH, LENGTH, priority_alpha=ALPHA, priority_beta=BETA)
            rb.update_priorities(batch["index"], rng.random(BATCH) + 1e-3)
        if added >= next_report:
            next_report += interval
            rss = rss_mib()
            if added >= capacity:  # the replay is full from here on
                full_readings.append(rss)
            print(f"| {added:,} | {len(rb):,} | {rss:.0f} | {time.perf_counter() - start:.1f} |")
    if not full_readings:
        print("\nno readings once full: lower --report-every")
        return 1
    lo, hi = min(full_readings), max(full_readings)
    spread = (hi - lo) / lo
    verdict = "flat" if spread <= 0.05 else "NOT flat"
    print()
    print(
        f"once full ({len(full_readings)} readings): VmRSS {lo:.0f} .. {hi:.0f} MiB, spread "
        f"{100 * spread:.2f} % ({verdict}, limit 5 %); wall {time.perf_counter() - start:.1f} s"
    )
    return 0 if spread <= 0.05 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capacities", type=int, nargs="+", default=[20_000, 200_000, 2_000_000])
    p.add_argument("--samples", type=int, default=100, help="iterations per timed block")
    p.add_argument("--blocks", type=int, default=10, help="timed blocks per mode")
    p.add_argument("--impl", help="standalone buffer.py to take ReplayBuffer from")
    p.add_argument("--memory", action="store_true", help="resident memory over 2x capacity")
    p.add_argument("--memory-capacity", type=int, default=200_000)
    p.add_argument("--sample-every", type=int, default=64, help="memory mode: steps per sample")
    p.add_argument("--report-every", type=int, default=20_000, help="memory mode: steps per RSS")
    args = p.parse_args()

    ReplayBuffer = load_buffer_class(args.impl)
    print("$", " ".join([os.path.basename(sys.executable)] + sys.argv))
    cpu = platform.processor() or cpu_model()
    print(
        f"machine: {platform.machine()} {cpu}, {os.cpu_count()} CPUs; python "
        f"{platform.python_version()}, numpy {np.__version__}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    impl = Path(args.impl).resolve() if args.impl else "worldmodels.replay"
    print(f"ReplayBuffer from {impl}")
    start = time.perf_counter()
    rc = memory(args, ReplayBuffer) if args.memory else (sampling(args, ReplayBuffer) or 0)
    print(f"\ntotal wall time {time.perf_counter() - start:.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
