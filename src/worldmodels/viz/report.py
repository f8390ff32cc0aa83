"""``worldmodels report RUN [RUN ...] --out report.html``: one self-contained HTML page on runs.

For each run: its config and provenance, the in-training evaluations (and the final eval of the
job launcher, ``OUT/NAME.final.json``, when there is one), its returns over training,
throughput, the imagined-vs-real return gap (``eval/imagined_return``, ``eval/real_return``,
``eval/return_gap``) and the open-loop media of :func:`worldmodels.viz.dream.dream_media`.
Runs of one experiment (same config but the seed) are grouped: their learning curves are drawn
as the median over seeds with a min-max band (``logging.plot``).

:func:`write_run_report` writes a training run's own report and open-loop media while it trains
(``run.report_every``), from the agent and replay in memory.

The page loads nothing: figures are PNGs and videos MP4 and GIF, all embedded as ``data:``
URIs; the styles are inline and there is no script. A Content-Security-Policy forbids any
request to anything but ``data:``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import MissingExtraError, UserError

SEQUENCES = 3
"""Open-loop windows shown per run (video columns)."""
CONTEXT = 5
"""Observed steps of each window."""
HORIZON = 45
"""Imagined steps of each window; shortened to the longest that fits the run's episodes."""
MEDIA_CAP = 3_000_000
"""A video larger than this many bytes is left out (with a note)."""
GIF_BUDGET = 6_000_000
"""GIFs of all runs together, in bytes: once spent, the later runs show only the MP4 (same
frames, a few percent of the size), so a report of many pixel runs stays near 10 MB."""
EVAL_ROWS = 40
"""In-training evaluations listed per run at most (evenly spread; the first and last always)."""
FIRST_EVAL_KEYS = ["return_mean", "return_std", "return_min", "return_max", "length_mean"]
LAST_EVAL_KEYS = ["imagined_return", "real_return", "return_gap"]
GAP_KEYS = ["eval/imagined_return", "eval/real_return", "eval/return_gap"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:1em 2em;color:#222;background:#fff;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}
img,video{max-width:100%;height:auto;border:1px solid #ddd;margin:.3em 0}
figure{margin:.8em 0}figcaption{font-size:.85em;color:#444;max-width:60em}
.note{color:#8a4b00;background:#fff6e5;border-left:4px solid #f0a030;padding:.3em .6em}
.media{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.media img,.media video{width:26em;max-width:100%;image-rendering:pixelated}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.8em;max-height:30em}
code{background:#f2f2f2;padding:0 .2em}nav a{margin-right:1em}
"""
CSP = (
    "default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)


Dream = tuple[dict | None, int, str | None]
"""A run's open-loop section: (media of ``dream_media``, horizon, None) or (None, 0, why not)."""


def write_report(
    paths: list[str | Path],
    out: str | Path = "report.html",
    dreams: dict[Path, Dream] | None = None,
) -> tuple[Path, int]:
    """Write the report of the run directories ``paths`` (or directories holding runs, as
    ``worldmodels plot`` takes them) to ``out``; returns its path and size in bytes.
    ``dreams`` gives the open-loop media of some runs (by directory) instead of
    ``dream_media`` of their checkpoint. Bad input (not a run, an unwritable ``out``, the
    ``viz`` extra missing): ``UserError``."""
    out = Path(out)
    _check_writable(out)
    check_extras()
    from ..logging.plot import expand_runs

    runs = expand_runs(paths)
    text = build_report(runs, dreams)
    data = text.encode("utf-8")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)  # never a half-written report
    except OSError as e:
        raise UserError(
            f"cannot write --out {out} ({e.strerror}); fix: choose another path"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return out, len(data)


def _check_writable(out: Path) -> None:
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; fix: give a file name, e.g. report.html")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(
                    f"cannot write --out {out}: {parent} is a file; fix: choose a path in a "
                    "writable directory"
                )
            break
    probe = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(
            f"cannot write --out {out} ({e.strerror}); fix: choose a path in a writable directory"
        ) from None


def check_extras(what: str = "worldmodels report") -> None:
    """Raise ``MissingExtraError`` (naming ``what``) when a package of the ``viz`` extra that
    the report needs is missing."""
    for module in ("matplotlib.figure", "imageio.v3", "imageio_ffmpeg"):
        try:
            __import__(module)
        except ImportError:
            raise MissingExtraError(what, "viz", module.split(".")[0]) from None


# The page


def build_report(runs: list[Path], dreams: dict[Path, Dream] | None = None) -> str:
    """The HTML text of the report of the run directories ``runs`` (``dreams``: see
    :func:`write_report`)."""
    from ..logging.metrics import read_metrics

    infos = [_RunData(run, read_metrics(run)) for run in runs]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>worldmodels report: {_e(', '.join(r.title for r in infos))}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>worldmodels report</h1>",
        f"<p>{len(infos)} run{'s'[: len(infos) > 1]}; written {_e(time.strftime('%Y-%m-%d %H:%M'))}"
        f" by worldmodels {_e(__version__)}.</p>",
        "<nav>" + "".join(f'<a href="#run{i}">{_e(r.title)}</a>' for i, r in enumerate(infos)),
        "</nav>",
        _overview(infos),
        _grouped(runs),
    ]
    budget = {"gif": GIF_BUDGET}
    for i, r in enumerate(infos):
        parts.append(_run_section(i, r, budget, (dreams or {}).get(r.run)))
    parts.append("</body></html>")
    return "\n".join(parts)


class _RunData:
    """What the report reads of one run: config.json as written, its RunInfo, metrics rows."""

    def __init__(self, run: Path, rows: list[dict]):
        from ..train.run import load_run

        self.run = run
        self.rows = rows
        self.info = load_run(run)
        self.raw = json.loads((run / "config.json").read_text())
        self.evals = [r for r in rows if _finite(r.get("eval/return_mean"))]
        env = self.info.env or f"dataset {self.info.dataset}"
        self.title = f"{self.info.agent} {env} seed {self.info.seed}"
        self.final = _final_eval(run)

    @property
    def last_step(self) -> int | None:
        return int(self.rows[-1]["step"]) if self.rows else None


def _final_eval(run: Path) -> dict | None:
    """The final eval the job launcher keeps next to a run (``OUT/NAME.final.json``)."""
    path = run.parent / f"{run.name}.final.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _overview(infos: list[_RunData]) -> str:
    head = [
        "run",
        "agent",
        "env",
        "presets",
        "seed",
        "steps",
        "last eval",
        "best eval",
        "final eval",
        "return gap (last)",
        "env steps/s",
    ]
    rows = []
    for i, r in enumerate(infos):
        last = r.evals[-1]["eval/return_mean"] if r.evals else None
        best = max((e["eval/return_mean"] for e in r.evals), default=None)
        gaps = [x["eval/return_gap"] for x in r.rows if _finite(x.get("eval/return_gap"))]
        final = r.final.get("return_mean") if r.final else None
        rows.append(
            [
                f'<a href="#run{i}">{_e(r.run.name)}</a>',
                _e(r.info.agent),
                _e(r.info.env or f"dataset {r.info.dataset}"),
                _e(", ".join(r.info.presets) or "-"),
                str(r.info.seed),
                _num(r.last_step),
                _num(last),
                _num(best),
                _num(final if _finite(final) else None),
                _num(gaps[-1] if gaps else None),
                _num(_throughput(r.rows)["env_steps_per_s"]),
            ]
        )
    return "<h2>Runs side by side</h2>" + _table(head, rows, left=4)


def _grouped(runs: list[Path]) -> str:
    """Learning curves (eval return, and the return gap when logged) grouped over seeds."""
    from ..logging.plot import group_curves, load_curves

    out = ["<h2>Learning curves, grouped over seeds</h2>"]
    try:
        groups = group_curves(load_curves(runs, "eval/return_mean"))
    except UserError:
        return "\n".join([*out, _note("No run has logged an evaluation (eval/return_mean) yet.")])
    out.append(
        _figure(
            _curves_png(groups, "eval/return_mean"),
            "Greedy evaluation return against agent steps: per group of runs that differ only in "
            "the seed, the median over seeds (thick), the min-max band and each seed (thin).",
        )
    )
    head = [
        "group",
        "seed values",
        "last step",
        "last (median [min, max])",
        "best (median [min, max])",
    ]
    rows = []
    for g in groups:
        s = g.summary()
        rows.append(
            [
                _e(s["group"]),
                _e(", ".join(map(str, s["seeds"]))),
                _e(", ".join(map(str, s["last_step"]))),
                _spread(s["last"]),
                _spread(s["best"]),
            ]
        )
    out.append(_table(head, rows, left=1))
    try:
        gap_groups = group_curves(load_curves(runs, "eval/return_gap"))
    except UserError:
        out.append(
            _note(
                "No run has logged eval/return_gap: no imagined-vs-real comparison over seeds "
                "(see each run's section)."
            )
        )
    else:
        out.append(
            _figure(
                _curves_png(gap_groups, "eval/return_gap"),
                "Return gap (imagined - real return over the same first steps of the eval "
                "episodes) against agent steps, grouped over seeds. A large positive gap is a "
                "policy that exploits errors of its model.",
            )
        )
    return "\n".join(out)


def _curves_png(groups, metric: str) -> bytes:
    from ..logging.plot import curves_figure

    fig = curves_figure(groups, metric=metric, size=(7.0, 3.8), dpi=100)
    return _png(fig)


def _run_section(i: int, r: _RunData, budget: dict[str, int], dream: Dream | None) -> str:
    out = [f'<h2 id="run{i}">{_e(r.title)}</h2>']
    out.append(_provenance(r))
    out.append("<h3>Evaluation</h3>")
    out.append(_final_block(r))
    out.append(_eval_table(r))
    out.append(_returns_block(r))
    out.append("<h3>Throughput</h3>")
    out.append(_throughput_block(r))
    out.append("<h3>Imagined against real return</h3>")
    out.append(_gap_block(r))
    out.append("<h3>Open-loop predictions of the model</h3>")
    out.append(_dream_block(r, budget, dream))
    return "<section>" + "\n".join(out) + "</section>"


def _provenance(r: _RunData) -> str:
    info, raw = r.info, r.raw
    cfg = info.config
    machine = raw.get("machine") or raw.get("hardware") or _launcher_hardware(r.run)
    items = [
        ("run directory", _e(str(r.run))),
        ("agent", _e(info.agent)),
        ("env", _e(info.env or "-")),
        ("dataset (offline run)", _e(info.dataset)) if info.dataset else None,
        ("presets", _e(", ".join(info.presets) or "-")),
        ("seed", str(info.seed)),
        ("observations (run.obs)", _e(str(cfg.run.obs))),
        ("planned steps (run.steps)", _num(cfg.run.steps)),
        ("steps reached (last log row)", _num(r.last_step)),
        ("device setting", _e(str(cfg.run.device))),
        ("library version", _e(str(raw.get("version", "not recorded")))),
        ("commit", _e(str(raw["commit"]))) if "commit" in raw else None,
        ("machine", _e(machine) if machine else "not recorded in the run"),
        ("config hash", f"<code>{_e(info.config_hash)}</code>"),
    ]
    rows = [[f"<b>{k}</b>", v] for k, v in (x for x in items if x)]
    config = json.dumps(raw.get("config", {}), indent=1, sort_keys=True)
    return (
        "<h3>Config and provenance</h3>"
        + _table([], rows, left=2)
        + "<details><summary>resolved config (config.json)</summary>"
        + f"<pre>{_e(config)}</pre></details>"
    )


def _launcher_hardware(run: Path) -> str | None:
    """The machine the job launcher recorded in ``OUT/summary.json`` next to the run."""
    try:
        data = json.loads((run.parent / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and run.name in (data.get("results") or {}):
        return data.get("hardware")
    return None


def _final_block(r: _RunData) -> str:
    if not r.final:
        return (
            "<p>Final eval: none recorded next to this run (the job launcher keeps it in "
            f"<code>{_e(r.run.name)}.final.json</code>; <code>worldmodels eval {_e(str(r.run))}"
            "</code> measures one). The last in-training evaluation is the last row below.</p>"
        )
    if "error" in r.final:
        return _note(f"Final eval: {r.final['error']}")
    keys = [k for k in FIRST_EVAL_KEYS if k in r.final]
    keys += sorted(k for k in r.final if k not in keys and _finite(r.final[k]))
    keys = [k for k in keys if k not in LAST_EVAL_KEYS] + [k for k in keys if k in LAST_EVAL_KEYS]
    return "<p>Final eval (greedy, after training):</p>" + _table(
        keys, [[_num(r.final[k]) for k in keys]]
    )


def _eval_table(r: _RunData) -> str:
    if not r.evals:
        return _note("No in-training evaluation logged yet (eval/return_mean in metrics.jsonl).")
    logged = {k.removeprefix("eval/") for e in r.evals for k in e if k.startswith("eval/")}
    keys = [k for k in FIRST_EVAL_KEYS if k in logged]
    keys += sorted(logged - set(FIRST_EVAL_KEYS) - set(LAST_EVAL_KEYS))
    keys = [f"eval/{k}" for k in keys + [k for k in LAST_EVAL_KEYS if k in logged]]
    rows = r.evals
    if len(rows) > EVAL_ROWS:
        idx = sorted({round(j * (len(rows) - 1) / (EVAL_ROWS - 1)) for j in range(EVAL_ROWS)})
        rows = [rows[j] for j in idx]
    head = ["step", *(k.removeprefix("eval/") for k in keys)]
    body = [[_num(e["step"]), *(_num(e.get(k)) for k in keys)] for e in rows]
    shown = f" ({len(rows)} of {len(r.evals)}, evenly spread)" if len(rows) < len(r.evals) else ""
    return f"<p>In-training evaluations{shown}:</p>" + _table(head, body)


def _returns_block(r: _RunData) -> str:
    key = "train/return_mean"
    train = [(x["step"], x[key]) for x in r.rows if _finite(x.get(key))]
    if not r.evals and not train:
        return ""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.4), dpi=100)
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train), color="tab:gray", linewidth=1, label="train/return_mean (explore)")
    if r.evals:
        s = [e["step"] for e in r.evals]
        ax.plot(s, [e["eval/return_mean"] for e in r.evals], "o-", color="tab:blue", label="eval")
        lo = [e.get("eval/return_min") for e in r.evals]
        hi = [e.get("eval/return_max") for e in r.evals]
        if all(_finite(v) for v in lo + hi):
            band = {"color": "tab:blue", "alpha": 0.15, "linewidth": 0}
            ax.fill_between(s, lo, hi, label="eval min-max", **band)
    ax.set_xlabel("agent steps")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _figure(
        _png(fig),
        "Returns of this run: greedy evaluations (band: min-max over the "
        "eval episodes) and the training episodes.",
    )


def _throughput(rows: list[dict]) -> dict[str, float | None]:
    fps = [x["env_steps_per_s"] for x in rows if _finite(x.get("env_steps_per_s"))]
    ups = [x["updates_per_s"] for x in rows if _finite(x.get("updates_per_s"))]
    last = rows[-1] if rows else {}
    wall = last.get("time") if _finite(last.get("time")) else None
    updates = max((x["updates"] for x in rows if _finite(x.get("updates"))), default=None)
    step = last.get("step")
    return {
        "env_steps_per_s": _median(fps),
        "updates_per_s": _median(ups),
        "wall_s": wall,
        "updates": updates,
        "overall": step / wall if wall and _finite(step) else None,
        "nonfinite": max(
            (x["nonfinite_updates"] for x in rows if _finite(x.get("nonfinite_updates"))),
            default=None,
        ),
    }


def _throughput_block(r: _RunData) -> str:
    t = _throughput(r.rows)
    if t["env_steps_per_s"] is None and t["wall_s"] is None:
        return _note("No throughput logged yet (env_steps_per_s in metrics.jsonl).")
    head = [
        "env steps/s (median of log rows)",
        "updates/s (median)",
        "agent steps / wall time",
        "wall time",
        "updates",
        "skipped non-finite updates",
    ]
    wall = t["wall_s"]
    row = [
        _num(t["env_steps_per_s"]),
        _num(t["updates_per_s"]),
        _num(t["overall"]),
        f"{wall / 60:.1f} min" if wall is not None else "-",
        _num(t["updates"]),
        _num(t["nonfinite"]),
    ]
    return _table(head, [row]) + (
        "<p>The log rows measure collecting and updating between two rows; the overall rate "
        "also counts evaluations and checkpoints.</p>"
    )


def _gap_block(r: _RunData) -> str:
    rows = [x for x in r.rows if any(_finite(x.get(k)) for k in GAP_KEYS)]
    if not rows:
        return _note(
            "This run logged no eval/imagined_return, eval/real_return or eval/return_gap: the "
            "gap is measured at evaluations when run.gap_horizon > 0 by agents that imagine "
            "(Imaginer); a run that did not measure it has none."
        )
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 5.0), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for key, color in (("eval/imagined_return", "tab:purple"), ("eval/real_return", "tab:green")):
        pts = [(x["step"], x[key]) for x in rows if _finite(x.get(key))]
        if pts:
            top.plot(*zip(*pts), "o-", color=color, label=key)
    top.set_ylabel("return over the first steps")
    top.legend(fontsize=8, loc="best")
    top.grid(alpha=0.3)
    pts = [(x["step"], x["eval/return_gap"]) for x in rows if _finite(x.get("eval/return_gap"))]
    if pts:
        bottom.plot(*zip(*pts), "o-", color="tab:red", label="eval/return_gap")
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_ylabel("imagined - real")
    bottom.set_xlabel("agent steps")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    horizon = getattr(r.info.config.run, "gap_horizon", None)
    over = f"their first {horizon} steps" if horizon else "their first steps"
    return _figure(
        _png(fig),
        "The return the agent predicts for its own greedy behaviour inside its model "
        f"(imagined) against the return the same eval episodes earned over {over} (real). "
        "A large positive gap is a policy that exploits errors of its model.",
    )


