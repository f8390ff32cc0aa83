"""Learning benchmark: train an agent for N steps on each seed, evaluate, print a result row.

    python benchmarks/learning.py --env gym:CartPole-v1 --steps 30000 --seeds 0 1 2

Prints the command, the resolved config name, the seeds, the hardware, and per seed the eval
mean return, wall time, updates/s and env steps/s, then the median with min/max across seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from worldmodels.train.run import usable_cores


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agent", default="dreamerv3")
    p.add_argument("--env", required=True)
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", default="runs/bench")
    p.add_argument("extra", nargs="*", help="extra train arguments after --")
    args = p.parse_args()
    exe = str(Path(sys.executable).parent / "worldmodels")
    rows = []
    for seed in args.seeds:
        run = (
            Path(args.out) / f"{args.agent}-{args.env.replace(':', '_')}-{seed}-{int(time.time())}"
        )
        cmd = [
            exe,
            "train",
            args.agent,
            "--env",
            args.env,
            "--steps",
            str(args.steps),
            "--seed",
            str(seed),
            "--run-dir",
            str(run),
            "--no-progress",
            *args.extra,
        ]
        print("$", " ".join(cmd), flush=True)
        start = time.time()
        subprocess.run(cmd, check=True)
        wall = time.time() - start
        out = subprocess.run(
            [exe, "eval", str(run), "--episodes", str(args.episodes), "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out)
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ups = [m["updates_per_s"] for m in metrics if "updates_per_s" in m and m["updates"] > 0]
        fps = [m["env_steps_per_s"] for m in metrics if "env_steps_per_s" in m]
        cfg = json.loads((run / "config.json").read_text())
        threads = cfg["config"]["run"]["threads"] or usable_cores()
        rows.append(
            {
                "seed": seed,
                "threads": threads,
                "return": result["return_mean"],
                "wall_s": wall,
                "updates_per_s": sum(ups) / max(len(ups), 1),
                "env_steps_per_s": sum(fps) / max(len(fps), 1),
                "overall_env_steps_per_s": args.steps / wall,  # incl. updates, evals, compile
                "run": str(run),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    rets = sorted(r["return"] for r in rows)
    median = rets[len(rets) // 2]
    print(
        f"\n{args.agent} on {args.env}, {args.steps} steps, seeds {args.seeds}, "
        f"{platform.machine()} {os.cpu_count()} cores, "
        f"torch threads per run {sorted({r['threads'] for r in rows})}"
    )
    print(
        f"eval return ({args.episodes} episodes): median {median:.1f}, "
        f"min {rets[0]:.1f}, max {rets[-1]:.1f}"
    )
    for r in rows:
        print(
            f"  seed {r['seed']}: {r['return']:.1f}  wall {r['wall_s'] / 60:.1f} min  "
            f"{r['updates_per_s']:.2f} updates/s  {r['overall_env_steps_per_s']:.1f} env steps/s "
            "overall (steps / wall)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
