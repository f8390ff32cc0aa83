"""Train another M on a World Models run's data and V, then evolve C inside it and score C.

    python benchmarks/worldmodels_m_variant.py runs/wm/takecover-cpu-0 --out runs/wm/m_exp/h512 \\
        --set mdnrnn.hidden=512

The run keeps its V, its encoded frames (``encode/series.npz``) and its first frames; only M
is new, built from the run's config with the ``--set`` overrides (``mdnrnn.*``, and
``controller.*`` for the CMA-ES stage) and trained as the run's mdnrnn stage trains it. Then:
M's open-loop error before recorded deaths (``tools/worldmodels_m_probe.py``), C evolved in M's
dream with the run's CMA-ES settings, C's mean return in ``--dream-episodes`` dreams and in
``--episodes`` real episodes. Writes ``OUT/mdn.pt`` (M's weights, reused on a rerun),
``OUT/controller.pt`` and ``OUT/result.json``; the run directory is not touched.
``--untrained-m`` is the control that shows M matters: the same CMA-ES budget inside an M with
its initial random weights (not trained, not probed). ``--reuse-m`` keeps the run's own trained
M (no ``mdnrnn.*`` overrides then), to compare ``controller.*`` settings on one M:

    python benchmarks/worldmodels_m_variant.py runs/wm/takecover-cpu-0 --reuse-m \
        --out runs/wm/m_exp/mid50 --set controller.mid_starts=0.5
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from worldmodels_dream import _Context  # noqa: E402
from worldmodels_m_probe import open_loop  # noqa: E402

from worldmodels.agents.worldmodels.agent import load_series, split_episodes  # noqa: E402
from worldmodels.config import apply_overrides, parse_set_args, validate  # noqa: E402
from worldmodels.errors import UserError  # noqa: E402
from worldmodels.train.parts import evaluate  # noqa: E402
from worldmodels.train.run import eval_envs, load_agent  # noqa: E402


class _Log(_Context):
    @staticmethod
    def log(row: dict) -> None:
        print(time.strftime("%H:%M:%S"), json.dumps({k: round(v, 4) for k, v in row.items()}))


def with_new_m(base, cfg):
    """An agent of ``cfg`` with ``base``'s V, first frames, seeds and run, and a new M (its
    initial weights drawn under torch seed 0); its data, vae and encode stages count as done."""
    torch.manual_seed(0)
    agent = type(base)(cfg, base.obs_space, base.act_space, "cpu")
    agent.vae.load_state_dict(base.vae.state_dict())
    agent.initial_z, agent.seed, agent.rng = base.initial_z, base.seed, base.rng
    agent.run_info = base.run_info
    agent.done = ["data", "vae", "encode"]
    return agent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a worldmodels run whose encode stage has finished")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides (mdnrnn.*, ...)")
    p.add_argument("--episodes", type=int, default=100, help="real episodes to score C")
    p.add_argument("--dream-episodes", type=int, default=256)
    p.add_argument("--probe-deaths", type=int, default=200, help="recorded episodes to probe")
    p.add_argument(
        "--untrained-m",
        action="store_true",
        help="the control: evolve C inside M with its initial random weights (no M training)",
    )
    p.add_argument(
        "--reuse-m", action="store_true", help="keep the run's trained M (controller.* only)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        base = load_agent(args.run, device="cpu")
        if "encode" not in base.done:
            raise UserError(f"{args.run} has no encoded frames yet; fix: let its encode stage end")
        cfg = copy.deepcopy(base.config)
        overrides = parse_set_args(args.set)
        apply_overrides(cfg, overrides)
        validate(cfg)
        if args.reuse_m and "mdnrnn" not in base.done:
            raise UserError(f"{args.run} has no trained M yet; fix: let its mdnrnn stage end")
        if args.reuse_m and any(k.startswith("mdnrnn.") for k in overrides):
            raise UserError("--reuse-m keeps the run's M; fix: drop the mdnrnn.* overrides")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    agent = with_new_m(base, cfg)
    context = _Log(args.run)
    row: dict = {"run": str(args.run), "set": args.set}
    weights = args.out / "mdn.pt"
    row["untrained_m"] = args.untrained_m
    row["reuse_m"] = args.reuse_m
    if args.untrained_m:
        print("M: initial random weights (the untrained-M control)")
    elif args.reuse_m:
        agent.mdn.load_state_dict(base.mdn.state_dict())
        print(f"M: the run's own ({args.run})")
    elif weights.exists():
        agent.mdn.load_state_dict(torch.load(weights))
        print(f"M: {weights} (trained earlier)")
    else:
        t0 = time.perf_counter()
        row["m_metrics"] = agent._fit_mdnrnn(context)
        row["m_s"] = time.perf_counter() - t0
        tmp = weights.with_suffix(".tmp")
        torch.save(agent.mdn.state_dict(), tmp)
        os.replace(tmp, weights)
    agent.done.append("mdnrnn")
    tau = cfg.controller.temperature
    episodes = split_episodes(load_series(agent.series_path(args.run)))[: args.probe_deaths]
    err, n, _ = open_loop(agent, episodes, 24, 24, tau, 1) if not args.untrained_m else (0, 0, 0)
    if n:  # runs whose episodes never end in a death have nothing to probe
        names = ("most_likely", "sampled", "hold")
        row["open_loop"] = {"deaths": n, **{k: e.tolist() for k, e in zip(names, err)}}
        steps = [f"{err[0, k]:.0f}/{err[1, k]:.0f}/{err[2, k]:.0f}" for k in (0, 3, 6, 9, 12)]
        print("open loop, steps 1/4/7/10/13 (most likely / sampled / hold):", steps)
    t0 = time.perf_counter()
    agent._evolve(context)
    row["evolve_s"] = time.perf_counter() - t0
    agent.done.append("controller")
    torch.save(agent.controller, args.out / "controller.pt")
    params = agent.controller[None].cpu().numpy()
    dream = agent.dream_fitness(params, args.dream_episodes, tau, seed=123_457)
    row["dream_return"] = float(dream[0])
    envs = eval_envs(agent.run_info, args.episodes)
    real = evaluate(agent, envs, args.episodes, seed=agent.run_info.seed + 50_000)
    envs.close()
    row |= {"tau": tau, "real_return": real["return_mean"], "real_std": real["return_std"],
            "real_episodes": args.episodes}  # fmt: skip
    (args.out / "result.json").write_text(json.dumps(row, indent=1))
    print(json.dumps({k: v for k, v in row.items() if k not in ("open_loop", "m_metrics")}))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
