"""``worldmodels dream`` end to end on tiny debug runs: videos, plots, the latent probe of the
decoder-free agents, and bad input (one line, exit code 2)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from worldmodels.cli import main
from worldmodels.core.probe import latent_distance
from worldmodels.viz.dream import dream_media

iio = pytest.importorskip("imageio.v3")
pytest.importorskip("matplotlib")

WINDOW = ["--context", "3", "--horizon", "7"]  # toy episodes have 11 rows: 10 can be imagined


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_pixels_video_and_error_plot(runs, tmp_path, capsys):
    run = runs["pixels"]
    replay = _snapshot(run / "replay")
    out = tmp_path / "out"
    assert main(["dream", str(run), "--sequences", "2", *WINDOW, "--out", str(out)]) == 0
    names = {"dream.mp4", "dream.gif", "error.png"}
    assert {Path(p).name for p in capsys.readouterr().out.split()} == names
    assert {p.name for p in out.iterdir()} == names
    assert _snapshot(run / "replay") == replay  # the replay is only read
    tile = 64 + 2 * 2  # 64x64 frames, 2 pixels of frame each side
    gif = iio.imread(out / "dream.gif", index=None)
    assert gif.shape == (10, 3 * tile + 4, 2 * tile, 3)  # 3 rows (truth, model, error) x 2
    assert iio.immeta(out / "dream.gif")["duration"] > 0
    mp4 = iio.imread(out / "dream.mp4", index=None)
    assert mp4.shape == (10, 3 * tile + 4, 2 * tile, 3)
    assert iio.immeta(out / "dream.mp4")["duration"] > 0
    assert (out / "error.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    media = dream_media(run, sequences=2, context=3, horizon=7)
    assert media["kind"] == "image" and media["dims_png"] is None
    err = media["errors"]
    assert err["step"] == list(range(10)) and len(err["mse"]) == len(err["psnr"]) == 10
    assert all(math.isfinite(x) and x >= 0 for x in err["mse"] + err["psnr"])
    # The model reconstructs what it observes better than it imagines the end (seed 0 on CPU:
    # 0.01 against 0.07).
    assert np.mean(err["mse"][:3]) < np.mean(err["mse"][-3:])


def test_vector_dims_plot_and_no_video(runs, tmp_path):
    run = runs["vector"]
    assert main(["dream", str(run), *WINDOW]) == 0
    assert {p.name for p in (run / "dream").iterdir()} == {"error.png", "dims.png"}
    media = dream_media(run, sequences=4, context=3, horizon=7)
    assert media["kind"] == "vector" and media["gif"] is None and media["mp4"] is None
    assert media["errors"]["psnr"] is None and len(media["errors"]["mse"]) == 10
    assert all(math.isfinite(x) for x in media["errors"]["mse"])


def test_vector_windows_from_a_dataset(runs, tmp_path):
    data = tmp_path / "data"
    assert main(["collect", "--env", "toy:target", "--episodes", "3", "--out", str(data)]) == 0
    media = dream_media(runs["vector"], sequences=2, context=3, horizon=7, dataset=data)
    assert media["kind"] == "vector" and media["dims_png"]


@pytest.mark.parametrize("name", ["tdmpc2", "muzero"])
def test_decoder_free_agents_give_the_latent_probe(runs, name):
    media = dream_media(runs[name], sequences=3, context=3, horizon=7)
    assert media["kind"] == "latent" and media["error_png"][:4] == b"\x89PNG"
    assert media["gif"] is media["mp4"] is media["dims_png"] is None
    dist = media["errors"]["mse"]
    assert dist[:3] == [0.0] * 3 and all(math.isfinite(d) and d >= 0 for d in dist)
    assert media["errors"]["psnr"] is None


def test_latent_distance_by_hand():
    encoded = np.array([[[1.0, 1.0], [1.0, -1.0], [0.0, 2.0]]])  # [1, 3, 2]; mean square 4/3
    rolled = np.array([[[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]]])
    np.testing.assert_allclose(latent_distance(rolled, encoded, 1), [[0.0, 2.0 / (4 / 3), 0.0]])
    np.testing.assert_allclose(latent_distance(rolled, encoded, 2), [[0.0, 0.0, 0.0]])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_bad_input_is_one_line(runs, tmp_path, capsys, monkeypatch):
    run = str(runs["vector"])
    assert main(["dream", str(tmp_path)]) == 2
    assert "not a run directory" in _error_line(capsys)
    for flag in ("--context", "--horizon", "--sequences"):
        assert main(["dream", run, flag, "0"]) == 2
        assert f"{flag} must be at least 1" in _error_line(capsys)
    assert main(["dream", run, "--context", "3", "--horizon", "20"]) == 2
    line = _error_line(capsys)
    assert "holds 300 steps" in line and "--horizon 10" in line

    from worldmodels.train.run import new_run

    fresh = new_run("dreamerv3", "toy:target", presets=["debug"], run_dir=tmp_path / "fresh")
    assert main(["dream", str(fresh.run_dir)]) == 2
    assert "no checkpoint" in _error_line(capsys)

    other = tmp_path / "reach"
    assert main(["collect", "--env", "toy:reach", "--episodes", "2", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["dream", run, *WINDOW, "--dataset", str(other)]) == 2
    assert "fix: give a dataset collected on toy:target" in _error_line(capsys)

    for module, run_dir in (("matplotlib.figure", run), ("imageio_ffmpeg", runs["pixels"])):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)  # import fails as if not installed
            assert main(["dream", str(run_dir), *WINDOW]) == 2
        assert "pip install 'worldmodels[viz]'" in _error_line(capsys)