def _dream_block(r: _RunData, budget: dict[str, int], dream: Dream | None = None) -> str:
    """The open-loop media of the run; ``budget["gif"]``: bytes of GIF still allowed (spent
    here)."""
    from .dream import LATENT_NOTES

    media, horizon, error = dream if dream is not None else _dream(r.run)
    if error:
        return _note(f"No open-loop media: {error}")
    assert media is not None
    shortened = (
        f" (the horizon is shortened from {HORIZON} to the longest that fits this run's episodes)"
        if horizon < HORIZON
        else ""
    )
    intro = (
        f"<p>{SEQUENCES} windows from the replay, drawn with a fixed seed: the model observes "
        f"{CONTEXT} steps, then imagines {horizon} steps from the recorded actions alone"
        f"{shortened}.</p>"
    )
    out = [intro, '<div class="media">']
    notes = []
    if media.get("mp4"):
        if len(media["mp4"]) <= MEDIA_CAP:
            out.append(
                '<figure><video controls loop muted playsinline preload="metadata" '
                f'src="{_uri("video/mp4", media["mp4"])}"></video>'
                "<figcaption>MP4 (H.264)</figcaption></figure>"
            )
        else:
            notes.append(f"the MP4 ({_mb(len(media['mp4']))}) is larger than the cap")
    if media.get("gif"):
        size = len(media["gif"])
        if size <= MEDIA_CAP and size <= budget["gif"]:
            budget["gif"] -= size
            out.append(
                f'<figure><img alt="open-loop video (GIF)" src="{_uri("image/gif", media["gif"])}">'
                "<figcaption>GIF (loops)</figcaption></figure>"
            )
        elif size > MEDIA_CAP:
            notes.append(f"the GIF ({_mb(size)}) is larger than the cap")
        else:
            notes.append(
                f"the GIF ({_mb(size)}): the report's GIFs are capped at {_mb(GIF_BUDGET)} in "
                "all; the MP4 shows the same frames"
            )
    out.append("</div>")
    if media["kind"] == "image":
        out.append(
            "<p>One column per window; rows: truth, model, error (absolute difference). Frames "
            "are green while the model observes and red while it imagines; the strip beneath "
            "marks the current step. During the context the model row is the decoder's "
            "reconstruction, after it the open-loop prediction.</p>"
        )
    if notes:
        out.append(_note(f"Left out: {'; '.join(notes)} (at most {_mb(MEDIA_CAP)} a video)."))
    if media["kind"] == "latent":
        from ..agents import get_agent_spec

        family = get_agent_spec(r.info.agent).family
        caption = (
            "Latent probe, not a prediction of observations: this agent has no decoder. The "
            "model's latent is rolled open loop from the encoding of the last observed step "
            "with the recorded actions and compared with the encoder's latent of the true "
            "observation: the mean squared difference over the latent's elements, divided by "
            "the mean squared element of the encoded latents (0 over the context; 1 is off by "
            "as much as a latent is large). " + LATENT_NOTES.get(family, "")
        )
    elif media["kind"] == "image":
        caption = "Per-step error of the predicted frames over all windows: MSE (pixels scaled "
        caption += "to 0..1) and PSNR; the observed steps shaded."
    else:
        caption = "Per-step MSE of the predicted observation vector over all windows; the "
        caption += "observed steps shaded."
    out.append(_figure(media["error_png"], caption))
    if media.get("dims_png"):
        out.append(
            _figure(
                media["dims_png"],
                "Each observation dimension over the window: truth solid, model dashed, one "
                "colour per window.",
            )
        )
    return "\n".join(out)


