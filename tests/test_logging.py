import io
import json

import numpy as np
import pytest
import torch

from worldmodels.logging import (
    MetricsLogger,
    Progress,
    format_postfix,
    read_metrics,
    truncate_after,
)


def test_jsonl_append_and_resume(tmp_path):
    log = MetricsLogger(tmp_path, tensorboard=False)
    log.write(1, {"loss": 0.5, "t": torch.tensor(2.0), "n": np.float32(1.5), "i": np.int64(3)})
    log.write(2, {"ret": 10}, prefix="eval")
    assert not log.tensorboard
    log.close()
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2]
    assert recs[0]["loss"] == 0.5 and recs[0]["t"] == 2.0 and recs[0]["n"] == 1.5
    assert recs[0]["i"] == 3 and isinstance(recs[0]["i"], int)
    assert recs[1]["eval/ret"] == 10

    log = MetricsLogger(tmp_path, tensorboard=False, time_offset=1000.0)
    log.write(3, {"loss": 0.1})
    assert log.elapsed >= 1000.0
    log.close()
    recs = read_metrics(tmp_path)
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert recs[2]["time"] >= 1000.0 > recs[1]["time"]


def test_line_flushed_before_close(tmp_path):
    log = MetricsLogger(tmp_path, tensorboard=False)
    log.write(1, {"a": 1.0})
    assert read_metrics(tmp_path)[0]["a"] == 1.0
    log.close()


def test_nonfinite_is_null(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        log.write(1, {"a": float("nan"), "b": float("inf"), "c": torch.tensor(float("-inf"))})
    line = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in line and "Infinity" not in line
    rec = json.loads(line)
    assert rec["a"] is None and rec["b"] is None and rec["c"] is None


def test_bad_metrics(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        with pytest.raises(TypeError, match="'x'"):
            log.write(1, {"x": "text"})
        with pytest.raises(TypeError, match="not a scalar"):
            log.write(1, {"x": torch.zeros(3)})
        with pytest.raises(ValueError, match="reserved"):
            log.write(1, {"step": 1.0})


def _write_lines(path, steps, partial=None):
    text = "".join(json.dumps({"step": s, "time": 0.0, "x": s}) + "\n" for s in steps)
    if partial is not None:
        text += partial
    path.write_text(text)


def test_read_metrics_partial_line(tmp_path):
    _write_lines(tmp_path / "metrics.jsonl", [1, 2], partial='{"step": 3, "ti')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_truncate_after(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_lines(path, [1, 2, 3, 4], partial='{"step": 5, "x"')
    assert truncate_after(tmp_path, 2) == 3
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    assert path.read_text().endswith("\n")
    assert truncate_after(tmp_path, 10) == 0
    assert truncate_after(tmp_path / "missing", 1) == 0


def test_resume_after_kill_mid_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_lines(path, [1], partial='{"step": 2, "x"')
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        log.write(2, {"x": 2.0})
    assert [r["step"] for r in read_metrics(path)] == [1, 2]


def test_tensorboard_files(tmp_path):
    pytest.importorskip("tensorboard")
    with MetricsLogger(tmp_path, tensorboard=True) as log:
        assert log.tensorboard
        log.write(1, {"loss": 0.5, "nan": float("nan")}, prefix="train")
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_progress_not_a_tty():
    out = io.StringIO()
    p = Progress(100, initial=10, file=out, mininterval=0)
    p.update(50, ret=412.345, fps=210.0, ups=5.123, skip=None)
    p.write("eval done")
    p.update(100)
    p.close()
    text = out.getvalue()
    assert "\r" not in text
    assert "ret=412.3 fps=210 ups=5.123" in text
    assert "eval done\n" in text
    assert "100/100" in text


def test_progress_default_stream_and_disable(capsys):
    with Progress(10) as p:
        p.update(5, ret=1.0)
    with Progress(10, disable=True) as p:
        p.update(5)
        p.write("hello")
    assert "hello" in capsys.readouterr().err


def test_format_postfix():
    assert format_postfix(ret=12345.6, n=3, x=float("nan")) == "ret=12346 n=3 x=nan"
