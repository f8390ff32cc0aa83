"""Resident memory of a whole training run once its replay is full.

    python benchmarks/run_memory.py --capacity 5000 --steps 10000 -- \\
        efficientzero --env gym:CartPole-v1 --preset debug --set run.prefill=200

Runs ``worldmodels train AGENT ...`` (the arguments after ``--``) with
``run.replay_capacity=--capacity`` and ``--steps``, one intra-op thread, in a fresh run
directory, and reads the child's VmRSS from /proc every ``--every`` seconds, next to the env
steps its metrics file has reached. Prints the readings taken once the env steps passed the
capacity (the replay is full from there on and evicts as it adds) with their spread
(max - min) / min, and whether it stays within ``--tolerance`` (default 10 %). Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worldmodels.bench.machine import cpu_model


def rss_mib(pid: int) -> float | None:
    """VmRSS of process ``pid`` in MiB, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def last_step(metrics: Path) -> int:
    """The largest ``step`` in a metrics.jsonl so far (0 before the first line)."""
    step = 0
    try:
        for line in metrics.read_text().splitlines():
            try:
                step = max(step, int(json.loads(line).get("step", 0)))
            except (ValueError, json.JSONDecodeError):
                continue
    except OSError:
        pass
    return step


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--capacity", type=int, default=5000, help="run.replay_capacity (env steps)")
    p.add_argument("--steps", type=int, default=10000, help="env steps (2x the capacity)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between readings")
    p.add_argument("--tolerance", type=float, default=0.10)
    p.add_argument("train", nargs=argparse.REMAINDER, help="-- AGENT and train arguments")
    args = p.parse_args()
    train = [a for a in args.train if a != "--"]
    if not train:
        p.error("give the agent and its train arguments after --")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "worldmodels.cli",
            "train",
            *train,
            "--steps",
            str(args.steps),
            "--set",
            f"run.replay_capacity={args.capacity}",
            "--set",
            "run.threads=1",
            "--run-dir",
            str(run),
            "--no-progress",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        print("$", " ".join(cmd), flush=True)
        print(
            f"hardware: {platform.machine()} {cpu_model() or platform.processor()}, "
            f"{os.cpu_count()} CPUs",
            flush=True,
        )
        start = time.time()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        readings: list[tuple[float, int, float]] = []
        while child.poll() is None:
            mib = rss_mib(child.pid)
            if mib is not None:
                readings.append((time.time() - start, last_step(run / "metrics.jsonl"), mib))
            time.sleep(args.every)
        if child.returncode != 0:
            print(f"the run exited with {child.returncode}", file=sys.stderr)
            return child.returncode
    full = [r for r in readings if r[1] >= args.capacity]
    print(
        f"{len(readings)} readings in {time.time() - start:.0f} s; {len(full)} with the "
        f"replay full (env steps >= {args.capacity})"
    )
    if len(full) < 2:
        print("too few readings after the replay filled; lengthen --steps or shorten --every")
        return 1
    for t, step, mib in full[:: max(len(full) // 10, 1)]:
        print(f"  {t:7.0f} s  step {step:7d}  RSS {mib:8.1f} MiB")
    lo, hi = min(r[2] for r in full), max(r[2] for r in full)
    spread = (hi - lo) / lo
    verdict = "flat" if spread <= args.tolerance else "NOT flat"
    print(
        f"RSS once full: {lo:.1f}-{hi:.1f} MiB, spread {100 * spread:.1f} % ({verdict}, "
        f"tolerance {100 * args.tolerance:.0f} %)"
    )
    return 0 if spread <= args.tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())
