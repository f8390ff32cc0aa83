"""Env steps and wall time to a CartPole-v1 eval return of 450: ours vs LightZero.

    bash benchmarks/peers/lightzero/install.sh
    .venv/bin/python benchmarks/peers/lightzero/cartpole_to_target.py --seeds 0 1 2

Runs, one at a time, for each seed: LightZero's MuZero and EfficientZero CartPole configs (the
installed wheel's zoo/classic_control/cartpole/config/cartpole_{muzero,efficientzero}_config.py)
in the LightZero venv (install.sh), and ours (MuZero and EfficientZero, AGENT below),

    python -m worldmodels.cli train AGENT --env gym:CartPole-v1 --seed S --set run.threads=1
        --set run.eval_every=1000 --set run.eval_episodes=10 --set run.stop_at_return=450
        --steps 50000 --run-dir DIR --no-progress

in the project venv. Each run stops at its first evaluation whose mean return over 10 greedy
episodes is >= 450 (--target). Each finished run is one row of the CSV (--csv); a rerun skips the
rows it already has (same framework, config, seed, target and budget), and a run that was cut
off starts over. Then it prints a markdown table: per (framework, config) the seeds that reached
the target, env steps and wall time to it (median, min..max over those seeds), and ours/LightZero
of the medians.

How each side counts
--------------------
- env steps: every environment transition taken while collecting training data, random ones
  included; evaluation episodes are not counted on either side.
  Ours: the `step` of the eval row in RUN/metrics.jsonl (the loop's env_steps: prefill plus
  policy steps; CartPole has no action repeat). LightZero: `collector.envstep` at the eval,
  which MuZeroCollector increments once per env step of every collect env
  (`collected_step += 1`), i.e. collected transitions, not learner iterations. The CSV also has
  `lz_buffer_transitions` (what the replay buffer holds), `lz_train_iters` and `ours_updates`.
- evaluation: ours every 1000 env steps exactly (run.eval_every). LightZero's own entry
  (lzero.entry.train_muzero) evaluates every `eval_freq` learner iterations; this script drives
  the same components in the same order (collect n_episode=8 whole episodes, push to the game
  buffer, update_per_collect=100 learner iterations; the entry's code, copied in
  `lightzero_worker`) but evaluates after the first collect+train round that crosses each
  multiple of 1000 env steps. LightZero collects 8 whole episodes per round, so its evaluation
  points are at round boundaries (up to 8 x 500 = 4000 steps apart once the agent is good) and
  its env steps to target are those of the round at which it was evaluated. The random agent
  evaluation at step 0 of the entry is skipped (it cannot reach 450). Evaluation uses
  LightZero's MuZeroEvaluator (eval mode: argmax of visit counts, no root noise) with 10 envs,
  one episode each.
- machine: each row records the CPU model, torch's vector capability (AVX2, AVX512) and the
  core count; the table gives a wall-time ratio only where both sides ran on one machine.
- wall time: ours, the `time` of the eval row (seconds since the training loop began, after the
  env and agent were built; includes every evaluation). LightZero, seconds from just before the
  first collect to the end of the eval that reached the target (after the envs, policy, learner,
  buffer, collector and evaluator were built; includes every evaluation). `process_s` is each
  subprocess's whole life, imports and set-up included.

What was changed in LightZero's CartPole configs (everything else is theirs): env_id
CartPole-v0 -> CartPole-v1 (500-step episodes), stop_value 200 -> 450, 10 evaluator envs and
episodes (was 3), policy.cuda False, exp_name (the run dir), and env_manager 'subprocess' ->
'base' (envs stepped in the main process, as ours; on 2 cores a CartPole step is far cheaper
than the pipe round trip). torch uses 1 intra-op thread on both sides (--threads).
"""

from __future__ import annotations

