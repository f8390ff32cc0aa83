"""Run several training jobs side by side under one wall-clock budget, then evaluate them.

    python benchmarks/parallel.py --jobs jobs.txt --budget 450 --out runs/par --episodes 10

``jobs.txt`` holds one job per line, ``NAME: train arguments`` (``#`` starts a comment), e.g.

    dv1_s0: dreamerv1 --env gym:Pendulum-v1 --steps 50000 --seed 0

Every job runs ``python -m worldmodels.cli train ARGS --run-dir OUT/NAME --no-progress`` with its
output in ``OUT/NAME.log``. A job still running when the budget is spent gets SIGTERM, which
makes the trainer save a checkpoint (``worldmodels train --resume OUT/NAME`` continues it). Each
job that reached its step count is then evaluated (``worldmodels eval --episodes N``, greedy).
``OUT/summary.md`` and ``OUT/summary.json`` list per job: finished or stopped, env steps reached,
wall time, env steps per second, the in-training eval curve and the final eval. Made for a
short lease of a GPU machine, where one call must do all the runs at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path


def parse_jobs(text: str) -> list[tuple[str, list[str]]]:
    jobs = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        if not sep or not name.strip() or not rest.split():
            raise SystemExit(f"bad job line {raw!r}; write 'NAME: train arguments'")
        jobs.append((name.strip(), rest.split()))
    names = [n for n, _ in jobs]
    if len(set(names)) != len(names):
        raise SystemExit("job names must be unique")
    return jobs


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut by the stop
    return rows


def eval_curve(rows: list[dict]) -> list[tuple[int, float]]:
    key = "eval/return_mean"
    return [(int(r["step"]), float(r[key])) for r in rows if key in r]


def last_step(rows: list[dict]) -> int:
    return max((int(r.get("step", 0)) for r in rows), default=0)


def target_steps(args: list[str]) -> int | None:
    return int(float(args[args.index("--steps") + 1])) if "--steps" in args else None


def hardware() -> str:
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
        else:
            gpu = f", no GPU, torch {torch.__version__}"
    except ImportError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{gpu}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", required=True, help="job file: 'NAME: train arguments' per line")
    p.add_argument("--budget", type=float, required=True, help="seconds before running jobs stop")
    p.add_argument("--out", default="runs/parallel")
    p.add_argument("--episodes", type=int, default=10, help="final greedy eval episodes")
    p.add_argument("--grace", type=float, default=45.0, help="seconds to save after SIGTERM")
    args = p.parse_args()
    jobs = parse_jobs(Path(args.jobs).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    py = [sys.executable, "-m", "worldmodels.cli"]

    procs: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    wall: dict[str, float] = {}
    t0 = time.time()
    for name, targs in jobs:
        cmd = [*py, "train", *targs, "--run-dir", str(out / name), "--no-progress"]
        log = open(out / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        started[name] = time.time()
        print(f"started {name}: {' '.join(targs)}", flush=True)

    stopped: set[str] = set()
    while procs and time.time() - t0 < args.budget:
        time.sleep(2.0)
        for name, proc in list(procs.items()):
            if proc.poll() is not None:
                wall[name] = time.time() - started[name]
                print(f"{name} exited {proc.returncode} after {wall[name]:.0f} s", flush=True)
                del procs[name]
    for name, proc in procs.items():
        proc.send_signal(signal.SIGTERM)
        stopped.add(name)
    deadline = time.time() + args.grace
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
        wall[name] = time.time() - started[name]
        print(f"{name} stopped at the budget after {wall[name]:.0f} s", flush=True)

    results = {}
    evals: dict[str, subprocess.Popen] = {}
    for name, targs in jobs:
        run = out / name
        rows = read_metrics(run)
        steps = last_step(rows)
        target = target_steps(targs)
        finished = name not in stopped and target is not None and steps >= target
        results[name] = {
            "args": " ".join(targs),
            "finished": finished,
            "stopped_at_budget": name in stopped,
            "steps": steps,
            "target_steps": target,
            "wall_s": round(wall.get(name, 0.0), 1),
            "env_steps_per_s": round(steps / wall[name], 2) if wall.get(name) else None,
            "eval_curve": eval_curve(rows),
        }
        if finished:
            cmd = [*py, "eval", str(run), "--episodes", str(args.episodes), "--json"]
            evals[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    for name, proc in evals.items():
        text, _ = proc.communicate()
        try:
            results[name]["final_eval"] = json.loads(text.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            results[name]["final_eval"] = {"error": f"eval exited {proc.returncode}"}

    header = {
        "command": " ".join(sys.argv),
        "hardware": hardware(),
        "budget_s": args.budget,
        "jobs": len(jobs),
        "total_s": round(time.time() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps({**header, "results": results}, indent=1))
    lines = [
        f"`{header['command']}` on {header['hardware']}; {len(jobs)} jobs side by side, "
        f"budget {args.budget:.0f} s, total {header['total_s']:.0f} s",
        "",
        "| job | status | steps | wall s | env steps/s | in-training evals | final eval |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        status = "stopped" if r["stopped_at_budget"] else "exited"
        status = "finished" if r["finished"] else status
        curve = ", ".join(f"{s / 1000:g}k: {v:.1f}" for s, v in r["eval_curve"]) or "-"
        fe = r.get("final_eval", {})
        final = (
            f"{fe['return_mean']:.1f} +- {fe['return_std']:.1f} ({fe.get('episodes', '?')} ep)"
            if "return_mean" in fe
            else fe.get("error", "-")
        )
        lines.append(
            f"| {name} | {status} | {r['steps']} | {r['wall_s']:.0f} | {r['env_steps_per_s']} "
            f"| {curve} | {final} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
