"""benchmarks/worldmodels_iterate.py (the World Models paper's iterative training procedure on a
finished run) at debug size: a round collects whole real episodes, trains M and evolves C, its
result is kept, and a rerun continues after the finished rounds without redoing them."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.worldmodels.agent import load_series, split_episodes
from worldmodels.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--episodes", "3", "--m-updates", "1", "--real-episodes", "2", "--dream-episodes", "2"]


def _script():
    spec = importlib.util.spec_from_file_location(
        "worldmodels_iterate", ROOT / "benchmarks" / "worldmodels_iterate.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _iterate(run: Path, out: Path, rounds: int, *extra: str) -> int:
    threads = torch.get_num_threads()  # the script sets them from OMP_NUM_THREADS
    try:
        argv = [str(run), "--out", str(out), "--rounds", str(rounds), *SMALL, *extra]
        return _script().main(argv)
    finally:
        torch.set_num_threads(threads)


def test_rounds_collect_whole_episodes_and_a_rerun_continues(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "iter"
    argv = ["train", "worldmodels", "--env", "toy:image_target", "--preset", "debug",
            "--run-dir", str(run), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert _iterate(run, out, 1) == 0
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
    capsys.readouterr()
    assert _iterate(run, out, 2) == 0
    assert "round 1: done earlier" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    assert len(load_series(out / "round_2" / "encode" / "series.npz")) == 3


def test_only_controller_settings_can_be_set(tmp_path, capsys):
    assert _iterate(tmp_path / "run", tmp_path / "iter", 1, "--set", "mdnrnn.hidden=8") == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "controller.*" in err
    assert not (tmp_path / "iter").exists()
