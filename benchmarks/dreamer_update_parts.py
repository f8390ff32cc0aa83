"""Where the time of one DreamerV3 update goes: CPU time per part, and the update's FLOPs.

    python benchmarks/dreamer_update_parts.py                          # size1m, fp32 and bf16
    python benchmarks/dreamer_update_parts.py --precision fp32 --threads 2 --repeats 3

Builds DreamerV3 (``--preset``, default size1m) for gym:CartPole-v1 vector observations, fills a
replay with uniformly random actions and samples one batch of ``--batch`` x ``--length``
(16 x 64, the default training batch), then times ``agent.update`` on that batch: ``--warmup``
updates first (torch.compile's first calls, allocator warm-up), then ``--updates`` timed ones,
``--repeats`` times per precision. Reported per update, median over the repeats: process CPU
time (all threads, so that other processes on a shared machine inflate it less than wall time),
wall time, and the CPU time of its parts (the world-model step; imagination of ``horizon`` steps
from every posterior; the reward/continue/value heads on the imagined states; the rest of the
actor and critic steps: their networks' forward and backward passes, returns, losses,
optimisers). ``--flops`` also counts the floating-point operations of one eager update
(``torch.utils.flop_counter``: matrix products only).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np
import torch

from worldmodels.agents import build_config
from worldmodels.agents.dreamer import DreamerAgent
from worldmodels.bench.machine import cpu_model
from worldmodels.envs import make_env
from worldmodels.replay import random_replay

PARTS = ("_train_world_model", "_imagine", "_imag_heads", "_train_behavior")
NAMES = {"_train_world_model": "world model", "_imagine": "imagination", "_imag_heads": "heads"}


def build(args, precision: str, compile_: bool) -> DreamerAgent:
    overrides = {"precision": precision, "compile": compile_}
    cfg, _ = build_config("dreamerv3", [args.preset], overrides)
    env = make_env("gym:CartPole-v1", seed=0)
    DreamerAgent.prepare(cfg, env)
    torch.manual_seed(0)
    return DreamerAgent(cfg, env.obs_space, env.act_space, "cpu")


def time_parts(agent: DreamerAgent, batch: dict, args) -> dict[str, float]:
    """CPU time (ms) of each part and of the whole update, wall time (ms), per update."""
    spent: dict[str, float] = collections.defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.process_time()
            out = fn(*a, **k)
            spent[name] += time.process_time() - t
            return out

        return wrapper

    originals = {name: getattr(agent, name) for name in PARTS}
    for name, fn in originals.items():
        setattr(agent, name, timed(name, fn))
    try:
        for _ in range(args.warmup):
            agent.update(batch)
        spent.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.updates):
            agent.update(batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        for name, fn in originals.items():
            setattr(agent, name, fn)
    n = args.updates
    out = {NAMES.get(k, k): v / n * 1e3 for k, v in spent.items() if k != "_train_behavior"}
    out["actor and critic steps"] = (
        spent["_train_behavior"] - spent["_imagine"] - spent["_imag_heads"]
    ) / n * 1e3  # fmt: skip
    out["update (CPU)"], out["update (wall)"] = cpu / n * 1e3, wall / n * 1e3
    return out


def count_flops(args, batch: dict) -> dict[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    agent = build(args, "fp32", compile_=False)
    counter = FlopCounterMode(display=False)
    with counter:
        agent.update(batch)
    ops = counter.get_flop_counts()["Global"]
    return {str(k).split(".")[-1]: v / 1e9 for k, v in ops.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="size1m")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--warmup", type=int, default=6)
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="eager (compile=false)")
    p.add_argument("--flops", action="store_true", help="count one eager update's FLOPs")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("$ python " + " ".join(sys.argv))
    print(f"hardware: {cpu_model()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
          f"torch {torch.__version__}, compile {not args.no_compile}")  # fmt: skip
    env = make_env("gym:CartPole-v1", seed=0)
    rb = random_replay(env, 2_000, np.random.default_rng(0))
    batch = rb.sample(args.batch, args.length)
    if args.flops:
        flops = count_flops(args, batch)
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(flops.items(), key=lambda x: -x[1]))
        print(f"GFLOP per update: {sum(flops.values()):.1f} ({parts})")
    rows = {}
    for precision in args.precision:
        agent = build(args, precision, compile_=not args.no_compile)
        runs = [time_parts(agent, batch, args) for _ in range(args.repeats)]
        rows[precision] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{precision}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in rows[precision].items()))
    keys = list(next(iter(rows.values())))
    print(f"\nms per update ({args.preset}, batch {args.batch} x {args.length}, median of "
          f"{args.repeats} x {args.updates} updates)\n")  # fmt: skip
    print("| part | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{rows[p][k]:.0f}" for p in rows) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
