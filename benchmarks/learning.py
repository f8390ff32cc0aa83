"""Learning benchmark: train an agent for N steps on each seed, evaluate, print a result row.

    python benchmarks/learning.py --env gym:CartPole-v1 --steps 30000 --seeds 0 1 2

One job per seed (``AGENT --env ENV --steps N --seed S`` plus the arguments after ``--``), run
by the same launcher as ``benchmarks/parallel.py`` (``worldmodels.bench.jobs.run_jobs``): one at
a time unless ``--max-parallel`` says more, each trained into ``OUT/seedS`` with its output in
``OUT/seedS.log``, then evaluated greedily for ``--episodes`` episodes; ``OUT/summary.md`` lists
the jobs. ``--resume`` with the ``--out`` of an earlier call continues its unfinished runs.

Prints the command, the seeds, the hardware, and per seed the eval mean return, wall time,
updates/s and env steps/s, then the median with min/max across seeds. Exit code 1 if a run did
not finish or its eval failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from worldmodels.bench.jobs import read_metrics, run_jobs
from worldmodels.train.run import usable_cores


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agent", default="dreamerv3")
    p.add_argument("--env", required=True)
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument(
        "--out", help="folder of the runs (default runs/bench/AGENT-ENV-STEPS-<unix time>)"
    )
    p.add_argument("--max-parallel", type=int, default=1, help="seeds trained at once")
    p.add_argument("--resume", action="store_true", help="continue the runs of an earlier --out")
    p.add_argument("extra", nargs="*", help="extra train arguments after --")
    args = p.parse_args()
    slug = f"{args.agent}-{args.env.replace(':', '_')}-{args.steps}"
    out = Path(args.out or f"runs/bench/{slug}-{int(time.time())}")
    jobs = [
        (
            f"seed{seed}",
            [args.agent, "--env", args.env, "--steps", str(args.steps), "--seed", str(seed)]
            + args.extra,
        )
        for seed in args.seeds
    ]
    print(f"runs, logs and summary.md in {out}", flush=True)
    results = run_jobs(
        jobs, out, episodes=args.episodes, max_parallel=args.max_parallel, resume=args.resume
    )
    rows, failed = [], []
    for (name, _), seed in zip(jobs, args.seeds):
        r, run = results[name], out / name
        if "return_mean" not in r.get("final_eval", {}):
            failed.append(f"seed {seed}: {r['status']}, see {out / name}.log")
            continue
        metrics = read_metrics(run)
        ups = [m["updates_per_s"] for m in metrics if "updates_per_s" in m and m["updates"] > 0]
        fps = [m["env_steps_per_s"] for m in metrics if "env_steps_per_s" in m]
        cfg = json.loads((run / "config.json").read_text())
        rows.append(
            {
                "seed": seed,
                "threads": cfg["config"]["run"]["threads"] or usable_cores(),
                "return": r["final_eval"]["return_mean"],
                "wall_s": r["wall_s"],  # training of this call, evals not counted
                "updates_per_s": sum(ups) / max(len(ups), 1),
                "env_steps_per_s": sum(fps) / max(len(fps), 1),
                # steps of this call / wall, incl. updates, in-training evals and compile
                "overall_env_steps_per_s": r["env_steps_per_s"],
                "run": str(run),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n{args.agent} on {args.env}, {args.steps} steps, seeds {args.seeds}, "
        f"{platform.machine()} {os.cpu_count()} cores, "
        f"torch threads per run {sorted({r['threads'] for r in rows})}"
    )
    if rows:
        rets = sorted(r["return"] for r in rows)
        print(
            f"eval return ({args.episodes} episodes): median {rets[len(rets) // 2]:.1f}, "
            f"min {rets[0]:.1f}, max {rets[-1]:.1f}"
        )
    for r in rows:
        overall = r["overall_env_steps_per_s"]
        overall = "-" if overall is None else f"{overall:.1f}"
        print(
            f"  seed {r['seed']}: {r['return']:.1f}  wall {r['wall_s'] / 60:.1f} min  "
            f"{r['updates_per_s']:.2f} updates/s  {overall} env steps/s overall (steps / wall)"
        )
    for line in failed:
        print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