import argparse
import copy
import csv
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RUNS = {"lightzero": ("muzero", "efficientzero"), "ours": ("muzero", "efficientzero")}
DEFAULT_RUNS = [
    "lightzero:muzero",
    "lightzero:efficientzero",
    "ours:muzero",
    "ours:efficientzero",
]
# Budgets when --max-env-steps is not given: ours as in the brief's command (our MuZero's lr and
# temperature schedules do not depend on it being larger), LightZero its config's max_env_step.
DEFAULT_BUDGET = {"ours": 50_000, "lightzero": 100_000}
FIELDS = [
    "framework",
    "config",
    "seed",
    "target",
    "budget_env_steps",
    "reached",
    "env_steps",
    "wall_s",
    "evals",
    "best_eval_mean",
    "last_eval_mean",
    "process_s",
    "lz_train_iters",
    "lz_buffer_transitions",
    "ours_updates",
    "run_dir",
    "finished_at",
    "machine",
]


def _cpu_model() -> str:
    """The CPU model (our package's helper; this file's LightZero worker never calls it)."""
    from worldmodels.bench.machine import cpu_model

    return cpu_model() or platform.processor()


def machine() -> str:
    """CPU model, torch's vector capability and core count: wall times compare only between
    rows of one machine (one model name can come with or without AVX512)."""
    import torch

    return f"{_cpu_model()} {torch.backends.cpu.get_cpu_capability()} x{os.cpu_count()}"


def lightzero_venv() -> Path:
    return Path(os.environ.get("LIGHTZERO_VENV", ROOT / "runs/peers/lightzero-venv"))


# ---------------------------------------------------------------------------------------------
# LightZero side: runs inside the LightZero venv (this file with --lightzero-worker).


class _CaptureWriter:
    """The evaluator's tensorboard writer: remembers the last value of every tag (the mean eval
    return is only reported to the logger and tensorboard, not returned by eval())."""

    def __init__(self, writer) -> None:
        self._writer = writer
        self.last: dict[str, float] = {}

    def add_scalar(self, tag, value, *args, **kwargs):
        self.last[tag] = float(value)
        return self._writer.add_scalar(tag, value, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._writer, name)


