"""Learning curves of run directories: ``worldmodels plot RUN [RUN ...] --out curves.png``.

Runs that differ only in their seed (and in run settings a resume may change, such as the
device or ``stop_at_return``) form one group. Each group is drawn as the median over its seeds
with a min-max band, each seed as a thin line; a dashed line marks ``--target``. Steps are
agent steps as logged (``metrics.jsonl``); at a step only the seeds that logged it count, so a
seed that stopped early (``stop_at_return``) leaves the median to the others from there on.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RESUME_SETTINGS
from ..errors import UserError
from .metrics import read_metrics


@dataclass
class Curve:
    """One run: its label parts and the (step, value) points of one metric."""

    run_dir: Path
    agent: str
    env: str
    seed: int
    presets: list[str]
    key: str
    """Identifies the experiment: the resolved config (``load_run``) but the seed and resume
    settings."""
    points: list[tuple[int, float]]


@dataclass
class Group:
    label: str
    curves: list[Curve] = field(default_factory=list)

    def aggregate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Steps, and the median, min and max over the seeds that logged each step."""
        by_step: dict[int, list[float]] = {}
        for c in self.curves:
            for step, value in c.points:
                by_step.setdefault(step, []).append(value)
        steps = np.array(sorted(by_step), dtype=np.int64)
        vals = [np.asarray(by_step[s]) for s in steps]
        med = np.array([np.median(v) for v in vals])
        return steps, med, np.array([v.min() for v in vals]), np.array([v.max() for v in vals])

    def summary(self) -> dict[str, Any]:
        """Per seed its last and best value; median, min and max of each over the seeds."""
        last = [c.points[-1][1] for c in self.curves]
        best = [max(v for _, v in c.points) for c in self.curves]
        return {
            "group": self.label,
            "seeds": sorted(c.seed for c in self.curves),
            "last_step": [c.points[-1][0] for c in self.curves],
            "last": _spread(last),
            "best": _spread(best),
        }


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories among ``paths``; a directory without config.json stands for the run
    directories directly inside it (e.g. ``runs/issue3``)."""
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "config.json").exists():
            runs.append(path)
        elif path.is_dir():
            inner = sorted(p for p in path.iterdir() if (p / "config.json").exists())
            if not inner:
                raise UserError(
                    f"{path} holds no run directory (no config.json in it or one level below); "
                    "fix: give run directories printed by `worldmodels train`"
                )
            runs.extend(inner)
        else:
            raise UserError(f"{path} does not exist; fix: give a run directory")
    if not runs:
        raise UserError("no run directories given; e.g. `worldmodels plot runs/<run> ...`")
    unique = {p.resolve(): p for p in reversed(runs)}  # a run named twice counts once
    return [p for p in runs if unique.get(p.resolve()) is p]


def _finite(value: Any) -> bool:
    """A plottable number (the logger writes NaN and inf as null)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _experiment_key(data: dict, run: Path) -> str:
    """Hash of agent, env, presets and the config ``load_run`` resolves (keys an older
    config.json lacks take the values that run trained with, so runs of one experiment group
    together whichever version wrote them), without the resume-time run settings."""
    from ..config import to_dict
    from ..train.run import load_run

    config = to_dict(load_run(run).config)
    for dotted in RESUME_SETTINGS:  # "run.steps", or a top-level key such as "compile"
        *sections, name = dotted.split(".")
        node = config
        for section in sections:
            node = node.get(section, {})
        node.pop(name, None)
    ident = {k: data.get(k) for k in ("agent", "env", "presets")} | {"config": config}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]


