"""MCTS search overhead, ours vs LightZero's C++ MuZero tree: simulations per second.

    bash benchmarks/peers/lightzero/install.sh
    PYTHONPATH=src runs/peers/lightzero-venv/bin/python benchmarks/peers/lightzero/mcts_speed.py \
        --batch 1 16 256 --simulations 50 --repeats 5

One process, run by the LightZero venv's python (install.sh builds it), imports both sides:
LightZero from the venv and ours (`worldmodels.planners`, torch and numpy only) from src/ via
PYTHONPATH. Both use the same torch (2.13.0 CPU) and the same thread count (--threads).

Both searches get the same root (prior logits, value, latent) and the same near-free model, a fixed
random linear map of the latent (as benchmarks/mcts_speed.py): next = tanh(W[a] @ latent) with
W [A, L, L], reward = next[0], value = next[1], prior logits = next[:A], discount 0.997. So the
figures compare the search machinery, not a network.

- ours: `worldmodels.planners.muzero_search` (root Dirichlet noise, pUCT with min-max Q, the
  batched tensor tree, action selection), the whole call timed.
- LightZero (ctree_muzero, C++ via pybind): what `MuZeroPolicy._forward_collect` does around the
  search, timed as one: Dirichlet noise per root (np.random.dirichlet), `Roots(B, legal)`,
  `roots.prepare(noise_weight, noises, rewards, logits, to_play)`, then LightZero's own
  `MuZeroMCTSCtree.search` (per simulation: `batch_traverse` in C++, the leaf latents gathered in
  Python, the model's `recurrent_inference`, LightZero's inverse value transform, `.tolist()`,
  `batch_backpropagate` in C++), then `roots.get_distributions()` and `roots.get_values()`.
  `categorical_distribution=False`, so the model's scalar outputs go through only the h^-1
  value rescaling that LightZero's search always applies (two [B, 1] elementwise ops).

Same settings both sides: num_simulations, pb_c_init 1.25, pb_c_base 19652, discount 0.997, root
Dirichlet alpha 0.25 with weight 0.25, all actions legal. The two sides alternate within each
repeat (ours, LightZero, ours, ...) so that a shared machine's load hits both alike; one untimed
warm-up each. Reported: sims/s = B * num_simulations / wall time per search, median and min..max
over the repeats, the process CPU time per search (median), and ours/LightZero of the medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

from worldmodels.bench.machine import cpu_model
from worldmodels.planners import MCTSConfig, RootOutput, muzero_search

DISCOUNT = 0.997
PB_C_INIT = 1.25
PB_C_BASE = 19652.0
DIRICHLET_ALPHA = 0.25
NOISE_WEIGHT = 0.25


def make_weight(latent: int, actions: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(actions, latent, latent, generator=g) / latent**0.5


def step(weight: torch.Tensor, emb: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The shared model: next latent = tanh(W[a] @ latent)."""
    return torch.tanh(torch.bmm(weight[action], emb.unsqueeze(-1)).squeeze(-1))


def ours_recurrent_fn(weight: torch.Tensor, actions: int):
    def recurrent_fn(emb: torch.Tensor, action: torch.Tensor):
        nxt = step(weight, emb, action)
        return nxt[:, 0], torch.full_like(nxt[:, 0], DISCOUNT), nxt[:, :actions], nxt[:, 1], nxt

    return recurrent_fn


class LightZeroModel(torch.nn.Module):
    """What MuZeroMCTSCtree.search calls: recurrent_inference(latent [B, L], action [B]) ->
    MZNetworkOutput(value [B, 1], reward [B, 1], policy_logits [B, A], latent_state [B, L])."""

    def __init__(self, weight: torch.Tensor, actions: int) -> None:
        super().__init__()
        self.weight = weight
        self.actions = actions

    def recurrent_inference(self, latent: torch.Tensor, action: torch.Tensor):
        from lzero.model.common import MZNetworkOutput

        nxt = step(self.weight, latent, action)
        return MZNetworkOutput(nxt[:, 1:2], nxt[:, 0:1], nxt[:, : self.actions], nxt)