def lightzero_worker(args: argparse.Namespace) -> int:
    """lzero.entry.train_muzero (LightZero 0.2.0), evaluated every `eval_every` env steps."""
    t_process = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    from ding.config import compile_config
    from ding.envs import create_env_manager, get_vec_env_setting
    from ding.policy import create_policy
    from ding.utils import set_pkg_seed
    from ding.worker import BaseLearner
    from lzero.entry.utils import calculate_update_per_collect, random_collect
    from lzero.policy import visit_count_temperature
    from lzero.policy.random_policy import LightZeroRandomPolicy
    from lzero.worker import MuZeroCollector, MuZeroEvaluator
    from tensorboardX import SummaryWriter

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(run_dir)  # LightZero writes ./<exp_name>/...
    module = importlib.import_module(
        f"zoo.classic_control.cartpole.config.cartpole_{args.lightzero_worker}_config"
    )
    cfg, create_cfg = copy.deepcopy(module.main_config), copy.deepcopy(module.create_config)
    cfg.exp_name = "lightzero"
    cfg.env.env_id = "CartPole-v1"
    cfg.env.stop_value = args.target
    cfg.env.evaluator_env_num = args.eval_episodes
    cfg.env.n_evaluator_episode = args.eval_episodes
    cfg.policy.evaluator_env_num = args.eval_episodes
    cfg.policy.cuda = False
    cfg.policy.device = "cpu"
    create_cfg.env_manager.type = "base"
    policy_type = create_cfg.policy.type
    if policy_type == "muzero":
        from lzero.mcts import MuZeroGameBuffer as GameBuffer
    elif policy_type == "efficientzero":
        from lzero.mcts import EfficientZeroGameBuffer as GameBuffer
    else:
        raise SystemExit(f"unsupported policy type {policy_type}")

    cfg = compile_config(
        cfg, seed=args.seed, env=None, auto=True, create_cfg=create_cfg, save_cfg=True
    )
    env_fn, collector_env_cfg, evaluator_env_cfg = get_vec_env_setting(cfg.env)
    collector_env = create_env_manager(
        cfg.env.manager, [partial(env_fn, cfg=c) for c in collector_env_cfg]
    )
    evaluator_env = create_env_manager(
        cfg.env.manager, [partial(env_fn, cfg=c) for c in evaluator_env_cfg]
    )
    collector_env.seed(cfg.seed)
    evaluator_env.seed(cfg.seed, dynamic_seed=False)
    set_pkg_seed(cfg.seed, use_cuda=False)
    policy = create_policy(cfg.policy, model=None, enable_field=["learn", "collect", "eval"])
    tb_logger = SummaryWriter(os.path.join(f"./{cfg.exp_name}/log/", "serial"))
    learner = BaseLearner(
        cfg.policy.learn.learner, policy.learn_mode, tb_logger, exp_name=cfg.exp_name
    )
    pcfg = cfg.policy
    replay_buffer = GameBuffer(pcfg)
    collector = MuZeroCollector(
        env=collector_env,
        policy=policy.collect_mode,
        tb_logger=tb_logger,
        exp_name=cfg.exp_name,
        policy_config=pcfg,
    )
    eval_writer = _CaptureWriter(tb_logger)
    evaluator = MuZeroEvaluator(
        eval_freq=pcfg.eval_freq,
        n_evaluator_episode=cfg.env.n_evaluator_episode,
        stop_value=cfg.env.stop_value,
        env=evaluator_env,
        policy=policy.eval_mode,
        tb_logger=eval_writer,
        exp_name=cfg.exp_name,
        policy_config=pcfg,
    )
    learner.call_hook("before_run")

    t0 = time.perf_counter()
    history: list[dict] = []
    next_eval = args.eval_every
    reached = False
    if pcfg.random_collect_episode_num > 0:
        random_collect(pcfg, policy, LightZeroRandomPolicy, collector, collector_env, replay_buffer)

    def evaluate() -> float:
        eval_writer.last.clear()
        evaluator.eval(None, learner.train_iter, collector.envstep)
        (mean,) = [v for k, v in eval_writer.last.items() if k.endswith("_step/reward_mean")]
        row = {
            "env_steps": collector.envstep,
            "train_iters": learner.train_iter,
            "buffer_transitions": replay_buffer.get_num_of_transitions(),
            "return_mean": mean,
            "wall_s": time.perf_counter() - t0,
        }
        history.append(row)
        with open(run_dir / "evals.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[to-target] eval {row}", flush=True)
        return mean

    while True:
        collect_kwargs = {
            "temperature": visit_count_temperature(
                pcfg.manual_temperature_decay,
                pcfg.fixed_temperature_value,
                pcfg.threshold_training_steps_for_final_temperature,
                trained_steps=learner.train_iter,
            ),
            "epsilon": 0.0,
        }
        assert not pcfg.eps.eps_greedy_exploration_in_collect
        new_data = collector.collect(train_iter=learner.train_iter, policy_kwargs=collect_kwargs)
        update_per_collect = calculate_update_per_collect(cfg, new_data)
        replay_buffer.push_game_segments(new_data)
        replay_buffer.remove_oldest_data_to_fit()
        for _ in range(update_per_collect):
            if replay_buffer.get_num_of_transitions() <= pcfg.batch_size:
                break  # as the entry: not enough data for a batch yet
            train_data = replay_buffer.sample(pcfg.batch_size, policy)
            log_vars = learner.train(train_data, collector.envstep)
            if pcfg.use_priority:
                replay_buffer.update_priority(train_data, log_vars[0]["value_priority_orig"])
        at_budget = collector.envstep >= args.max_env_steps
        if collector.envstep >= next_eval or at_budget:
            next_eval = (collector.envstep // args.eval_every + 1) * args.eval_every
            if evaluate() >= args.target:
                reached = True
                break
        if at_budget:
            break

    last = history[-1]
    result = {
        "reached": reached,
        "env_steps": last["env_steps"],
        "wall_s": round(last["wall_s"], 2),
        "evals": len(history),
        "best_eval_mean": max(h["return_mean"] for h in history),
        "last_eval_mean": last["return_mean"],
        "lz_train_iters": learner.train_iter,
        "lz_buffer_transitions": last["buffer_transitions"],
        "setup_s": round(t0 - t_process, 2),
    }
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    print(f"[to-target] result {result}", flush=True)
    collector_env.close()
    evaluator_env.close()
    return 0


# ---------------------------------------------------------------------------------------------
# Ours: parse the run's metrics.jsonl.


def ours_result(run_dir: Path, target: float) -> dict:
    evals, updates = [], {}
    with open(run_dir / "metrics.jsonl") as f:
        for line in f:
            row = json.loads(line)
            if "eval/return_mean" in row:
                evals.append(row)
            if "updates" in row:
                updates[row["step"]] = row["updates"]
    if not evals:
        raise RuntimeError(f"no eval rows in {run_dir}/metrics.jsonl")
    hit = next((r for r in evals if r["eval/return_mean"] >= target), None)
    last = hit or evals[-1]
    upd = [u for s, u in updates.items() if s <= last["step"]]
    return {
        "reached": hit is not None,
        "env_steps": last["step"],
        "wall_s": round(last["time"], 2),
        "evals": evals.index(last) + 1,
        "best_eval_mean": max(r["eval/return_mean"] for r in evals[: evals.index(last) + 1]),
        "last_eval_mean": last["eval/return_mean"],
        "ours_updates": upd[-1] if upd else "",
    }


# ---------------------------------------------------------------------------------------------
# Driver.


def run_one(args, framework: str, config: str, seed: int, budget: int) -> dict:
    name = f"{framework}-{config}-s{seed}-t{args.target:g}-b{budget}"
    run_dir = Path(args.out_dir).resolve() / name
    if run_dir.exists():  # a run that was cut off: start over
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    if framework == "lightzero":
        cmd = [
            str(lightzero_venv() / "bin/python"),
            str(Path(__file__).resolve()),
            "--lightzero-worker",
            config,
            "--seed",
            str(seed),
            "--run-dir",
            str(run_dir),
            "--target",
            str(args.target),
            "--eval-every",
            str(args.eval_every),
            "--eval-episodes",
            str(args.eval_episodes),
            "--max-env-steps",
            str(budget),
            "--threads",
            str(args.threads),
        ]
        env = dict(os.environ)
    else:
        cmd = [
            args.ours_python,
            "-m",
            "worldmodels.cli",
            "train",
            config,
            "--env",
            "gym:CartPole-v1",
            "--seed",
            str(seed),
            "--set",
            f"run.threads={args.threads}",
            "--set",
            f"run.eval_every={args.eval_every}",
            "--set",
            f"run.eval_episodes={args.eval_episodes}",
            "--set",
            f"run.stop_at_return={args.target:g}",
            *[x for kv in args.ours_set for x in ("--set", kv)],
            "--steps",
            str(budget),
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    print(f"[{name}] $ {' '.join(cmd)}", flush=True)
    log = run_dir.parent / f"{name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    process_s = round(time.perf_counter() - t0, 1)
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{name} exited {rc}; log {log}:\n" + "\n".join(tail))
    if framework == "lightzero":
        res = json.loads((run_dir / "result.json").read_text())
        res.pop("setup_s", None)
    else:
        res = ours_result(run_dir, args.target)
    row = {
        "framework": framework,
        "config": config,
        "seed": seed,
        "target": f"{args.target:g}",
        "budget_env_steps": budget,
        **res,
        "process_s": process_s,
        "run_dir": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
    }
    print(f"[{name}] {json.dumps(row)}", flush=True)
    return row


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict) -> None:
    old = read_rows(path)
    if old and list(old[0]) != FIELDS:  # a CSV of an earlier column set: rewrite its header
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS, extrasaction="ignore", restval="")
            w.writeheader()
            w.writerows(old)
        os.replace(tmp, path)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def key(row: dict) -> tuple:
    return (
        row["framework"],
        row["config"],
        str(row["seed"]),
        str(row["target"]),
        str(row["budget_env_steps"]),
    )


