"""Run several training jobs side by side under one wall-clock budget, then evaluate them.

    python benchmarks/parallel.py --jobs jobs.txt --budget 450 --out runs/par --episodes 10

(``python -m worldmodels.bench.jobs`` takes the same arguments.) ``jobs.txt`` holds one job per
line, ``NAME: train arguments`` (``#`` starts a comment), e.g.

    dv1_s0: dreamerv1 --env gym:Pendulum-v1 --steps 50000 --seed 0

Every job runs ``python -m worldmodels.cli train ARGS --run-dir OUT/NAME --no-progress`` with its
output in ``OUT/NAME.log``; ``--max-parallel K`` runs at most K at once and queues the rest. A job
still running when the budget is spent gets SIGTERM, which makes the trainer save a checkpoint.
With ``--resume`` a later call continues such jobs (``train --resume OUT/NAME``) and skips the
ones already done, so runs longer than one budget are carried to their end by repeating one
command:

    python benchmarks/parallel.py --jobs benchmarks/jobs_dreamer_v1_v2_planet.txt \
        --out runs/dreamer-v1-v2-planet --resume --max-parallel 2 --budget 9000

A run is done when it reached ``run.steps`` or its last eval reached ``run.stop_at_return``; each
done run gets one final greedy eval (``worldmodels eval --episodes N``), kept in
``OUT/NAME.final.json``. ``OUT/summary.md`` and ``OUT/summary.json`` list per job: status, env
steps reached, wall time and env steps per second of this call, the in-training eval curve and
the final eval. :func:`run_jobs` is the same launcher as a function (``benchmarks/learning.py``
runs its seeds through it, ``worldmodels ablate`` its variants).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

Job = tuple[str, list[str]]  # (name, train arguments)


def parse_jobs(text: str) -> list[Job]:
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
    key = "eval/return_mean"  # null where the eval was NaN (the logger writes it so)
    return [(int(r["step"]), float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]


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


def checkpoint_step(run: Path) -> int | None:
    """The env step of the run's latest checkpoint (None: none yet)."""
    try:
        return int(json.loads((run / "checkpoints" / "latest.json").read_text())["step"])
    except (OSError, json.JSONDecodeError, KeyError, ValueError):
        return None


def run_done(run: Path, rows: list[dict], steps: int | None = None) -> bool:
    """A run whose training is over, judged by what its latest checkpoint holds (a resume starts
    there): it reached ``steps`` (default: config.json's ``run.steps``), or the last eval up to
    it reached ``run.stop_at_return`` (the trainer stops there)."""
    step = checkpoint_step(run)
    try:
        cfg = json.loads((run / "config.json").read_text())["config"]["run"]
    except (OSError, json.JSONDecodeError, KeyError):
        return False
    if step is None:
        return False
    curve = [(s, v) for s, v in eval_curve(rows) if s <= step]
    target = cfg.get("stop_at_return")
    reached = target is not None and bool(curve) and curve[-1][1] >= float(target)
    return step >= (steps if steps is not None else int(cfg["steps"])) or reached


