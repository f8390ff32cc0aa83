"""Metrics: one JSON object per line in ``run_dir/metrics.jsonl``, mirrored to TensorBoard.

JSONL is always written; TensorBoard is optional. A resumed run appends to the same file
after :func:`truncate_after` has dropped the lines written after its checkpoint, and passes
the elapsed wall time saved in that checkpoint as ``time_offset`` so the clock continues.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worldmodels.checkpoint import atomic_write_bytes
from worldmodels.errors import MissingExtraError, UserError

__all__ = ["METRICS_FILE", "MetricsLogger", "read_metrics", "truncate_after"]

METRICS_FILE = "metrics.jsonl"
_RESERVED = ("step", "time")


def _metrics_path(path: Path | str) -> Path:
    path = Path(path)
    return path / METRICS_FILE if path.is_dir() else path


def _to_number(key: str, value: Any) -> float | int | None:
    """A JSON-able number: ints stay ints, everything else becomes a float, non-finite None."""
    if hasattr(value, "item") and callable(value.item):  # torch tensor, numpy scalar/array
        try:
            value = value.item()
        except (ValueError, RuntimeError) as e:
            raise TypeError(f"metric {key!r} is not a scalar ({e})") from None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    raise TypeError(f"metric {key!r} has non-numeric value {value!r} ({type(value).__name__})")


def _drop_partial_tail(path: Path) -> None:
    """Cut a final line that lacks its newline (a write interrupted by a kill)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Scan back for the last newline in blocks.
        pos, block = size, 1 << 16
        cut = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())


def _tensorboard_writer(log_dir: Path, required: bool, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's module raises ImportError when tensorboard is absent
        if required:
            raise MissingExtraError("TensorBoard logging", "tensorboard", "tensorboard") from None
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class MetricsLogger:
    """Append metrics to ``run_dir/metrics.jsonl`` (and TensorBoard under ``run_dir/tb``).

    ``tensorboard``: ``True`` requires it (a clear error if it is not installed), ``False``
    disables it, ``None`` uses it when importable. ``time_offset``: seconds of wall time
    already spent by the run before this process (from the checkpoint), so ``time`` is the
    run's total wall time. ``purge_step``: on resume, TensorBoard events with a step
    ``>= purge_step`` from before the crash are hidden (pass checkpoint step + 1).
    """

    def __init__(
        self,
        run_dir: Path | str,
        *,
        tensorboard: bool | None = None,
        time_offset: float = 0.0,
        purge_step: int | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        self.time_offset = float(time_offset)
        self._start = time.monotonic()
        _drop_partial_tail(self.path)
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")
        self._tb = None
        if tensorboard or tensorboard is None:
            self._tb = _tensorboard_writer(
                self.run_dir / "tb", required=bool(tensorboard), purge_step=purge_step
            )

    @property
    def tensorboard(self) -> bool:
        """Whether scalars are mirrored to TensorBoard."""
        return self._tb is not None

    @property
    def elapsed(self) -> float:
        """The run's wall time in seconds, including ``time_offset``: save it in checkpoints."""
        return self.time_offset + (time.monotonic() - self._start)

    def write(self, step: int, metrics: Mapping[str, Any], *, prefix: str | None = None) -> None:
        """Append ``{"step", "time", **metrics}`` as one line and mirror it to TensorBoard.

        Values may be Python or numpy numbers or one-element tensors; non-finite become
        ``null``. With ``prefix``, keys are written as ``prefix/key``.
        """
        if self._file.closed:
            raise RuntimeError("MetricsLogger.write called after close()")
        step = int(step)
        record: dict[str, Any] = {"step": step, "time": round(self.elapsed, 3)}
        for key, value in metrics.items():
            name = f"{prefix}/{key}" if prefix else str(key)
            if name in _RESERVED:
                raise ValueError(f"metric name {name!r} is reserved; use a prefix or rename it")
            record[name] = _to_number(name, value)
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in record.items():
                if name not in _RESERVED:
                    self._tb.add_scalar(name, float("nan") if value is None else value, step)

    def flush(self) -> None:
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _parse_lines(data: bytes, path: Path, *, strict: bool) -> list[tuple[bytes, dict]]:
    """Complete, parseable lines as (raw, record). A final line without a newline that does not
    parse is dropped (a kill mid-write). Other unparseable lines raise when ``strict``,
    otherwise are dropped."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    out = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if strict:
                raise UserError(
                    f"{path} line {n} is corrupt ({e}); fix: delete that line"
                ) from None
            continue
        out.append((raw, rec))
    if tail.strip():
        try:
            rec = json.loads(tail)
            if isinstance(rec, dict):
                out.append((tail, rec))
        except ValueError:
            pass
    return out


def read_metrics(path: Path | str) -> list[dict]:
    """All records of a metrics file (or of ``run_dir/metrics.jsonl``), tolerating a trailing
    partial line. A missing file gives ``[]``."""
    path = _metrics_path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [rec for _, rec in _parse_lines(data, path, strict=True)]


def truncate_after(run_dir: Path | str, step: int) -> int:
    """Atomically rewrite ``run_dir/metrics.jsonl`` keeping only records with
    ``step <= step`` (also dropping a partial last line and any unparseable line).
    Called on resume with the checkpoint's step. Returns the number of records dropped."""
    path = _metrics_path(run_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    parsed = _parse_lines(data, path, strict=False)
    kept = [raw for raw, rec in parsed if isinstance(rec.get("step"), int) and rec["step"] <= step]
    total = sum(1 for line in data.split(b"\n") if line.strip())
    out = b"".join(raw + b"\n" for raw in kept)
    if out != data:
        atomic_write_bytes(path, out)
    return total - len(kept)
