"""How far ahead must PlaNet's CEM look on gym:Pendulum-v1? CEM with the *true* dynamics.

PlaNet plans H = 12 steps ahead, and the paper always acts with an action repeat R of 2 to 8
(planet/scripts/tasks.py), so its plans span 24-96 simulator steps. On Pendulum-v1 (dt 0.05 s)
the library's default repeat for `gym:` is 1: 12 steps = 0.6 s. This script removes the learned
model from the question: the library's CEM planner (`worldmodels.planners.CEM`) scores candidate
sequences with an exact batched copy of Pendulum-v1's equations
(`worldmodels.diagnostics.pendulum`), and the actions run in the real gymnasium env (each
repeated R times, rewards summed). Whatever return it gets is an upper bound
for PlaNet with a perfect model at that horizon and repeat.

    python tools/cem_pendulum_oracle.py --repeats 1 2 4 --episodes 10

Prints one line per repeat (median, min, max and mean of the episode returns) and the command,
settings and hardware.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import gymnasium as gym
import numpy as np
import torch

from worldmodels.diagnostics.pendulum import MAX_TORQUE, oracle_objective
from worldmodels.planners import CEM, CEMConfig


def episode(repeat: int, seed: int, cfg: CEMConfig) -> float:
    env = gym.make("Pendulum-v1")
    env.reset(seed=seed)
    planner = CEM(cfg)
    gen = torch.Generator().manual_seed(seed)
    total, done = 0.0, False
    while not done:
        th, thdot = (float(x) for x in env.unwrapped.state)
        plan = planner.plan(oracle_objective(th, thdot, repeat), 1, 1, generator=gen)
        action = np.array([MAX_TORQUE * float(plan.action[0, 0])], dtype=np.float32)
        for _ in range(repeat):
            _, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
            if done:
                break
    env.close()
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--horizon", type=int, default=12)
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--no-warm-start", action="store_true", help="PlaNet's start from mean 0")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = CEMConfig(
        args.horizon, args.candidates, args.top_k, args.iterations, 1.0, not args.no_warm_start
    )
    print(f"$ python {' '.join(sys.argv)}")
    print(
        f"CEM H={cfg.horizon} J={cfg.candidates} K={cfg.top_k} I={cfg.iterations} "
        f"warm_start={cfg.warm_start}; {args.episodes} episodes (seeds 0..{args.episodes - 1}); "
        f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s)"
    )
    for repeat in args.repeats:
        t0 = time.perf_counter()
        returns = np.array([episode(repeat, s, cfg) for s in range(args.episodes)])
        print(
            f"repeat {repeat} (plans span {cfg.horizon * repeat} simulator steps): median "
            f"{np.median(returns):.1f}, min {returns.min():.1f}, max {returns.max():.1f}, "
            f"mean {returns.mean():.1f}; {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
