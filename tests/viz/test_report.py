"""``worldmodels report``: one self-contained HTML page on tiny debug runs (a Dreamer pixel run, a
Dreamer vector run over three seeds, TD-MPC2, MuZero, PlaNet), checked as text and in headless
Chromium (zero console errors, no request, the MP4 plays, a screenshot that is not blank); bad
input is one line and exit code 2. ``run.report_every``: a run writes its own report and
open-loop media while it trains, and again after a resume."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from worldmodels.cli import main
from worldmodels.viz.dream import longest_horizon

pytest.importorskip("matplotlib")
pytest.importorskip("imageio.v3")

GAP = ("eval/imagined_return", "eval/real_return", "eval/return_gap")


def _seed_copy(run: Path, dest: Path, seed: int, gap: bool, checkpoint: bool) -> Path:
    """``run`` as another seed of the same experiment: its config.json seed set to ``seed``, its
    eval rows with (made-up) or without the gap keys, without checkpoints if not
    ``checkpoint``."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("dream", ".lock"))
    config = json.loads((dest / "config.json").read_text())
    config["seed"] = seed
    (dest / "config.json").write_text(json.dumps(config))
    rows = [json.loads(line) for line in (dest / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        if "eval/return_mean" in r:
            for k in GAP:
                r.pop(k, None)
            if gap:
                r.update(dict(zip(GAP, (12.0 + seed, 9.0, 3.0 + seed))))
    (dest / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if not checkpoint:
        shutil.rmtree(dest / "checkpoints")
    return dest


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    """The report of the pixel run, the vector run and two more seeds of it (seed 1 with gap
    metrics, seed 2 without them and without a checkpoint), and the TD-MPC2, MuZero and PlaNet
    runs."""
    root = tmp_path_factory.mktemp("report")
    seed1 = _seed_copy(runs["vector"], root / "vector-s1", 1, gap=True, checkpoint=True)
    seed2 = _seed_copy(runs["vector"], root / "vector-s2", 2, gap=False, checkpoint=False)
    out = root / "report.html"
    paths = [runs["pixels"], runs["vector"], seed1, seed2, runs["tdmpc2"], runs["muzero"]]
    paths.append(runs["planet"])
    assert main(["report", *map(str, paths), "--out", str(out)]) == 0
    return out


def test_report_is_self_contained_and_complete(report, capsys):
    text = report.read_text()
    size = report.stat().st_size
    assert size < 10e6, f"report of {size / 1e6:.1f} MB"
    # Everything the page loads is embedded: every src and href is a data: URI or an anchor.
    refs = re.findall(r'\b(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), {r[:40] for r in refs}
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert text.count("<section>") == 7
    assert text.count("<video controls") == 1 and text.count("data:video/mp4;base64,") == 1
    assert text.count("data:image/gif;base64,") == 1
    # Grouped curves: the vector run's three seeds form one group.
    assert "dreamerv3 toy:target [debug]</td><td>0, 1, 2</td>" in text
    # The open-loop media: the pixel run's horizon shortened to its 10-step episodes, dims for
    # the vector runs and PlaNet, the latent probe with its caption for TD-MPC2 and MuZero, the
    # one-line reason for the run without a checkpoint (and no other).
    assert "imagines 10 steps from the recorded actions alone (the horizon is shortened" in text
    assert "Latent probe, not a prediction of observations" in text
    assert "consistency loss trains the dynamics" in text
    assert "hidden state is not trained to match the representation" in text  # MuZero's
    assert text.count("<figcaption>Each observation dimension over") == 3  # 2 vector, PlaNet
    assert text.count("No open-loop media:") == 1 and "has no checkpoint yet" in text
    # The imagined-vs-real gap: plotted where logged, a note where not.
    assert "logged no eval/imagined_return, eval/real_return or eval/return_gap" in text
    assert "The return the agent predicts for its own greedy behaviour" in text
    assert "Return gap (imagined - real return" in text
    assert "<th>imagined_return</th><th>real_return</th><th>return_gap</th>" in text
    assert "env steps/s (median of log rows)" in text


def test_mp4_is_h264_yuv420p(report):
    import imageio_ffmpeg

    text = report.read_text()
    b64 = re.search(r'src="data:video/mp4;base64,([^"]+)"', text).group(1)
    path = report.with_name("video.mp4")
    path.write_bytes(base64.b64decode(b64))
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    stream = next(line for line in probe.stderr.splitlines() if "Video:" in line)
    assert "h264" in stream and "yuv420p" in stream, stream


def test_report_in_chromium(browser, report):
    from PIL import Image

    page = browser.load(report)
    assert page["errors"] == []
    assert page["requests"] == []
    assert len(page["videos"]) == 1 and page["videos"][0] > 0  # seconds, after loadedmetadata
    assert page["images"] and all(w > 0 for w in page["images"])  # every image decoded
    shot = np.asarray(Image.open(io.BytesIO(page["screenshot"])).convert("RGB"))
    assert shot.shape[1] == 1280
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 50  # not blank: text, plots, frames


def test_longest_horizon(runs):
    assert longest_horizon(runs["vector"], 3) == 10  # 11-row episodes: 10 imagined after 3
    assert longest_horizon(runs["pixels"], 5) == 10  # later episodes start inside the context


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_input_is_one_line(runs, tmp_path, capsys, monkeypatch):
    run = str(runs["vector"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "holds no run directory" in _error_line(capsys)
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in _error_line(capsys)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["report", run, "--out", str(afile / "report.html")]) == 2
    assert "cannot write --out" in _error_line(capsys)
    assert main(["report", run, "--out", str(tmp_path)]) == 2
    assert "is a directory" in _error_line(capsys)
    for module in ("matplotlib.figure", "imageio_ffmpeg"):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)  # import fails as if not installed
            assert main(["report", run, "--out", str(tmp_path / "r.html")]) == 2
        assert "pip install 'worldmodels[viz]'" in _error_line(capsys)
    assert not (tmp_path / "r.html").exists()


def test_gifs_beyond_the_budget_are_left_out(runs, monkeypatch):
    from worldmodels.viz import report

    monkeypatch.setattr(report, "GIF_BUDGET", 1000)
    text = report.build_report([runs["pixels"]])
    assert "data:image/gif" not in text and "data:video/mp4" in text
    assert "GIFs are capped at 0.0 MB in all" in text


def _no_temp_files(run: Path) -> bool:
    return not [p for p in run.rglob(".*.tmp")]


def test_report_every_writes_the_run_report_while_training_and_after_a_resume(tmp_path):
    """An eval and a report at step 20, from the replay in memory (nothing on disk yet; none
    again at the end: nothing changed since), then a resume to step 30 writes the report of
    the finished run."""
    run = tmp_path / "run"
    args = ["train", "dreamerv3", "--env", "toy:target", "--preset", "debug", "--no-progress",
            "--steps", "20", "--run-dir", str(run), "--set", "run.eval_every=20",
            "--set", "run.report_every=20", "--set", "run.gap_horizon=0"]  # fmt: skip
    assert main(args) == 0
    assert {p.name for p in (run / "dream").iterdir()} == {"error.png", "dims.png"}
    text = (run / "report.html").read_text()
    assert "imagines 8 steps from the recorded actions alone" in text  # rows 12-19 of episode 2
    reached = '<b>steps reached (last log row)</b></td><td class="l">{}</td>'
    assert reached.format(20) in text and _no_temp_files(run)
    assert main(["train", "--resume", str(run), "--steps", "30", "--no-progress"]) == 0
    text = (run / "report.html").read_text()
    assert reached.format(30) in text and text.count("<section>") == 1
    assert _no_temp_files(run)


def test_report_every_waits_for_a_window_and_says_so_once(tmp_path, capsys):
    """Five steps of toy:target hold no window of 5 observed and 1 imagined steps: the reports
    at step 5 and at the end write nothing, and the log says why once."""
    from worldmodels.replay import ReplayBuffer
    from worldmodels.viz.report import write_run_report

    run = tmp_path / "run"
    args = ["train", "dreamerv3", "--env", "toy:target", "--preset", "debug", "--no-progress",
            "--steps", "5", "--run-dir", str(run), "--set", "run.report_every=5",
            "--set", "run.gap_horizon=0"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("no report written yet: the replay holds no window") == 1, err
    assert not (run / "report.html").exists() and not (run / "dream").exists()
    empty = ReplayBuffer(10)
    assert "holds no window" in write_run_report(run, None, empty, "nothing")


def test_a_trainer_without_a_reporter_refuses_report_every(tmp_path):
    from worldmodels.errors import UserError
    from worldmodels.train.loop import Trainer
    from worldmodels.train.run import new_run

    overrides = {"run.report_every": 5}
    info = new_run("dreamerv3", "toy:target", presets=["debug"], overrides=overrides,
                   run_dir=tmp_path / "run")  # fmt: skip
    with pytest.raises(UserError, match="run.report_every needs a reporter"):
        Trainer(info, progress=False)
