"""Two processes never write one run directory: the second gets one line naming the holder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldmodels.cli import main
from worldmodels.errors import UserError
from worldmodels.train.run import lock_run_dir, unlock_run_dir

SRC = str(Path(__file__).resolve().parents[1] / "src")
HOLD = (
    "import sys, time; from worldmodels.train.run import lock_run_dir; "
    "lock_run_dir(sys.argv[1]); print('held', flush=True); time.sleep(60)"
)


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/run's lock."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


def test_a_held_run_directory_is_refused_with_the_holders_pid(holder):
    run, proc = holder
    with pytest.raises(UserError, match=f"in use by another worldmodels process \\(pid {proc.pid}"):
        lock_run_dir(run)
    proc.kill()
    proc.wait()
    lock_run_dir(run)  # the OS dropped the dead holder's lock: no stale lock
    lock_run_dir(run)  # a second call in the same process is a no-op
    unlock_run_dir(run)


def test_resume_of_a_run_in_use_exits_2_and_leaves_its_config(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "dreamerv3", "--env", "toy:target", "--preset", "debug", "--steps", "40"]
    assert main([*base, "--set", "run.prefill=20", "--run-dir", str(run), "--no-progress"]) == 0
    config = (run / "config.json").read_text()
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        code = main(["train", "--resume", str(run), "--steps", "80", "--no-progress"])
    finally:
        proc.kill()
        proc.wait()
    assert code == 2
    assert "in use by another worldmodels process" in capsys.readouterr().err
    assert (run / "config.json").read_text() == config  # --steps 80 was not written
    # and once the holder is gone the same resume runs
    assert main(["train", "--resume", str(run), "--steps", "80", "--no-progress"]) == 0


def test_a_refused_resume_releases_the_lock(tmp_path):
    run = tmp_path / "run"
    base = ["train", "dreamerv3", "--env", "toy:target", "--preset", "debug", "--steps", "40"]
    assert main([*base, "--set", "run.prefill=20", "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["train", "--resume", str(run), "--set", "model.kl=elbo"]) == 2  # not a setting
    env = {**os.environ, "PYTHONPATH": SRC}
    probe = "import sys; from worldmodels.train.run import lock_run_dir; lock_run_dir(sys.argv[1])"
    subprocess.run([sys.executable, "-c", probe, str(run)], check=True, env=env)
