"""worldmodels.bench.jobs (benchmarks/parallel.py's launcher): job-file parsing, a job that
finishes is evaluated, a job over the budget is stopped, and both land in summary.json /
summary.md; the checked-in benchmark job files make valid runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldmodels.bench import jobs as launcher

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, "-m", "worldmodels.bench.jobs"]
JOB_FILES = sorted(p.name for p in (ROOT / "benchmarks").glob("jobs_*.txt"))


def test_parse_jobs_reads_names_and_arguments_and_skips_comments():
    par = launcher
    jobs = par.parse_jobs("# a comment\n\na: dreamerv1 --env gym:Pendulum-v1  # tail\nb: planet\n")
    assert jobs == [("a", ["dreamerv1", "--env", "gym:Pendulum-v1"]), ("b", ["planet"])]
    assert par.target_steps(["x", "--steps", "5000"]) == 5000 and par.target_steps(["x"]) is None


@pytest.mark.parametrize("text", ["no colon here", "a:", ": planet", "a: planet\na: planet"])
def test_parse_jobs_rejects_bad_lines(text):
    with pytest.raises(SystemExit):
        launcher.parse_jobs(text)


def test_eval_curve_reads_the_trainers_metric_rows(tmp_path):
    rows = [{"step": 5, "loss": 1.0}, {"step": 10, "eval/return_mean": -3.5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n{cut")
    par = launcher
    read = par.read_metrics(tmp_path)
    assert par.eval_curve(read) == [(10, -3.5)] and par.last_step(read) == 10


def test_finished_job_is_evaluated_and_a_job_over_budget_is_stopped(tmp_path):
    toy = "dreamerv3 --env toy:target --preset debug --seed 0 --set run.eval_every=1000"
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(
        f"short: {toy} --steps 40 --set run.prefill=20\nbad: dreamerv3 --env gym:Nope\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [*LAUNCH, "--jobs", str(jobs), "--out", str(out), "--episodes", "2"]
    subprocess.run([*cmd, "--budget", "600"], check=True, env=env, capture_output=True)
    summary = json.loads((out / "summary.json").read_text())["results"]["short"]
    assert summary["finished"] and summary["steps"] == 40, summary
    assert summary["final_eval"]["episodes"] == 2, summary
    bad = json.loads((out / "summary.json").read_text())["results"]["bad"]
    assert bad["status"] == "failed (rc 2)" and bad["returncode"] == 2, bad

    jobs.write_text(f"long: {toy} --steps 1000000\n")
    subprocess.run(
        [*cmd, "--budget", "3", "--grace", "60"], check=True, env=env, capture_output=True
    )
    summary = json.loads((out / "summary.json").read_text())["results"]["long"]
    assert summary["stopped_at_budget"] and not summary["finished"], summary
    assert "| long | stopped |" in (out / "summary.md").read_text()


def test_resume_continues_stopped_jobs_skips_done_ones_and_queues_the_rest(tmp_path):
    from worldmodels.cli import main

    toy = "dreamerv3 --env toy:target --preset debug --seed 0 --set run.eval_every=1000"
    short = f"{toy} --steps 40 --set run.prefill=20"
    out = tmp_path / "out"
    for name in ("a", "b"):  # both trained to 40 steps; the job file now asks 80 of a
        assert main(["train", *short.split(), "--run-dir", str(out / name), "--no-progress"]) == 0
    (out / "d").mkdir()  # d: killed before its first checkpoint
    (out / "d" / "config.json").write_text((out / "b" / "config.json").read_text())
    jobs = tmp_path / "jobs.txt"
    longer = short.replace("--steps 40", "--steps 80")
    jobs.write_text(f"a: {longer}\nb: {short}\nc: {short}\nd: {short}\n")  # c: never started
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [*LAUNCH, "--jobs", str(jobs), "--out", str(out), "--episodes", "2"]
    args = ["--resume", "--max-parallel", "1", "--budget", "600"]
    done = subprocess.run([*cmd, *args], check=True, env=env, capture_output=True, text=True)
    res = json.loads((out / "summary.json").read_text())["results"]
    assert res["a"]["status"] == "finished" and res["a"]["steps"] == 80, res["a"]
    assert res["a"]["resumed_from"] == 40 and "--resume" in (out / "a.log").read_text()
    assert res["b"]["status"] == "done earlier" and res["b"]["final_eval"]["episodes"] == 2
    assert res["c"]["status"] == "finished" and res["c"]["steps"] == 40, res["c"]
    assert res["d"]["status"] == "finished" and res["d"]["resumed_from"] is None, res["d"]
    assert len(list(out.glob("d.incomplete-*"))) == 1  # set aside, not deleted
    lines = done.stdout.splitlines()  # one at a time: c starts after a has exited
    first = next(i for i, line in enumerate(lines) if line.startswith("a exited"))
    assert first < next(i for i, line in enumerate(lines) if line.startswith("started c"))
    final = json.loads((out / "a.final.json").read_text())
    # a second call has nothing left to run and reuses the kept final evals
    subprocess.run([*cmd, *args], check=True, env=env, capture_output=True)
    res = json.loads((out / "summary.json").read_text())["results"]
    assert {r["status"] for r in res.values()} == {"done earlier"}
    assert res["a"]["final_eval"] == final


def test_progress_keeps_the_progress_bar_for_the_log(tmp_path, monkeypatch):
    started = []

    class Exited:  # a training process that has already ended, without a checkpoint
        returncode = 0

        def __init__(self, cmd, **kwargs):
            started.append(cmd)

        def poll(self):
            return 0

    monkeypatch.setattr(launcher.subprocess, "Popen", Exited)
    monkeypatch.setattr(launcher.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(launcher, "hardware", lambda: "a test box")
    for progress in (False, True):
        launcher.run_jobs([("a", ["dreamerv3"])], tmp_path / str(progress), progress=progress)
    assert ["--no-progress" in cmd for cmd in started] == [True, False]


def test_there_are_benchmark_job_files():
    assert JOB_FILES, "benchmarks/jobs_*.txt: none found"


@pytest.mark.parametrize("jobs_file", JOB_FILES)
def test_checked_in_job_files_make_valid_runs(jobs_file, tmp_path):
    """Every job of the benchmark job files resolves to a run (agent, presets, --set keys, env id
    and action repeat checked, config.json written) before anyone spends hours on it."""
    from worldmodels.cli import _parser, train_overrides
    from worldmodels.train.run import new_run

    mod = launcher
    path = ROOT / "benchmarks" / jobs_file
    for name, job in mod.parse_jobs(path.read_text()):
        args = _parser().parse_args(["train", *job])
        if args.env.startswith("dmc:"):
            pytest.importorskip("dm_control")
        overrides = train_overrides(args)
        info = new_run(
            args.agent,
            args.env,
            seed=args.seed,
            presets=args.preset,
            overrides=overrides,
            run_dir=tmp_path / name,
        )
        if args.agent != "worldmodels" or args.steps is not None:  # staged: stages, not steps
            assert info.config.run.steps == args.steps, name
        assert (tmp_path / name / "config.json").exists(), name
