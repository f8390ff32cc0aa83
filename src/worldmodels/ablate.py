"""``worldmodels ablate``: a base preset and each single-axis change, over seeds, as one table.

    worldmodels ablate dreamer --env gym:CartPole-v1 --preset dreamerv3 \
        --axis kl=balanced --axis latent=gaussian --axis heads=mse --axis retnorm=none --seeds 3

Every variant x seed is one ordinary run directory under ``--out`` (trained by the same code as
``worldmodels train``, then evaluated greedily). A variant whose runs already finished is not
trained again, so an interrupted ablation continues where it stopped; ``--jobs N`` trains N runs
at once in separate processes. The result is written as
``ablation.csv`` and ``ablation.md`` (median, min and max of the final eval return per variant).
"""

from __future__ import annotations

import csv
import json
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


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


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
) -> list[dict[str, Any]]:
    """Train and evaluate every variant x seed (skipping finished ones); write the tables.

    ``jobs`` > 1 trains that many runs at once, each in its own process (give each
    ``run.threads`` = cores / jobs through ``extra``); the runs and the table are the same.
    """
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1 (got {jobs})")
    variants = parse_axes(axes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = dict(extra or {})
    if steps is not None:
        base["run.steps"] = steps
    todo = []  # (variant name, seed, run kwargs) of the runs without a result yet
    results: dict[tuple[str, int], float] = {}
    for variant in variants:
        for seed in range(seeds):
            run_dir = out / f"{_slug(variant.name)}-seed{seed}"
            result_path = run_dir / "ablation_eval.json"
            if result_path.exists():
                results[variant.name, seed] = json.loads(result_path.read_text())["return_mean"]
                continue
            kwargs = dict(
                agent=agent,
                env=env,
                seed=seed,
                presets=presets,
                overrides={**base, **variant.overrides},
                run_dir=str(run_dir),
                episodes=episodes,
                progress=progress and jobs == 1,
            )
            todo.append((variant.name, seed, kwargs))

    def done(name: str, seed: int, result: dict[str, Any]) -> None:
        results[name, seed] = result["return_mean"]
        print(f"{name} seed {seed}: eval return {result['return_mean']:.1f}", flush=True)

    if jobs == 1:
        for name, seed, kwargs in todo:
            done(name, seed, _train_and_eval(**kwargs))
    elif todo:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a forked torch process may deadlock in its thread pools
        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as ex:
            futures = {ex.submit(_train_and_eval, **kw): (name, seed) for name, seed, kw in todo}
            for future in as_completed(futures):
                done(*futures[future], future.result())
    rows = [_row(v, [results[v.name, s] for s in range(seeds)]) for v in variants]
    meta = dict(agent=agent, env=env, presets=presets, seeds=seeds, steps=steps, episodes=episodes)
    _write_tables(out, rows, **meta)
    return rows


def _train_and_eval(
    *,
    agent: str,
    env: str,
    seed: int,
    presets: list[str],
    overrides: dict[str, Any],
    run_dir: str,
    episodes: int,
    progress: bool,
) -> dict[str, Any]:
    """One variant x seed: train (or resume an interrupted run), evaluate, write the result."""
    from .train.loop import Trainer, evaluate_run
    from .train.run import load_run, new_run

    path = Path(run_dir)
    if (path / "checkpoints" / "latest.json").exists():
        trainer = Trainer(load_run(path), resume=True, progress=progress)
    else:
        info = new_run(agent, env, seed=seed, presets=presets, overrides=overrides, run_dir=path)
        trainer = Trainer(info, progress=progress)
    trainer.train()
    _, result = evaluate_run(path, episodes)
    (path / "ablation_eval.json").write_text(json.dumps(result))
    return result


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