def _dream(run: Path) -> tuple[dict | None, int, str | None]:
    """``dream_media`` with the default window, else the longest horizon that fits the run's
    episodes; (media, horizon, None) or (None, 0, the one-line reason)."""
    from .dream import dream_media, longest_horizon

    try:
        return dream_media(run, SEQUENCES, CONTEXT, HORIZON), HORIZON, None
    except MissingExtraError:
        raise
    except UserError as e:
        first = str(e)
    try:
        horizon = longest_horizon(run, CONTEXT)
        if 1 <= horizon < HORIZON:
            return dream_media(run, SEQUENCES, CONTEXT, horizon), horizon, None
    except MissingExtraError:
        raise
    except UserError as e:
        return None, 0, str(e)
    return None, 0, first


def write_run_report(run_dir: str | Path, agent: Any, replay: Any, what: str) -> str | None:
    """A training run's report of itself (``run.report_every``): the open-loop media of the
    agent in memory on windows of its replay in memory (no checkpoint is read, nothing is
    flushed), :data:`SEQUENCES` windows of :data:`CONTEXT` observed steps and the report's
    horizon (:data:`HORIZON`, or the longest that fits the episodes held), written to
    ``RUN/dream/`` (:func:`~worldmodels.viz.dream.write_media`), then ``RUN/report.html`` with
    those media. Every file goes to a temp file renamed into place. ``what`` titles the plots
    (e.g. ``dreamerv3 on gym:CartPole-v1 after 5000 env steps``). Returns None once written,
    or, writing nothing, why not: the replay holds no window that fits yet."""
    from ..agents import get_agent_spec
    from ..train.run import load_run
    from .dream import agent_media, replay_source, source_horizon, write_media

    run_dir = Path(run_dir)
    source = replay_source(replay)
    horizon = min(HORIZON, source_horizon(source, CONTEXT))
    if horizon < 1:
        return (
            f"the replay holds no window of {CONTEXT} observed and 1 imagined steps within one "
            f"episode yet ({len(replay)} steps)"
        )
    family = get_agent_spec(load_run(run_dir).agent).family
    try:
        media = agent_media(agent, source, family, what, SEQUENCES, CONTEXT, horizon)
    except MissingExtraError:
        raise
    except UserError as e:
        dream: Dream = (None, 0, str(e))
    else:
        write_media(media, run_dir / "dream")
        dream = (media, horizon, None)
    write_report([run_dir], run_dir / "report.html", {run_dir: dream})
    return None


# HTML pieces


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure(png: bytes, caption: str) -> str:
    return (
        f'<figure><img alt="{_e(caption[:80])}" src="{_uri("image/png", png)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _table(head: list[str], rows: list[list[str]], left: int = 0) -> str:
    """Cells are HTML already; the first ``left`` columns are left-aligned."""

    def cls(j: int) -> str:
        return ' class="l"' if j < left else ""

    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th{cls(j)}>{_e(h)}</th>" for j, h in enumerate(head)))
    for row in rows:
        out.append("<tr>" + "".join(f"<td{cls(j)}>{c}</td>" for j, c in enumerate(row)))
    out.append("</table>")
    return "".join(out)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _num(value: Any) -> str:
    """A number for a table cell: integers as they are, others to 4 significant digits (one
    decimal from 1000 on); '-' for none."""
    if not _finite(value):
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value)}"
    if abs(value) >= 1000:
        return f"{value:.1f}"
    return f"{value:.4g}"


def _spread(s: dict[str, float]) -> str:
    return f"{_num(s['median'])} [{_num(s['min'])}, {_num(s['max'])}]"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
