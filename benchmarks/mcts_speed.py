"""Search overhead of the batched MCTS: simulations per second with a near-free recurrent_fn.

    python benchmarks/mcts_speed.py --batch 1 16 256 --simulations 50 --repeats 5

The model is a fixed random linear map of a 16-d latent (A = 9 actions), so the figures measure
the search itself (selection, expansion bookkeeping, backup), not a network. Prints the command,
the hardware, the torch version, and per batch size the median wall time per search,
simulations/s = B * num_simulations / time (median, and min..max over the repeats), and the
median process CPU time per search (steadier than wall time on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

from worldmodels.bench.machine import cpu_model
from worldmodels.planners import (
    GumbelMCTSConfig,
    MCTSConfig,
    RootOutput,
    gumbel_muzero_search,
    muzero_search,
)


def make_model(latent: int, actions: int, device: torch.device, seed: int = 0):
    """A cheap deterministic recurrent_fn: next = tanh(W[a] @ latent); heads are slices of it."""
    g = torch.Generator().manual_seed(seed)
    weight = (torch.randn(actions, latent, latent, generator=g) / latent**0.5).to(device)

    def recurrent_fn(emb: torch.Tensor, action: torch.Tensor):
        nxt = torch.tanh(torch.bmm(weight[action], emb.unsqueeze(-1)).squeeze(-1))
        discount = torch.full_like(nxt[:, 0], 0.997)
        return nxt[:, 0], discount, nxt[:, :actions], nxt[:, 1], nxt

    return recurrent_fn


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_search(search, root, recurrent_fn, cfg, gen, repeats: int, device) -> tuple[list, list]:
    """One warm-up search, then `repeats` timed ones: (wall seconds, process CPU seconds)."""
    search(root, recurrent_fn, cfg, generator=gen)
    sync(device)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        search(root, recurrent_fn, cfg, generator=gen)
        sync(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16, 256])
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--actions", type=int, default=9)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--search", choices=["muzero", "gumbel"], default="muzero")
    p.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda:N")
    args = p.parse_args()
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)

    print("$", " ".join([os.path.basename(sys.executable)] + sys.argv))
    hw = f"{platform.machine()} {platform.processor() or cpu_model()}".strip()
    print(f"hardware: {hw}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(f"torch {torch.__version__}, device {device}, search {args.search}")
    print(f"num_simulations {args.simulations}, actions {args.actions}, latent {args.latent}")

    recurrent_fn = make_model(args.latent, args.actions, device)
    if args.search == "muzero":
        search, cfg = muzero_search, MCTSConfig(num_simulations=args.simulations)
    else:
        search, cfg = gumbel_muzero_search, GumbelMCTSConfig(num_simulations=args.simulations)
    print(f"{cfg}")
    print(f"{'batch':>6} {'ms/search':>10} {'sims/s':>10} {'min..max sims/s':>20} {'cpu ms':>8}")
    for B in args.batch:
        g = torch.Generator().manual_seed(B)
        root = RootOutput(
            torch.randn(B, args.actions, generator=g).to(device),
            torch.randn(B, generator=g).to(device),
            torch.randn(B, args.latent, generator=g).to(device),
        )
        gen = torch.Generator().manual_seed(0)
        walls, cpus = time_search(search, root, recurrent_fn, cfg, gen, args.repeats, device)
        med = statistics.median(walls)
        rates = [B * args.simulations / t for t in walls]
        print(
            f"{B:>6} {1e3 * med:>10.1f} {B * args.simulations / med:>10.0f} "
            f"{min(rates):>9.0f}..{max(rates):<10.0f} {1e3 * statistics.median(cpus):>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
