"""``worldmodels ablate``: a base preset and each single-axis change, over seeds, as one table.

    worldmodels ablate dreamer --env gym:CartPole-v1 --preset dreamerv3 \
        --axis kl=balanced --axis latent=gaussian --axis heads=mse --axis retnorm=none --seeds 3

Every variant x seed is one job of the library's launcher (:func:`worldmodels.bench.jobs.run_jobs`,
the code of ``benchmarks/parallel.py``): ``worldmodels train`` into the run directory
``OUT/VARIANT-seedS`` with its output in ``OUT/VARIANT-seedS.log``, then one final greedy eval
kept in ``OUT/VARIANT-seedS.final.json``. ``--jobs N`` trains N runs at once (the rest queue);
``--budget SECONDS`` stops the runs still training then, each saving a checkpoint. The same
command again continues an interrupted, killed or stopped ablation: finished runs are skipped and
keep their eval, the others resume from their latest checkpoint. Once every run has its eval,
the result is written as ``ablation.csv`` and ``ablation.md`` (median, min and max of the final
eval return per variant); the launcher's ``summary.md`` / ``summary.json`` list the jobs.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

#: Short axis names -> the config values one change sets (several keys where they belong
#: together: an online critic has no slow critic to regularise towards).
AXES: dict[str, dict[str, dict[str, Any]]] = {
    "latent": {
        "categorical": {"model.latent": "categorical"},
        "gaussian": {"model.latent": "gaussian"},
    },
    "kl": {
        "dyn_rep": {"model.kl": "dyn_rep"},
        "balanced": {"model.kl": "balanced", "model.kl_alpha": 0.8, "model.kl_scale": 1.0},
        "elbo": {"model.kl": "elbo", "model.kl_scale": 1.0},
    },
    "heads": {
        kind: {
            "model.reward_head": kind,
            "behavior.critic_head": kind,
            "model.vector_decoder": "mse" if kind == "mse" else "symlog_mse",
        }
        for kind in ("symexp_twohot", "symlog_mse", "mse")
    },
    "retnorm": {v: {"behavior.retnorm": v} for v in ("percentile", "none")},
    "actor_grad": {v: {"behavior.actor_grad": v} for v in ("reinforce", "dynamics", "mix")},
    "critic_target": {
        "ema": {"behavior.critic_target": "ema"},
        "hard": {"behavior.critic_target": "hard", "behavior.slow_target": True},
        "online": {
            "behavior.critic_target": "online",
            "behavior.slow_reg": 0.0,
            "behavior.slow_target": False,
        },
    },
    "core": {v: {"model.core": v} for v in ("blockgru", "gru")},
    "unimix": {"0": {"model.unimix": 0.0, "behavior.unimix": 0.0}},
}


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any]


def parse_axes(specs: list[str]) -> list[Variant]:
    """``['kl=balanced', 'model.free_bits=0']`` -> the base variant plus one per change.

    A spec is a short axis name from :data:`AXES` or any dotted config key (``--set`` syntax).
    """
    from .config import parse_set_args

    variants = [Variant("base", {})]
    for spec in specs:
        if "=" not in spec:
            raise UserError(f"--axis {spec!r} needs the form name=value, e.g. --axis kl=balanced")
        name, value = spec.split("=", 1)
        if name in AXES:
            if value not in AXES[name]:
                raise UserError(
                    f"--axis {name}={value}: unknown value; use one of {', '.join(AXES[name])}"
                )
            overrides = dict(AXES[name][value])
        elif "." in name:
            overrides = parse_set_args([spec])
        else:
            raise UserError(
                f"--axis {spec!r}: unknown axis {name!r}; use one of {', '.join(AXES)} "
                "or a dotted config key such as model.free_bits=0"
            )
        variants.append(Variant(spec, overrides))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UserError("each --axis may appear once")
    return variants


def run_ablation(
    agent: str,
    env: str,
    axes: list[str],
    *,
    presets: list[str],
    seeds: int,
    steps: int | None,
    out: str | Path,
    episodes: int = 10,
    extra: dict[str, Any] | None = None,
    progress: bool = False,
    jobs: int = 1,
    budget: float = math.inf,
) -> list[dict[str, Any]] | None:
    """Train and evaluate every variant x seed through :func:`~worldmodels.bench.jobs.run_jobs`
    (continuing an earlier call's runs in ``out``), then write the tables and return their rows;
    None, with the unfinished runs printed, while some run has no final eval yet.

    ``extra``: overrides of every run, before the variant's own. ``jobs``: runs trained at once.
    ``progress``: each run's progress bar goes into its log."""
    from .bench.jobs import run_jobs

    if jobs < 1:
        raise UserError(f"--jobs must be at least 1 (got {jobs})")
    variants = parse_axes(axes)
    out = Path(out)
    common = [agent, "--env", env, *(a for p in presets for a in ("--preset", p))]
    common += ["--steps", str(steps)] if steps is not None else []
    job_list = []
    for v in variants:
        sets = [
            a for k, x in {**(extra or {}), **v.overrides}.items() for a in ("--set", f"{k}={x}")
        ]
        job_list += [(_job_name(v, s), [*common, "--seed", str(s), *sets]) for s in range(seeds)]
    results = run_jobs(
        job_list,
        out,
        budget=budget,
        episodes=episodes,
        max_parallel=jobs,
        resume=True,
        progress=progress,
    )
    unfinished = [n for n, _ in job_list if "return_mean" not in results[n].get("final_eval", {})]
    if unfinished:
        listed = ", ".join(f"{n} ({results[n]['status']})" for n in unfinished)
        print(
            f"no ablation table yet: {len(unfinished)} of {len(job_list)} runs have no final eval: "
            f"{listed}; logs in {out}/NAME.log; the same command continues them",
            flush=True,
        )
        return None
    rows = [
        _row(v, [results[_job_name(v, s)]["final_eval"]["return_mean"] for s in range(seeds)])
        for v in variants
    ]
    meta = dict(agent=agent, env=env, presets=presets, seeds=seeds, steps=steps, episodes=episodes)
    _write_tables(out, rows, **meta)
    return rows


def _job_name(variant: Variant, seed: int) -> str:
    """The job and run directory name: the variant with path-safe characters, and the seed."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in variant.name)
    return f"{slug}-seed{seed}"


def _row(variant: Variant, returns: list[float]) -> dict[str, Any]:
    return {
        "variant": variant.name,
        "overrides": " ".join(f"{k}={v}" for k, v in variant.overrides.items()) or "-",
        "seeds": len(returns),
        "median": statistics.median(returns),
        "min": min(returns),
        "max": max(returns),
        "returns": " ".join(f"{r:.1f}" for r in returns),
    }


def _write_tables(out: Path, rows: list[dict], **meta: Any) -> None:
    with open(out / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    presets = " ".join(f"--preset {p}" for p in meta["presets"])
    lines = [
        f"# Ablation: {meta['agent']} {presets} on {meta['env']}",
        "",
        f"{meta['seeds']} seeds per variant, {meta['steps'] or 'default'} env steps, final greedy "
        f"eval return ({meta['episodes']} episodes per seed): median, min and max over seeds.",
        "",
        "| variant | overrides | median | min | max | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['overrides']} | {r['median']:.1f} | {r['min']:.1f} | "
            f"{r['max']:.1f} | {r['returns']} |"
        )
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
