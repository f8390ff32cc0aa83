"""What ``run.report_every`` costs a training run: one run in this process, each report timed.

    python benchmarks/report_every_cost.py --preset debug --steps 1200 --report-every 100
    python benchmarks/report_every_cost.py --preset debug --steps 1200 --report-every 0

Trains DreamerV3 (``--preset``, none = the default size) on ``--env`` with ``--obs`` for
``--steps`` agent steps on one torch thread with ``--seed``, writing the run's report every
``--report-every`` steps (0 = never). Times every report (``viz.report.write_run_report``:
the open-loop media of the agent in memory, ``RUN/dream/`` and ``RUN/report.html``) and the
training rate between log rows after the prefill (``env_steps_per_s`` of metrics.jsonl:
collecting and updating, evaluations left out). Prints one JSON line: the wall time, each
report's step, horizon, seconds and report.html size, and ``percent_at``: a report's mean cost
against the training time of ``--user-every`` steps (5000 by default, a report every 5 % of a
100k-step run) at the measured rate (the seconds of the reports in a log interval taken out of
it). Run it once with and once without reports (same seed, one process each) to compare the
wall times as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import worldmodels.viz.report as report
from worldmodels.bench.machine import cpu_model
from worldmodels.cli import main as cli
from worldmodels.viz.dream import replay_source, source_horizon


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agent", default="dreamerv3")
    p.add_argument("--env", default="gym:CartPole-v1")
    p.add_argument("--obs", default="pixels")
    p.add_argument("--preset", nargs="*", default=[])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--report-every", type=int, default=100)
    p.add_argument("--user-every", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="more config overrides")
    p.add_argument("--run-dir", help="default: a temporary directory")
    args = p.parse_args()

    reports: list[dict] = []
    write = report.write_run_report

    def timed(run_dir, agent, replay, what):
        horizon = min(report.HORIZON, source_horizon(replay_source(replay), report.CONTEXT))
        t = time.perf_counter()
        why = write(run_dir, agent, replay, what)
        seconds = time.perf_counter() - t
        html = Path(run_dir) / "report.html"
        reports.append(
            {
                "step": int(re.search(r"after (\d+) ", what).group(1)),
                "horizon": horizon,
                "seconds": round(seconds, 3),
                "written": why is None,
                "html_bytes": html.stat().st_size if html.exists() else None,
            }
        )
        return why

    report.write_run_report = timed
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run_dir or Path(tmp) / "run")
        cmd = ["train", args.agent, "--env", args.env, "--obs", args.obs, "--seed", str(args.seed)]
        cmd += ["--steps", str(args.steps), "--run-dir", str(run), "--no-progress"]
        cmd += ["--preset", *args.preset] if args.preset else []
        sets = ["run.threads=1", f"run.report_every={args.report_every}", *args.set]
        for s in sets:
            cmd += ["--set", s]
        t = time.perf_counter()
        assert cli(cmd) == 0
        wall = time.perf_counter() - t
        config = json.loads((run / "config.json").read_text())["config"]["run"]
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    prefill, log_every = config["prefill"], config["log_every"]
    rates, last = [], 0
    for r in (r for r in rows if "env_steps_per_s" in r):
        # A report at step s follows the log row at s: it falls in the next interval.
        seconds = (r["step"] - last) / r["env_steps_per_s"]
        seconds -= sum(x["seconds"] for x in reports if last <= x["step"] < r["step"])
        if r["step"] >= prefill + log_every:
            rates.append((r["step"] - last) / seconds)
        last = r["step"]
    rate = statistics.median(rates) if rates else None
    written = [r["seconds"] for r in reports if r["written"]]
    mean = statistics.mean(written) if written else None
    out = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "torch": torch.__version__,
        "wall_s": round(wall, 1),
        "train_steps_per_s": round(rate, 2) if rate else None,
        "reports": reports,
        "report_mean_s": round(mean, 2) if mean else None,
        "percent_at": (
            {args.user_every: round(100 * mean * rate / args.user_every, 2)}
            if mean and rate
            else None
        ),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