def read_final(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # missing or cut: evaluate again


def run_jobs(
    jobs: list[Job],
    out: str | Path,
    *,
    budget: float = math.inf,
    episodes: int = 10,
    grace: float = 45.0,
    max_parallel: int = 0,
    resume: bool = False,
    min_start: float = 120.0,
    command: str | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Train ``jobs`` side by side (at most ``max_parallel`` at once, 0 = all) until they end or
    ``budget`` seconds pass, give each finished run one final greedy eval of ``episodes``
    episodes, write ``out/summary.json`` and ``out/summary.md``, and return the per-job results
    (the summary's ``results``). ``resume``: continue the jobs whose ``out/NAME`` holds a
    checkpoint and skip the ones already done. SIGTERM or SIGINT ends the budget early (the
    running jobs get SIGTERM and save a checkpoint). ``progress``: each job writes its progress
    bar into its log (one line per redraw), not only its evals."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    py = [sys.executable, "-m", "worldmodels.cli"]
    quit_signal: list[int] = []  # SIGTERM/SIGINT to this process ends the budget early
    previous = {
        sig: signal.signal(sig, lambda signum, frame: quit_signal.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        results, total_s = _run(
            jobs,
            out,
            py,
            env,
            quit_signal,
            budget,
            episodes,
            grace,
            max_parallel,
            resume,
            min_start,
            [] if progress else ["--no-progress"],
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    header = {
        "command": command if command is not None else " ".join(sys.argv),
        "hardware": hardware(),
        "budget_s": budget if math.isfinite(budget) else None,
        "jobs": len(jobs),
        "total_s": total_s,
    }
    (out / "summary.json").write_text(json.dumps({**header, "results": results}, indent=1))
    budget_text = f"budget {budget:.0f} s" if math.isfinite(budget) else "no budget"
    lines = [
        f"`{header['command']}` on {header['hardware']}; {len(jobs)} jobs, at most "
        f"{max_parallel or len(jobs)} at once, {budget_text}, total {header['total_s']:.0f} s",
        "",
        "| job | status | steps | wall s | env steps/s | in-training evals | final eval |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        status = r["status"]
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
    return results


def _run(
    jobs: list[Job],
    out: Path,
    py: list[str],
    env: dict[str, str],
    quit_signal: list[int],
    budget: float,
    episodes: int,
    grace: float,
    max_parallel: int,
    resume: bool,
    min_start: float,
    quiet: list[str],
) -> tuple[dict[str, dict[str, Any]], float]:
    """:func:`run_jobs` without the signal handlers and the summary: (results, total seconds)."""
    procs: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    wall: dict[str, float] = {}
    codes: dict[str, int] = {}
    steps_before: dict[str, int] = {}
    skipped: set[str] = set()
    queue: list[tuple[str, list[str]]] = []
    for name, targs in jobs:
        run = out / name
        cmd = [*py, "train", *targs, "--run-dir", str(run), *quiet]
        if resume and run.exists():
            rows = read_metrics(run)
            if run_done(run, rows, target_steps(targs)):
                skipped.add(name)
                print(f"{name}: done earlier ({checkpoint_step(run)} steps)", flush=True)
                continue
            if checkpoint_step(run) is None:  # stopped before its first save: start afresh
                aside = run.with_name(f"{name}.incomplete-{int(time.time())}")
                run.rename(aside)
                print(f"{name}: no checkpoint; moved to {aside.name}, starting afresh", flush=True)
            else:
                steps_before[name] = checkpoint_step(run)
                steps = target_steps(targs)
                cmd = [*py, "train", "--resume", str(run), *quiet]
                cmd += ["--steps", str(steps)] if steps is not None else []
        queue.append((name, cmd))

    t0 = time.time()
    limit = max_parallel if max_parallel > 0 else len(queue)

    def budget_left() -> float:
        return 0.0 if quit_signal else budget - (time.time() - t0)

    while (procs or queue) and budget_left() > 0:
        while queue and len(procs) < limit and (not procs or budget_left() >= min_start):
            name, cmd = queue.pop(0)
            log = open(out / f"{name}.log", "a")  # noqa: SIM115 (closed with the process)
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            started[name] = time.time()
            print(f"started {name}: {' '.join(cmd[3:])}", flush=True)
        if queue and not procs:
            break  # too little budget left to start the next job
        time.sleep(2.0)
        for name, proc in list(procs.items()):
            if proc.poll() is not None:
                wall[name] = time.time() - started[name]
                codes[name] = proc.returncode
                print(f"{name} exited {proc.returncode} after {wall[name]:.0f} s", flush=True)
                del procs[name]
    stopped: set[str] = set(procs)
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    deadline = time.time() + grace
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()  # its latest checkpoint stays; run_done judges by it
        wall[name] = time.time() - started[name]
        print(f"{name} stopped at the budget after {wall[name]:.0f} s", flush=True)
    not_started = {name for name, _ in queue}

    results: dict[str, dict[str, Any]] = {}
    to_eval: list[str] = []
    for name, targs in jobs:
        run = out / name
        rows = read_metrics(run)
        step = checkpoint_step(run) or 0
        gained = step - steps_before.get(name, 0)
        done = run_done(run, rows, target_steps(targs))
        code = codes.get(name)
        status = "stopped" if name in stopped else "exited"
        status = f"failed (rc {code})" if code not in (None, 0) else status
        status = "not started" if name in not_started else status
        status = "done earlier" if name in skipped else ("finished" if done else status)
        results[name] = {
            "args": " ".join(targs),
            "status": status,
            "returncode": code,
            "finished": done,
            "stopped_at_budget": name in stopped,
            "steps": step,
            "resumed_from": steps_before.get(name),
            "target_steps": target_steps(targs),
            "wall_s": round(wall.get(name, 0.0), 1),
            "env_steps_per_s": round(gained / wall[name], 2) if wall.get(name) else None,
            "eval_curve": eval_curve(rows),
        }
        final = read_final(out / f"{name}.final.json")  # one final eval per finished run, kept
        if done and final is not None:
            results[name]["final_eval"] = final
        elif done:
            to_eval.append(name)
    for i in range(0, len(to_eval), max(limit, 1)):  # no more evals at once than jobs
        evals = {
            name: subprocess.Popen(
                [*py, "eval", str(out / name), "--episodes", str(episodes), "--json"],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name in to_eval[i : i + max(limit, 1)]
        }
        for name, proc in evals.items():
            text, _ = proc.communicate()
            try:
                results[name]["final_eval"] = json.loads(text.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                results[name]["final_eval"] = {"error": f"eval exited {proc.returncode}"}
                continue
            tmp = out / f".{name}.final.json.tmp"
            tmp.write_text(json.dumps(results[name]["final_eval"]))
            tmp.replace(out / f"{name}.final.json")
    return results, round(time.time() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", required=True, help="job file: 'NAME: train arguments' per line")
    p.add_argument("--budget", type=float, required=True, help="seconds before running jobs stop")
    p.add_argument("--out", default="runs/parallel")
    p.add_argument("--episodes", type=int, default=10, help="final greedy eval episodes")
    p.add_argument("--grace", type=float, default=45.0, help="seconds to save after SIGTERM")
    p.add_argument(
        "--max-parallel", type=int, default=0, help="jobs running at once (0: all); the rest queue"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue jobs whose OUT/NAME holds a checkpoint; skip those already done",
    )
    p.add_argument(
        "--min-start", type=float, default=120.0, help="start no queued job with less budget left"
    )
    args = p.parse_args(argv)
    run_jobs(
        parse_jobs(Path(args.jobs).read_text()),
        args.out,
        budget=args.budget,
        episodes=args.episodes,
        grace=args.grace,
        max_parallel=args.max_parallel,
        resume=args.resume,
        min_start=args.min_start,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
