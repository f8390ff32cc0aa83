"""``worldmodels dream RUN``: what a run's world model predicts open loop, next to the truth.

Windows of ``context + horizon`` steps are drawn from the run's replay (or a dataset written by
``worldmodels collect``); the agent observes ``context`` steps of each and imagines the rest
under the recorded actions (``Reporter.report``). Only windows whose imagined steps lie within
one episode are drawn. :func:`dream_media` returns the media as bytes; :func:`agent_media` does
the same for an agent in memory and windows from its replay in memory (a training run's
``run.report_every``); :func:`write_media` writes them as files.

* Image observations: the open-loop video (rows truth | model | error, one column per
  sequence, frames green while observed and red while imagined) as MP4 and GIF, and the
  per-step MSE and PSNR of the predicted frames.
* Vector observations: each predicted dimension against the truth (dims.png) and the per-step
  MSE.
* Decoder-free agents (TD-MPC2, MuZero): the per-step normalised distance between the model's
  open-loop latent and the encoder's latent of the true observation, a probe of the latent
  dynamics, not a prediction of observations (``core.probe.latent_distance``).
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingExtraError, UserError
from .video import gif_bytes, grid_frames, mp4_bytes

FPS = 10.0
"""Frames per second of the videos."""
MAX_DIMS = 12
"""dims.png shows at most this many vector dimensions (the first ones)."""
MAX_LINES = 3
"""dims.png draws at most this many sequences."""
LATENT_NOTES = {
    "tdmpc2": "TD-MPC2's consistency loss trains the dynamics to match the encoder's latent of "
    "the next observations.",
    "muzero": "MuZero's hidden state is not trained to match the representation of future "
    "observations (only rewards, values and policies), so a large distance is expected.",
}
_CHUNK_RE = re.compile(r"^(\d+)-([0-9a-f]{8})-(\d+)-(\d+)-(\d+)\.npz$")  # replay chunk names

Reader = Callable[[tuple[str, ...] | None], dict[str, np.ndarray]]
"""Reads one chunk: ``{key: [length, ...]}`` of the keys asked for (all with ``None``)."""
Streams = list[list[tuple[int, Reader]]]
"""Chunks grouped into streams of consecutive steps: ``(length, reader)`` each, in order."""
Source = tuple[Streams, str]
"""Where windows come from: the streams, and what to call them in messages."""


def dream_media(
    run_dir: str | Path,
    sequences: int = 3,
    context: int = 5,
    horizon: int = 45,
    dataset: str | Path | None = None,
) -> dict[str, Any]:
    """Open-loop predictions of the run's latest checkpoint on ``sequences`` windows of
    ``context + horizon`` steps from its replay (or ``dataset``), as in-memory media:

    ``{"gif": bytes | None, "mp4": bytes | None, "error_png": bytes, "dims_png": bytes | None,
    "errors": {"step": [...], "mse": [...], "psnr": [...] | None}, "kind": "image" | "vector" |
    "latent"}``. ``step`` is the position in the window (steps ``< context`` are observed);
    ``mse`` is the mean squared error per step (images scaled to [0, 1]; for ``latent`` the
    mean normalised latent distance) and ``psnr`` its PSNR in dB (images only). The videos
    exist for image observations, ``dims_png`` for vector ones. Bad input: ``UserError``."""
    for name, value in (("sequences", sequences), ("context", context), ("horizon", horizon)):
        if int(value) < 1:
            raise UserError(f"--{name} must be at least 1 (got {value})")
    try:
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise MissingExtraError("worldmodels dream", "viz", "matplotlib") from None
    from ..agents import get_agent_spec
    from ..core import Reporter
    from ..train.run import load_agent, load_run

    run_dir = Path(run_dir)
    info = load_run(run_dir)
    if not (run_dir / "checkpoints" / "latest.json").exists():
        raise UserError(
            f"{run_dir} has no checkpoint yet; fix: train it until it saves one "
            f"(worldmodels train --resume {run_dir})"
        )
    batch = sample_windows(_source(run_dir, info, dataset), sequences, context, horizon)
    agent = load_agent(run_dir)
    if not isinstance(agent, Reporter):
        raise UserError(f"{info.agent} has no open-loop report; worldmodels dream cannot show it")
    for key, spec in agent.obs_space.items():
        if key not in batch or batch[key].shape[2:] != spec.shape:
            raise UserError(
                f"the windows have no observation {key!r} of shape {list(spec.shape)} as "
                f"{info.agent} in {run_dir} sees; fix: give a dataset collected on {info.env} "
                f"with --obs {info.config.run.obs}"
            )
    steps = int(agent.counters.get("env_steps", 0))
    what = f"{info.agent} on {info.env or info.dataset} after {steps} env steps"
    return _windows_media(agent, batch, context, what, get_agent_spec(info.agent).family)


def agent_media(
    agent: Any,
    source: Source,
    family: str,
    what: str,
    sequences: int = 3,
    context: int = 5,
    horizon: int = 45,
) -> dict[str, Any]:
    """:func:`dream_media` of an agent in memory (a training run's, so no checkpoint is read)
    on windows from ``source`` (:func:`replay_source` of its replay in memory). ``family`` is
    the agent's (``agents.get_agent_spec(name).family``), ``what`` titles the plots. The
    agent's ``report`` runs under a forked torch RNG, so training goes on with the random
    numbers it would have drawn without it. Bad input: ``UserError``."""
    import torch

    from ..core import Reporter

    if not isinstance(agent, Reporter):
        raise UserError(f"{type(agent).__name__} has no open-loop report")
    batch = sample_windows(source, sequences, context, horizon)
    with torch.random.fork_rng():
        return _windows_media(agent, batch, context, what, family)


def _windows_media(
    agent: Any, batch: dict[str, np.ndarray], context: int, what: str, family: str
) -> dict[str, Any]:
    """The media of :func:`dream_media` from the ``Reporter`` agent's open-loop report on the
    windows ``batch`` ``{key: [B, T, ...]}``."""
    sequences = len(batch["action"])
    report = agent.report(batch, context)
    kind = "image" if "image/real" in report else "vector" if "vector/real" in report else "latent"
    errors = step_errors(report, kind, context)
    out: dict[str, Any] = {"gif": None, "mp4": None, "dims_png": None, "kind": kind}
    out["errors"] = errors
    note = LATENT_NOTES.get(family) if kind == "latent" else None
    out["error_png"] = error_png(errors, context, kind, what, sequences, note)
    if "vector/real" in report:
        out["dims_png"] = dims_png(report["vector/real"], report["vector/model"], context, what)
    if kind == "image":
        rows = [report[f"image/{x}"] for x in ("real", "model", "error")]
        frames = grid_frames(rows, context)
        out["mp4"], out["gif"] = mp4_bytes(frames, FPS), gif_bytes(frames, FPS)
    return out


FILES = {"mp4": "dream.mp4", "gif": "dream.gif", "error_png": "error.png", "dims_png": "dims.png"}


def write_media(media: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write :func:`dream_media`'s files that exist into ``out_dir`` (created): dream.mp4,
    dream.gif, error.png, dims.png, each to a temp file renamed into place (a crash leaves the
    previous file or the new one, never half of one). Returns their paths."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; fix: give a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, name in FILES.items():
        if media.get(key) is not None:
            path = out_dir / name
            tmp = out_dir / f".{name}.tmp"
            try:
                tmp.write_bytes(media[key])
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            paths.append(path)
    return paths


# Windows


def _source(run_dir: Path, info: Any, dataset: str | Path | None) -> Source:
    """The chunk files to draw windows from as streams, and what to call them in messages."""
    if dataset is None and info.dataset is None:
        files = [p for p in (run_dir / "replay").glob("*.npz") if _CHUNK_RE.match(p.name)]
        if not files:
            raise UserError(
                f"{run_dir} has no replay on disk; fix: pass --dataset DIR (a dataset written "
                "by worldmodels collect on the same env)"
            )
        return _streams(files), f"the replay of {run_dir}"
    from ..replay.dataset import CHUNKS, open_dataset

    data = open_dataset(dataset if dataset is not None else info.dataset)
    files = [data.path / CHUNKS / name for name in data.chunks]
    return _streams(files), f"dataset {data.path}"


def replay_source(replay: Any) -> Source:
    """The steps a :class:`~worldmodels.replay.ReplayBuffer` holds in memory (those not yet
    written to disk included) as a source of windows; nothing is copied."""
    streams: Streams = []
    for segment in replay.segments():
        streams.append([])
        for chunk in segment:
            n = len(chunk["is_first"])
            streams[-1].append((n, lambda keys, c=chunk: {k: c[k] for k in (keys or c)}))
    return streams, "the replay in memory"


def _streams(files: list[Path]) -> Streams:
    """Chunk files grouped into streams of consecutive steps: [(length, reader), ...] each."""
    keyed = []
    for p in files:
        _, uid, stream, seq, length = _CHUNK_RE.match(p.name).groups()
        keyed.append(((uid, int(stream)), int(seq), p, int(length)))
    keyed.sort(key=lambda e: (e[0], e[1]))
    streams: Streams = []
    last = None
    for key, seq, path, length in keyed:
        if last is None or last != (key, seq - 1):
            streams.append([])
        streams[-1].append((length, lambda keys, p=path, n=length: _read(p, n, keys)))
        last = (key, seq)
    return streams


def _read(path: Path, length: int, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k][:length] for k in (keys or f.files)}
    except Exception as e:  # a damaged file: name it
        raise UserError(f"cannot read {path} ({type(e).__name__}: {e})") from None


def sample_windows(
    source: Source, n: int, context: int, horizon: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """``n`` windows ``{key: [n, context + horizon, ...]}`` from the chunks of ``source``
    (streams, description), drawn uniformly (seeded) among those whose imagined steps
    ``context..`` hold no episode start; with fewer such windows than ``n``, some repeat."""
    streams, what = source
    length = context + horizon
    firsts = _firsts(streams)
    starts, ids = [], []
    for i, first in enumerate(firsts):
        if len(first) < length:
            continue
        cs = np.concatenate([[0], np.cumsum(first.astype(np.int64))])
        s = np.arange(len(first) - length + 1)
        ok = s[cs[s + length] == cs[s + context]]
        starts.append(ok)
        ids.append(np.full(len(ok), i))
    starts_all = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    if len(starts_all) == 0:
        total = sum(len(f) for f in firsts)
        best = max((_longest_imagination(f, context) for f in firsts), default=0)
        fix = (
            f"pass --horizon {best} or less"
            if best >= 1
            else "pass a smaller --context, or collect longer episodes"
        )
        raise UserError(
            f"{what} has no window of context + horizon = {length} steps whose imagined steps "
            f"lie in one episode (it holds {total} steps; with --context {context} at most "
            f"{best} steps can be imagined); fix: {fix}"
        )
    ids_all = np.concatenate(ids)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(starts_all), size=n, replace=len(starts_all) < n)
    cache: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    windows = []
    for j in pick:
        i = int(ids_all[j])
        start = int(starts_all[j])
        parts, pos = [], 0
        for c, (n_, read) in enumerate(streams[i]):
            if pos + n_ > start and pos < start + length:
                if (i, c) not in cache:
                    cache[i, c] = read(None)
                lo, hi = max(start - pos, 0), min(start + length - pos, n_)
                parts.append({k: v[lo:hi] for k, v in cache[i, c].items()})
            pos += n_
        windows.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    return {k: np.stack([w[k] for w in windows]) for k in windows[0]}


def longest_horizon(
    run_dir: str | Path, context: int = 5, dataset: str | Path | None = None
) -> int:
    """The longest ``horizon`` :func:`dream_media` can imagine after ``context`` observed steps
    in the run's replay (or ``dataset``): 0 when no window fits (episodes too short for the
    context, or no replay yet). Bad input (not a run, no replay): ``UserError``."""
    from ..train.run import load_run

    run_dir = Path(run_dir)
    return source_horizon(_source(run_dir, load_run(run_dir), dataset), context)


def source_horizon(source: Source, context: int = 5) -> int:
    """:func:`longest_horizon` of the windows of ``source`` (e.g. :func:`replay_source`)."""
    return max((_longest_imagination(f, context) for f in _firsts(source[0])), default=0)


def _firsts(streams: Streams) -> list[np.ndarray]:
    """The ``is_first`` flags of each stream, its chunks concatenated."""
    return [np.concatenate([read(("is_first",))["is_first"] for _, read in s]) for s in streams]


def _longest_imagination(first: np.ndarray, context: int) -> int:
    """Most steps a window of this stream can imagine after ``context`` observed ones without
    an episode start among them."""
    edges = np.flatnonzero(first)
    lows = np.concatenate([[0], edges + 1])  # runs of rows without an episode start
    highs = np.concatenate([edges, [len(first)]])
    return int(max(0, (highs - np.maximum(lows, context)).max()))


# Metrics and plots


def step_errors(report: dict[str, np.ndarray], kind: str, context: int) -> dict[str, Any]:
    """Per-step error over all sequences: ``{"step", "mse", "psnr"}`` (see :func:`dream_media`)."""
    if kind == "latent":
        mse = report["latent/distance"].astype(np.float64).mean(0)
        psnr = None
    else:
        real = report[f"{kind}/real"].astype(np.float64)
        model = report[f"{kind}/model"].astype(np.float64)
        if kind == "image":
            real, model = real / 255.0, model / 255.0
        mse = ((real - model) ** 2).reshape(*real.shape[:2], -1).mean((0, 2))
        psnr = [10.0 * math.log10(1.0 / max(m, 1e-10)) for m in mse] if kind == "image" else None
    return {"step": list(range(len(mse))), "mse": [float(m) for m in mse], "psnr": psnr}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _mark_context(ax, context: int) -> None:
    ax.axvspan(-0.5, context - 0.5, color="tab:green", alpha=0.12, label="observed (context)")
    ax.axvline(context - 0.5, color="tab:green", linestyle="--", linewidth=1)


def error_png(
    errors: dict[str, Any], context: int, kind: str, what: str, n: int, note: str | None = None
) -> bytes:
    """Error against the step in the window, the observed steps shaded: MSE (and PSNR for
    images), or the latent distance of the probe, labelled as such; ``n`` sequences,
    ``note`` printed beneath."""
    from matplotlib.figure import Figure

    panels = [("mse", "MSE of the prediction")]
    if kind == "image":
        panels = [("mse", "MSE per pixel (0..1 scale)"), ("psnr", "PSNR (dB)")]
    if kind == "latent":
        panels = [("mse", "normalised latent distance")]
    fig = Figure(figsize=(6.5, 2.6 * len(panels) + (0.6 if note else 0.2)), dpi=110)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (key, label) in zip(axes, panels):
        ax.plot(errors["step"], errors[key], marker=".", color="tab:red" if key == "mse" else "k")
        _mark_context(ax, context)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("step in window (observed, then imagined open loop)")
    if kind == "latent":
        title = f"Latent probe, not a prediction of observations ({n} sequences)\n{what}"
    else:
        title = f"Open-loop prediction error ({n} sequences)\n{what}"
    axes[0].set_title(title, fontsize=10)
    if note:
        fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    return _png(fig)


def dims_png(real: np.ndarray, model: np.ndarray, context: int, what: str) -> bytes:
    """Each vector dimension (the first :data:`MAX_DIMS`) over the window: truth solid, model
    dashed, one colour per sequence (the first :data:`MAX_LINES`), the observed steps shaded."""
    from matplotlib.figure import Figure

    D = real.shape[-1]
    dims = min(D, MAX_DIMS)
    cols = min(dims, 4)
    lines = min(real.shape[0], MAX_LINES)
    rows = -(-dims // cols)
    fig = Figure(figsize=(3.0 * cols, 2.2 * rows + 0.6), dpi=110)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    steps = np.arange(real.shape[1])
    for d, ax in enumerate(axes):
        if d >= dims:
            ax.set_visible(False)
            continue
        for b in range(lines):
            ax.plot(steps, real[b, :, d], color=f"C{b}", linewidth=1.2)
            ax.plot(steps, model[b, :, d], color=f"C{b}", linewidth=1.2, linestyle="--")
        _mark_context(ax, context)
        ax.set_title(f"dim {d}", fontsize=9)
        ax.tick_params(labelsize=7)
    shown = f"dimensions 0-{dims - 1} of {D}" if dims < D else f"{D} dimensions"
    fig.suptitle(
        f"Truth (solid) and open-loop model (dashed), {shown}, {lines} sequences "
        f"(one colour each); shaded: observed\n{what}",
        fontsize=9,
    )
    fig.tight_layout()
    return _png(fig)