def med_range(xs: list[float], fmt: str) -> str:
    if not xs:
        return "-"
    return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}..{format(max(xs), fmt)})"


def torch_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


def table(args, rows: list[dict], runs: list[tuple[str, str]], budgets: dict) -> str:
    stats = {}
    for fw, cf in runs:
        sel = [
            r
            for r in rows
            if r["framework"] == fw
            and r["config"] == cf
            and int(r["seed"]) in args.seeds
            and r["target"] == f"{args.target:g}"
            and int(r["budget_env_steps"]) == budgets[fw]
        ]
        ok = [r for r in sel if r["reached"] == "True"]
        stats[fw, cf] = (
            len(ok),
            len(sel),
            [float(r["env_steps"]) for r in ok],
            [float(r["wall_s"]) for r in ok],
            [float(r["best_eval_mean"]) for r in sel],
            {r.get("machine") or "?" for r in ok},
        )
    lines = [
        f"| run | reached {args.target:g} | env steps to {args.target:g} | wall s to "
        f"{args.target:g} | ours/this env steps | ours/this wall | best eval, all seeds "
        "| machines |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (fw, cf), (k, n, steps, walls, best, machines) in stats.items():
        r_steps = r_wall = "-"
        ours = stats.get(("ours", cf))  # ours beside the peer's config of the same agent
        if ours and ours[2] and steps and fw != "ours":
            r_steps = f"{statistics.median(ours[2]) / statistics.median(steps):.2f}"
            if len(ours[5] | machines) == 1:  # wall times compare on one machine only
                r_wall = f"{statistics.median(ours[3]) / statistics.median(walls):.2f}"
        lines.append(
            f"| {fw} {cf} (budget {budgets[fw]:,}) | {k}/{n} | {med_range(steps, ',.0f')} "
            f"| {med_range(walls, ',.0f')} | {r_steps} | {r_wall} | {med_range(best, '.1f')} "
            f"| {'; '.join(sorted(machines))} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--runs",
        nargs="+",
        default=DEFAULT_RUNS,
        help="framework:config, of " + ", ".join(f"{f}:{c}" for f in RUNS for c in RUNS[f]),
    )
    p.add_argument("--target", type=float, default=450.0)
    p.add_argument("--eval-every", type=int, default=1000, help="env steps between evals")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument(
        "--max-env-steps",
        type=int,
        default=None,
        help="env-step budget of every run (smoke tests); default: ours 50,000, LightZero "
        "100,000 (its config's max_env_step)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    p.add_argument("--csv", default=str(ROOT / "runs/peers/lightzero/cartpole_to_target.csv"))
    p.add_argument("--out-dir", default=str(ROOT / "runs/peers/lightzero/cartpole"))
    p.add_argument(
        "--ours-python",
        default=str(ROOT / ".venv/bin/python")
        if (ROOT / ".venv/bin/python").exists()
        else sys.executable,
    )
    p.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra --set for our run (repeatable)",
    )
    p.add_argument("--table-only", action="store_true", help="print the table of the CSV")
    # internal: the LightZero worker (run by the LightZero venv's python)
    p.add_argument("--lightzero-worker", choices=RUNS["lightzero"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.lightzero_worker:
        return lightzero_worker(args)

    runs = []
    for spec in args.runs:
        fw, _, cf = spec.partition(":")
        if cf not in RUNS.get(fw, ()):
            p.error(f"unknown run {spec!r}")
        runs.append((fw, cf))
    budgets = {fw: args.max_env_steps if args.max_env_steps else DEFAULT_BUDGET[fw] for fw in RUNS}
    csv_path = Path(args.csv)
    lz_python = str(lightzero_venv() / "bin/python")
    if any(fw == "lightzero" for fw, _ in runs) and not Path(lz_python).exists():
        sys.exit(f"no LightZero venv at {lightzero_venv()}: run install.sh first")

    if not args.table_only:
        done = {key(r) for r in read_rows(csv_path)}
        for seed in args.seeds:
            for fw, cf in runs:
                row_key = (fw, cf, str(seed), f"{args.target:g}", str(budgets[fw]))
                if row_key in done:
                    print(f"skip {row_key}: in {csv_path}", flush=True)
                    continue
                append_row(csv_path, run_one(args, fw, cf, seed, budgets[fw]))

    print()
    print("$", " ".join([os.path.relpath(sys.executable)] + sys.argv))
    print(
        f"hardware: {platform.machine()} {_cpu_model()}, {os.cpu_count()} CPUs; torch threads "
        f"{args.threads}; python {platform.python_version()}"
    )
    versions = [f"ours torch {torch_version(args.ours_python)}"]
    if Path(lz_python).exists():
        versions.append(f"LightZero venv torch {torch_version(lz_python)}")
    print("; ".join(versions))
    print(
        f"CSV: {csv_path}; target {args.target:g}, eval every {args.eval_every} env steps, "
        f"{args.eval_episodes} greedy episodes; seeds {args.seeds}; medians over the seeds that "
        "reached the target\n"
    )
    print(table(args, read_rows(csv_path), runs, budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
