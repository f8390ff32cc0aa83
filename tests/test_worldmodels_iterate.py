"""benchmarks/worldmodels_iterate.py (the World Models paper's iterative training procedure on a
finished run) at debug size: a round collects whole real episodes, trains M and evolves C, its
result is kept, and a rerun continues after the finished rounds without redoing them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from worldmodels.agents.worldmodels.agent import load_series, split_episodes
from worldmodels.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "worldmodels_iterate.py"
SMALL = ["--episodes", "3", "--m-updates", "1", "--real-episodes", "2", "--dream-episodes", "2"]


def _iterate(run: Path, out: Path, rounds: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), str(run), "--out", str(out), "--rounds", str(rounds),
           *SMALL, *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_rounds_collect_whole_episodes_and_a_rerun_continues(tmp_path):
    run, out = tmp_path / "run", tmp_path / "iter"
    argv = ["train", "worldmodels", "--env", "toy:image_target", "--preset", "debug",
            "--run-dir", str(run), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    first = _iterate(run, out, 1)
    assert first.returncode == 0, first.stderr
    result = json.loads((out / "result.json").read_text())
    assert [r["round"] for r in result["rounds"]] == [1]
    series = load_series(out / "round_1" / "encode" / "series.npz")
    assert len(series) == 2  # the run's stream and the round's
    new = split_episodes(series[1:])
    assert len(new) == 3
    for ep in new:  # whole episodes: first frame to last, one end each
        assert ep["is_first"][0] and ep["is_last"][-1] and ep["is_last"].sum() == 1
    assert len(series[1]["mu"]) == sum(len(ep["mu"]) for ep in new)
    assert np.isfinite(series[1]["mu"].astype(np.float32)).all()
    again = _iterate(run, out, 2)
    assert again.returncode == 0, again.stderr
    assert "round 1: done earlier" in again.stdout
    result = json.loads((out / "result.json").read_text())
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    assert len(load_series(out / "round_2" / "encode" / "series.npz")) == 3


def test_only_controller_settings_can_be_set(tmp_path):
    bad = _iterate(tmp_path / "run", tmp_path / "iter", 1, "--set", "mdnrnn.hidden=8")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "controller.*" in bad.stderr
    assert not (tmp_path / "iter").exists()