class LightZeroSearch:
    """Roots + prepare + MuZeroMCTSCtree.search + read-out, as MuZeroPolicy._forward_collect."""

    def __init__(self, simulations: int, actions: int, weight: torch.Tensor) -> None:
        from easydict import EasyDict
        from lzero.mcts.tree_search.mcts_ctree import MuZeroMCTSCtree

        cfg = EasyDict(
            num_simulations=simulations,
            discount_factor=DISCOUNT,
            pb_c_base=PB_C_BASE,
            pb_c_init=PB_C_INIT,
            root_dirichlet_alpha=DIRICHLET_ALPHA,
            root_noise_weight=NOISE_WEIGHT,
            value_delta_max=0.01,
            env_type="not_board_games",
            device="cpu",
            model=EasyDict(support_scale=300, categorical_distribution=False),
        )
        self.mcts = MuZeroMCTSCtree(cfg)
        self.model = LightZeroModel(weight, actions)
        self.actions = actions

    def __call__(self, logits: np.ndarray, values: np.ndarray, latent: np.ndarray):
        B = latent.shape[0]
        legal = [list(range(self.actions)) for _ in range(B)]
        noises = [
            np.random.dirichlet([DIRICHLET_ALPHA] * self.actions).astype(np.float32).tolist()
            for _ in range(B)
        ]
        to_play = [-1] * B
        roots = self.mcts.roots(B, legal)
        roots.prepare(NOISE_WEIGHT, noises, [0.0] * B, logits.tolist(), to_play)
        self.mcts.search(roots, self.model, latent, to_play)
        return roots.get_distributions(), roots.get_values(), values


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(B: int, sims: int, walls: list[float]) -> tuple[float, float, float]:
    rates = [B * sims / t for t in walls]
    return B * sims / statistics.median(walls), min(rates), max(rates)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16, 256])
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--actions", type=int, default=9)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both sides)")
    args = p.parse_args()
    try:
        import lzero
        from lzero.mcts.ctree.ctree_muzero import mz_tree  # noqa: F401
    except ImportError as e:
        sys.exit(
            f"cannot import LightZero ({e}): run this with the LightZero venv's python "
            "(benchmarks/peers/lightzero/install.sh) and PYTHONPATH=src"
        )
    from importlib.metadata import version

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    print("$", " ".join(["PYTHONPATH=src", os.path.relpath(sys.executable)] + sys.argv))
    print(
        f"hardware: {platform.machine()} {cpu_model() or platform.processor()}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
    )
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"LightZero {version('LightZero')} ({os.path.dirname(lzero.__file__)})"
    )
    print(
        f"num_simulations {args.simulations}, actions {args.actions}, latent {args.latent}, "
        f"repeats {args.repeats} (median, min..max)\n"
    )

    weight = make_weight(args.latent, args.actions)
    ours_fn = ours_recurrent_fn(weight, args.actions)
    cfg = MCTSConfig(
        num_simulations=args.simulations,
        pb_c_init=PB_C_INIT,
        pb_c_base=PB_C_BASE,
        root_dirichlet_alpha=DIRICHLET_ALPHA,
        root_exploration_fraction=NOISE_WEIGHT,
    )
    theirs = LightZeroSearch(args.simulations, args.actions, weight)

    print(
        "| batch | ours sims/s | LightZero ctree sims/s | ours / LightZero "
        "| ours CPU ms/search | LightZero CPU ms/search |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for B in args.batch:
        g = torch.Generator().manual_seed(B)
        logits = torch.randn(B, args.actions, generator=g)
        values = torch.randn(B, generator=g)
        latent = torch.randn(B, args.latent, generator=g)
        root = RootOutput(logits, values, latent)
        np_logits, np_values, np_latent = logits.numpy(), values.numpy(), latent.numpy()
        gen = torch.Generator().manual_seed(0)

        def run_ours() -> None:
            muzero_search(root, ours_fn, cfg, generator=gen)  # noqa: B023

        def run_theirs() -> None:
            theirs(np_logits, np_values, np_latent)  # noqa: B023

        # Warm-up, and a check that both trees received every simulation.
        visits = muzero_search(root, ours_fn, cfg, generator=gen).visit_counts.sum(-1)
        dists, _, _ = theirs(np_logits, np_values, np_latent)
        assert visits.tolist() == [args.simulations] * B, visits
        assert [sum(d) for d in dists] == [args.simulations] * B, dists
        ours_w, ours_c, lz_w, lz_c = [], [], [], []
        for _ in range(args.repeats):
            w, c = timed(run_ours)
            ours_w.append(w), ours_c.append(c)
            w, c = timed(run_theirs)
            lz_w.append(w), lz_c.append(c)
        o, omin, omax = summary(B, args.simulations, ours_w)
        t, tmin, tmax = summary(B, args.simulations, lz_w)
        print(
            f"| {B} | {o:,.0f} ({omin:,.0f}..{omax:,.0f}) | {t:,.0f} ({tmin:,.0f}..{tmax:,.0f}) "
            f"| {o / t:.2f} | {1e3 * statistics.median(ours_c):.1f} "
            f"| {1e3 * statistics.median(lz_c):.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
