"""A progress bar over environment steps that stays readable in log files."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["Progress", "format_postfix"]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if hasattr(value, "item"):
            return _fmt(value.item())
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_postfix(**values: Any) -> str:
    """``ret=412.3 fps=210 ups=5.1``: short numbers, ``None`` values left out."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in values.items() if v is not None)


class _LineWriter:
    """Turns tqdm's carriage-return redraws into whole lines, for files that are not TTYs."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, s: str) -> int:
        for part in s.split("\r"):
            part = part.rstrip()
            if part:
                self._stream.write(part + "\n")
        return len(s)

    def flush(self) -> None:
        flush = getattr(self._stream, "flush", None)
        if flush is not None:
            flush()

    def isatty(self) -> bool:
        return False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress over ``total`` env steps, starting at ``initial`` (a resumed run).

    On a terminal it is an ordinary tqdm bar. Elsewhere (a log file, CI) it redraws at most
    every ``mininterval`` seconds (default 1 s), in ASCII, each redraw on its own line.
    ``disable=True`` turns it off; ``None`` and ``False`` leave it on.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        *,
        disable: bool | None = None,
        file: TextIO | None = None,
        mininterval: float | None = None,
        desc: str | None = None,
    ):
        stream = file if file is not None else sys.stderr
        tty = _isatty(stream)
        self._tty = tty
        self._out = stream if tty else _LineWriter(stream)
        self._bar = tqdm(
            total=int(total),
            initial=int(initial),
            desc=desc,
            file=self._out,
            disable=bool(disable),
            mininterval=(0.1 if tty else 1.0) if mininterval is None else mininterval,
            ascii=not tty,
            dynamic_ncols=tty,
            ncols=None if tty else 100,
            unit="step",
            unit_scale=True,
            smoothing=0.1,
            leave=True,
        )

    @property
    def n(self) -> int:
        return int(self._bar.n)

    def update(self, step: int, **postfix: Any) -> None:
        """Move to absolute env step ``step`` and show ``postfix`` (``ret=412.3 fps=210``)."""
        if postfix:
            self._bar.set_postfix_str(format_postfix(**postfix), refresh=False)
        delta = int(step) - self._bar.n
        if delta >= 0:
            self._bar.update(delta)
        else:  # moving backwards should not happen, but do not crash the run over it
            self._bar.n = int(step)
            self._bar.refresh()

    def write(self, msg: str) -> None:
        """Print a message to the bar's stream without breaking the bar."""
        if self._bar.disable:
            self._out.write(msg + "\n")
            self._out.flush()
            return
        tqdm.write(msg, file=self._out)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
