"""World Models' temperature table (Ha & Schmidhuber 2018, Table 2, at small scale) and the
control that shows M matters, from one trained run.

For every variant the controller is evolved anew inside the run's M (its V and M are kept) with
the run's CMA-ES settings, then scored twice: in the dream (mean return of ``--dream-episodes``
dreams at the variant's temperature) and in reality (``--episodes`` real episodes). Variants:
``tau=<t>`` for each ``--temperatures`` value, and ``untrained-m`` (the same CMA-ES budget inside
an M with its initial random weights, at the run's temperature). A too-certain dream (low tau)
should score far above reality: the controller exploits the model's mistakes.

    python benchmarks/worldmodels_dream.py runs/wm/takecover-cpu-0 \\
        --temperatures 0.1 0.5 1.15 --untrained-m --out runs/wm/table-0

Each variant's result is written to ``OUT/<variant>.json`` as it finishes; a rerun skips the
ones written, so a killed run continues. The table goes to ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from worldmodels.bench.machine import cpu_model
from worldmodels.errors import UserError
from worldmodels.train.parts import evaluate
from worldmodels.train.run import eval_envs, load_agent


class _Context:
    """The staged mode's StageContext, reduced to what the controller stage uses."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    @staticmethod
    def should_stop() -> bool:
        return False

    @staticmethod
    def log(row: dict) -> None:
        parts = " ".join(f"{k.split('/')[-1]} {v:.1f}" for k, v in row.items())
        print(f"  {parts}", flush=True)

    @staticmethod
    def save() -> None:
        pass


def run_variant(run: Path, name: str, temperature: float, untrained: bool, args) -> dict:
    agent = load_agent(run, device="cpu")
    if "mdnrnn" not in agent.done:
        raise UserError(f"{run} has no trained M yet; fix: let its mdnrnn stage finish")
    c = agent.config.controller
    c.temperature = temperature
    if args.generations:
        c.generations = args.generations
    if untrained:
        torch.manual_seed(agent.seed)
        fresh = type(agent.mdn)(agent.config.vae.z_dim, agent.n_act, agent.mdn.lstm.hidden_size,
                                agent.config.mdnrnn.mixtures)  # fmt: skip
        agent.mdn.load_state_dict(fresh.state_dict())
    agent.progress.pop("controller", None)
    agent.done = [d for d in agent.done if d != "controller"]
    t0 = time.perf_counter()
    agent._evolve(_Context(run))
    evolve_s = time.perf_counter() - t0
    agent.done.append("controller")
    dream = agent.dream_fitness(
        agent.controller[None].cpu().numpy(), args.dream_episodes, temperature, seed=123_457
    )[0]
    envs = eval_envs(agent.run_info, args.episodes)
    t0 = time.perf_counter()
    real = evaluate(agent, envs, args.episodes, seed=agent.run_info.seed + 50_000)
    envs.close()
    return {
        "variant": name,
        "temperature": temperature,
        "untrained_m": untrained,
        "generations": c.generations,
        "popsize": c.popsize,
        "rollouts": c.rollouts,
        "dream_return": float(dream),
        "dream_episodes": args.dream_episodes,
        "real_return": real["return_mean"],
        "real_std": real["return_std"],
        "real_episodes": args.episodes,
        "evolve_s": evolve_s,
        "eval_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a worldmodels run whose mdnrnn stage has finished")
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.1, 0.5, 1.15])
    p.add_argument("--untrained-m", action="store_true", help="add the untrained-M control")
    p.add_argument("--generations", type=int, default=0, help="0 = the run's controller setting")
    p.add_argument("--episodes", type=int, default=100, help="real episodes per variant")
    p.add_argument("--dream-episodes", type=int, default=256)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        if any(not math.isfinite(t) or t <= 0 for t in args.temperatures):
            raise UserError("--temperatures must be positive; fix: e.g. --temperatures 0.1 1.15")
        args.out.mkdir(parents=True, exist_ok=True)
        base = json.loads((args.run / "config.json").read_text())["config"]["controller"]
        variants = [(f"tau={t:g}", t, False) for t in args.temperatures]
        if args.untrained_m:
            variants.append(("untrained-m", float(base["temperature"]), True))
        rows = []
        for name, tau, untrained in variants:
            path = args.out / f"{name}.json"
            if path.exists():
                rows.append(json.loads(path.read_text()))
                print(f"{name}: done earlier", flush=True)
                continue
            print(f"{name}: evolving C in the dream", flush=True)
            row = run_variant(args.run, name, tau, untrained, args)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(row, indent=1))
            os.replace(tmp, path)
            rows.append(row)
            print(f"{name}: dream {row['dream_return']:.0f}, real {row['real_return']:.0f}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    lines = [
        f"`python benchmarks/worldmodels_dream.py {args.run} --temperatures "
        f"{' '.join(f'{t:g}' for t in args.temperatures)}"
        f"{' --untrained-m' if args.untrained_m else ''}` on {cpu_model()}, {os.cpu_count()} cores",
        "",
        "| variant | tau | dream return | real return (mean ± std) | real episodes |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['temperature']:g} | {r['dream_return']:.0f} | "
            f"{r['real_return']:.0f} ± {r['real_std']:.0f} | {r['real_episodes']} |"
        )
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
