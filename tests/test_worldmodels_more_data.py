"""benchmarks/worldmodels_more_data.py (M trained on more random rollouts with a held-out set,
then C evolved in it) at debug size: the new and held-out episodes are whole and kept apart,
every epoch is scored on the held-out ones, and a rerun continues without training again."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.worldmodels.agent import load_series, split_episodes
from worldmodels.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--episodes", "3", "--heldout", "2", "--real-episodes", "2", "--dream-episodes", "2"]


def _more(run: Path, out: Path, *extra: str) -> int:
    spec = importlib.util.spec_from_file_location(
        "worldmodels_more_data", ROOT / "benchmarks" / "worldmodels_more_data.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()  # the script sets them from OMP_NUM_THREADS
    try:
        return mod.main([str(run), "--out", str(out), *SMALL, *extra])
    finally:
        torch.set_num_threads(threads)


def test_heldout_is_kept_apart_and_a_rerun_continues(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "more"
    argv = ["train", "worldmodels", "--env", "toy:image_target", "--preset", "debug",
            "--run-dir", str(run), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert _more(run, out, "--epochs", "2") == 0
    result = json.loads((out / "result.json").read_text())
    assert [r["epoch"] for r in result["epochs"]] == [1, 2]
    for row in result["epochs"]:
        assert np.isfinite(row["heldout"]["done"]) and np.isfinite(row["train"]["z_nll"])
    assert result["m_epoch"] in (1, 2) and np.isfinite(result["real_return"])
    heldout = split_episodes(load_series(out / "collect" / "heldout.npz"))
    new = split_episodes(load_series(out / "collect" / "chunk_0.npz"))
    assert (len(heldout), len(new)) == (2, 3)
    for ep in heldout + new:  # whole episodes: first frame to last, one end each
        assert ep["is_first"][0] and ep["is_last"][-1] and ep["is_last"].sum() == 1
    trained = load_series(out / "encode" / "series.npz")
    own = load_series(run / "encode" / "series.npz")
    assert len(trained) == len(own) + 1  # the run's streams and the new chunk, not the held-out
    assert sum(len(s["mu"]) for s in trained) == result["frames"]
    capsys.readouterr()
    assert _more(run, out, "--epochs", "2") == 0
    assert "epoch 1:" not in capsys.readouterr().out  # nothing trained again
    assert len(json.loads((out / "result.json").read_text())["epochs"]) == 2


def test_only_m_and_controller_settings_can_be_set(tmp_path, capsys):
    assert _more(tmp_path / "run", tmp_path / "more", "--set", "vae.z_dim=8") == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "mdnrnn.*" in err
    assert not (tmp_path / "more").exists()