def load_curves(paths: list[str | Path], metric: str) -> list[Curve]:
    """The ``metric`` curve of every run directory in ``paths`` (see :func:`expand_runs`)."""
    curves, available = [], set()
    for run in expand_runs(paths):
        try:
            data = json.loads((run / "config.json").read_text())
            agent, env, seed = data["agent"], data["env"], int(data["seed"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise UserError(f"{run}/config.json is corrupt ({e}); fix: restore it") from None
        rows = read_metrics(run)
        available.update(k for r in rows for k in r if k not in ("step", "time"))
        points = [(int(r["step"]), float(r[metric])) for r in rows if _finite(r.get(metric))]
        if points:
            presets = list(data.get("presets", []))
            curves.append(Curve(run, agent, env, seed, presets, _experiment_key(data, run), points))
    if not curves:
        evals = sorted(k for k in available if k.endswith("return_mean"))
        raise UserError(
            f"no run has logged {metric!r} yet; fix: --metric one of "
            f"{', '.join(evals) or 'the keys in metrics.jsonl'}"
        )
    return curves


def group_curves(curves: list[Curve]) -> list[Group]:
    """Runs of one experiment (same config but the seed) in one group, labelled agent, env and
    presets; experiments that would share a label get their config key appended."""
    groups: dict[str, Group] = {}
    for c in curves:
        presets = [p for p in c.presets if p != c.agent]
        label = f"{c.agent} {c.env}" + (f" [{'+'.join(presets)}]" if presets else "")
        groups.setdefault(c.key, Group(label)).curves.append(c)
    labels = [g.label for g in groups.values()]
    for key, g in groups.items():
        if labels.count(g.label) > 1:
            g.label += f" ({key})"
    for g in groups.values():
        g.curves.sort(key=lambda c: c.seed)
    return list(groups.values())


def plot_runs(
    paths: list[str | Path],
    out: str | Path,
    *,
    metric: str = "eval/return_mean",
    target: float | None = None,
    title: str | None = None,
) -> list[dict[str, Any]]:
    """Draw the groups' curves into ``out`` (png, pdf or svg by its suffix); returns each
    group's :meth:`Group.summary`."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UserError(f"--out {out}: give a .png, .pdf or .svg file")
    groups = group_curves(load_curves(paths, metric))
    fig = curves_figure(groups, metric=metric, target=target, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    try:
        fig.savefig(tmp)
        tmp.replace(out)  # a crash mid-write never leaves a half-written figure behind
    finally:
        tmp.unlink(missing_ok=True)
    return [g.summary() for g in groups]


def curves_figure(
    groups: list[Group],
    *,
    metric: str = "eval/return_mean",
    target: float | None = None,
    title: str | None = None,
    size: tuple[float, float] = (7.0, 4.2),
    dpi: int = 120,
):
    """A matplotlib ``Figure`` of ``groups``: per group the median over its seeds (thick), the
    min-max band, each seed as a thin line; ``target`` as a dashed line. Uses no pyplot, so the
    caller's backend stays as it is."""
    try:
        from matplotlib import rcParams
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("plot needs matplotlib; fix: pip install 'worldmodels[plot]'") from None
    fig = Figure(figsize=size, dpi=dpi)
    ax = fig.subplots()
    colors = rcParams["axes.prop_cycle"].by_key().get("color") or ["C0"]
    for i, g in enumerate(groups):
        color = colors[i % len(colors)]
        for c in g.curves:
            s, v = zip(*c.points)
            ax.plot(s, v, color=color, alpha=0.3, linewidth=0.8)
        steps, med, lo, hi = g.aggregate()
        n = len(g.curves)
        marker = "o" if len(steps) <= 30 else None  # a curve of one point is a dot
        label = f"{g.label} ({n} seed{'s'[: n > 1]})"
        ax.plot(steps, med, color=color, linewidth=2.0, marker=marker, markersize=4, label=label)
        if n > 1:
            ax.fill_between(steps, lo, hi, color=color, alpha=0.15, linewidth=0)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1.0, label=f"target {target:g}")
    ax.set_xlabel("agent steps")
    ax.set_ylabel(metric)
    ax.set_title(title or "median over seeds, band min-max, thin lines single seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
