"""DreamerV3 training speed, ours vs sheeprl and danijar/dreamerv3: gradient updates per second.

    bash benchmarks/peers/dreamerv3/install.sh runs/peers/dreamerv3-src
    .venv/bin/python benchmarks/peers/dreamerv3/update_speed.py

One workload on every system: DreamerV3 with the size1m model (deter 512 in 8 blocks, hidden 64,
32 x 4 latents, units 64) on gymnasium's CartPole-v1 vector observations, 1 env, batch 16 x 64,
train ratio 512 (replayed steps per env step: one update every 2 env steps), on the CPU, every
system at one compute dtype (--precision): float32, or bf16 matrix products with float32 parameters
and optimiser state (ours `precision=bf16`, sheeprl `fabric.precision=bf16-mixed`, the reference's
`jax.compute_dtype bfloat16`, its own default).
Each run is one process, started one after another by this script, pinned to `threads` CPUs
(sched_setaffinity; --cpus picks which) with the framework's own thread setting at the same
number (torch intra-op threads; XLA's CPU thread pool follows the affinity). Systems (--systems):

- ours: `python -m worldmodels.cli train dreamerv3 --preset size1m --env gym:CartPole-v1` with
  run.train_ratio=512, batch 16 x 64, run.threads=N, as shipped (torch.compile of the inner steps
  on, `compile=True`); run.prefill=--fill random steps, no evaluations (run.eval_every=0, one
  1-episode eval after the end), no checkpoint inside the window. `ours-eager` is the same with
  compile=false (not in the default list).
- sheeprl, sheeprl-compile: sheeprl 0.8.4, its DreamerV3 of the Nature paper (`exp=dreamer_v3_5
  algo=dreamer_v3_5_1M`, the official size1m), `env=gym env.id=CartPole-v1 env.num_envs=1
  env.sync_env=True`, per_rank_batch_size=16, per_rank_sequence_length=64, replay_ratio=0.5
  (gradient steps per policy step = 512 / (16 x 64)), learning_starts=--fill, num_threads=N, no
  checkpoints, no metrics, no test; eager, and with `algo.compile.enabled=True`.
- dreamerv3-jax: danijar/dreamerv3 (commit e3f02248693a79dc8b0ebd62c93683888ddaccfe) on CPU JAX
  0.4.33, its own `dreamerv3/main.py` with `--configs defaults size1m`, batch_size 16,
  batch_length 64, run.train_ratio 512, run.envs 1, jax.platform cpu, jax.compute_dtype from
  --precision, no logging, reports or checkpoints inside the window (run.log_every/report_every/
  save_every 0), the JAX profiler trace of updates 100-120 off. CartPole-v1 comes through a small
  adapter in this file (its gym wrapper needs gym<0.26); it starts training once its replay holds
  batch_size x batch_length steps (train.py), so --fill does not apply.

What is measured: the training loop as each system runs it (acting in the env, replay, updates),
timed over --measure updates after --warmup updates (compilation, allocator warm-up and the
replay fill are before the window): updates/s = measured updates / seconds between the end of
update `warmup` and the end of update `warmup + measure`. Ours: the `updates` and `time` of
RUN/metrics.jsonl (a row every 2 env steps, run.log_every=2). The peers: a wrapper around their
own update function (sheeprl's `dreamer_v3_5.train`, the reference's `Agent.train`) records the
time after every call; the process exits once it has the window. The JAX update is dispatched
asynchronously, but every call first waits for the outputs of the previous one, so the time
after call k is the end of update k - 1 plus a dispatch, and the window still spans `measure`
updates. Peak memory: ru_maxrss of the training process (os.wait4), which covers its children
that it waited for. Parameters: the trained ones (world model, actor, critic; no target/slow
critic, no optimiser state): ours, the parameters of its three optimisers (from the run's
checkpoint); sheeprl, world model + actor + critic (what its one optimizer trains); the reference,
its variables under enc, dyn, dec, rew, con, pol and val (what its `Optimizer opt` trains).

Each finished run is a row of the CSV (--csv, default runs/peers/dreamerv3/update_speed.csv);
a rerun skips the (system, threads, warmup, measure, precision) rows it already has, so a killed
run continues where it stopped. Then it prints a markdown table of what the CSV holds for the
selected systems and thread counts: updates/s, ours / system, peak RSS, parameters, versions.
--smoke: a handful of updates per system (warmup 2, measure 3), 1 thread, --fill 256, its own
CSV (update_speed_smoke.csv): proves every system runs, measures nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
INSTALL = "bash benchmarks/peers/dreamerv3/install.sh DREAMERV3_SRC"
SYSTEMS = ("ours", "ours-eager", "sheeprl", "sheeprl-compile", "dreamerv3-jax")
DEFAULT_SYSTEMS = ["ours", "sheeprl", "sheeprl-compile", "dreamerv3-jax"]
BATCH, LENGTH, TRAIN_RATIO = 16, 64, 512
# The compute dtype as each system spells it (parameters and optimiser state stay float32).
PRECISIONS = {
    "float32": {"ours": "fp32", "sheeprl": "32-true", "jax": "float32"},
    "bf16": {"ours": "bf16", "sheeprl": "bf16-mixed", "jax": "bfloat16"},
}
DREAMERV3_COMMIT = "e3f02248693a79dc8b0ebd62c93683888ddaccfe"
FIELDS = [
    "system",
    "threads",
    "warmup_updates",
    "measured_updates",
    "precision",
    "updates_per_s",
    "window_s",
    "max_rss_mib",
    "params",
    "versions",
    "process_s",
    "cpus",
    "cpu_model",
    "log",
    "finished_at",
]


def sheeprl_venv() -> Path:
    return Path(os.environ.get("SHEEPRL_VENV", ROOT / "runs/peers/sheeprl-venv"))


def jax_venv() -> Path:
    return Path(os.environ.get("DREAMERV3_JAX_VENV", ROOT / "runs/peers/dreamerv3-jax-venv"))


# ---------------------------------------------------------------------------------------------
# Workers: run inside the peers' venvs (this file with --worker); stdlib imports only up here.


class _Recorder:
    """Times the end of every update; writes the result and ends the process once it has
    `total` of them."""

    def __init__(self, total: int, out: Path, info: dict) -> None:
        self.total, self.out, self.info = total, out, info
        self.times: list[float] = []

    def tick(self) -> None:
        self.times.append(time.perf_counter())
        n = len(self.times)
        if n in (1, self.total) or n % 50 == 0:
            print(f"[update_speed] update {n}/{self.total}", flush=True)
        if n >= self.total:
            self.info["times"] = self.times
            self.out.write_text(json.dumps(self.info))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # the window is complete: skip the peer's own shutdown


def sheeprl_worker(args: argparse.Namespace) -> None:
    from importlib.metadata import version

    import torch

    torch.set_num_threads(args.threads)
    from sheeprl.algos.dreamer_v3_5 import dreamer_v3_5 as algo

    info = {
        "versions": f"sheeprl {version('sheeprl')}, torch {torch.__version__}, "
        f"lightning {version('lightning')}",
    }
    rec = _Recorder(args.warmup + args.measure, Path(args.out), info)
    train = algo.train

    def timed_train(fabric, cfg, world_model, actor, critic, *rest, **kwargs):
        if "params" not in info:
            info["params"] = sum(
                p.numel() for m in (world_model, actor, critic) for p in m.parameters()
            )
            info["torch_threads"] = torch.get_num_threads()
            print(
                f"[update_speed] params {info['params']:,}, torch threads {info['torch_threads']}",
                flush=True,
            )
        out = train(fabric, cfg, world_model, actor, critic, *rest, **kwargs)
        rec.tick()
        return out

    algo.train = timed_train
    # The total steps leave room for the whole window; the recorder ends the run at its end.
    steps = args.fill + 2 * (args.warmup + args.measure) + 1000
    log_dir = Path(args.log_dir)
    sys.argv = [
        "sheeprl",
        "exp=dreamer_v3_5",
        "algo=dreamer_v3_5_1M",
        "env=gym",
        "env.id=CartPole-v1",
        "env.num_envs=1",
        "env.sync_env=True",
        "env.capture_video=False",
        "algo.cnn_keys.encoder=[]",
        "algo.mlp_keys.encoder=[state]",
        f"algo.per_rank_batch_size={BATCH}",
        f"algo.per_rank_sequence_length={LENGTH}",
        f"algo.replay_ratio={TRAIN_RATIO / (BATCH * LENGTH)}",
        f"algo.learning_starts={args.fill}",
        f"algo.total_steps={steps}",
        f"algo.compile.enabled={args.compile}",
        "algo.run_test=False",
        "buffer.size=1000000",
        "checkpoint.every=0",
        "checkpoint.save_last=False",
        "metric.log_level=0",
        "model_manager.disabled=True",
        f"num_threads={args.threads}",
        f"fabric.precision={PRECISIONS[args.precision]['sheeprl']}",
        "fabric.accelerator=cpu",
        "seed=0",
        f"log_root={log_dir}",
        "root_dir=sheeprl",
        "run_name=run",
        f"hydra.run.dir={log_dir / 'hydra'}",
    ]
    print("[update_speed] sheeprl " + " ".join(sys.argv[1:]), flush=True)
    from sheeprl.cli import run

    run()
    raise SystemExit(f"sheeprl ended after {len(rec.times)} of {rec.total} updates")


def dreamerv3_worker(args: argparse.Namespace) -> None:
    import dataclasses

    import dreamerv3
    import elements
    import embodied
    import gymnasium
    import jax
    import numpy as np
    from dreamerv3 import main as dv3_main
    from embodied.jax import agent as jax_agent

    src = Path(dreamerv3.__file__).resolve().parents[1]
    commit = "unknown"
    record = jax_venv() / "dreamerv3-src.txt"
    if record.exists():
        for line in record.read_text().splitlines():
            if line.startswith("commit "):
                commit = line.split(" ", 1)[1]
    commit = commit[:12] if re.fullmatch(r"[0-9a-f]{40}", commit) else "(commit unknown)"
    info = {"versions": f"dreamerv3 {commit}, jax {jax.__version__}", "src": str(src)}
    rec = _Recorder(args.warmup + args.measure, Path(args.out), info)

    class CartPole(embodied.Env):
        """gymnasium's CartPole-v1 as an embodied.Env: the vector observation, the discrete
        action, is_first / is_last / is_terminal (a truncation at 500 steps is not terminal)."""

        def __init__(self, seed: int) -> None:
            self._env = gymnasium.make("CartPole-v1")
            self._seed, self._done = seed, True

        @property
        def obs_space(self):
            space = self._env.observation_space
            return {
                "vector": elements.Space(np.float32, space.shape, space.low, space.high),
                "reward": elements.Space(np.float32),
                "is_first": elements.Space(bool),
                "is_last": elements.Space(bool),
                "is_terminal": elements.Space(bool),
            }

        @property
        def act_space(self):
            n = int(self._env.action_space.n)
            return {"action": elements.Space(np.int32, (), 0, n), "reset": elements.Space(bool)}

        def step(self, action):
            if action["reset"] or self._done:
                self._done = False
                obs, _ = self._env.reset(seed=self._seed)
                self._seed = None
                return self._obs(obs, 0.0, is_first=True)
            obs, reward, terminated, truncated, _ = self._env.step(int(action["action"]))
            self._done = bool(terminated or truncated)
            return self._obs(obs, reward, is_last=self._done, is_terminal=bool(terminated))

        def _obs(self, obs, reward, is_first=False, is_last=False, is_terminal=False):
            return {
                "vector": np.asarray(obs, np.float32),
                "reward": np.float32(reward),
                "is_first": is_first,
                "is_last": is_last,
                "is_terminal": is_terminal,
            }

        def close(self):
            self._env.close()

    def make_env(config, index, **overrides):
        return dv3_main.wrap_env(CartPole(seed=hash((config.seed, index)) % 2**31), config)

    dv3_main.make_env = make_env

    @dataclasses.dataclass
    class Options(jax_agent.Options):
        profiler: bool = False  # the trace of updates 100-120 would fall into the window

    jax_agent.Options = Options
    train = jax_agent.Agent.train

    def timed_train(self, carry, data):
        if "params" not in info:
            modules = ("enc", "dyn", "dec", "rew", "con", "pol", "val")
            info["params"] = int(
                sum(v.size for k, v in self.params.items() if k.split("/")[0] in modules)
            )
            print(f"[update_speed] params {info['params']:,}", flush=True)
        out = train(self, carry, data)
        rec.tick()
        return out

    jax_agent.Agent.train = timed_train
    steps = 2 * LENGTH * BATCH + 2 * (args.warmup + args.measure) + 1000
    argv = [
        "--configs", "defaults", "size1m",
        "--task", "gym_CartPole-v1",
        "--logdir", str(Path(args.log_dir) / "logdir"),
        "--seed", "0",
        "--batch_size", str(BATCH),
        "--batch_length", str(LENGTH),
        "--replay.size", "1e6",
        "--run.train_ratio", str(TRAIN_RATIO),
        "--run.envs", "1",
        "--run.steps", str(steps),
        "--run.log_every", "0",
        "--run.report_every", "0",
        "--run.save_every", "0",
        "--run.debug", "True",
        "--run.usage.nvsmi", "False",
        "--jax.platform", "cpu",
        "--jax.compute_dtype", PRECISIONS[args.precision]["jax"],
        "--jax.prealloc", "False",
        "--logger.outputs", "jsonl",
    ]  # fmt: skip
    print("[update_speed] dreamerv3/main.py " + " ".join(argv), flush=True)
    dv3_main.main(argv)
    raise SystemExit(f"dreamerv3 ended after {len(rec.times)} of {rec.total} updates")


# ---------------------------------------------------------------------------------------------
# The harness: runs in the project venv.


def _cpu_model() -> str:
    from worldmodels.bench.machine import cpu_model

    return cpu_model() or platform.processor()


def ours_versions() -> str:
    import torch

    import worldmodels

    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return f"worldmodels {worldmodels.__version__} ({commit}), torch {torch.__version__}"


def ours_params(run_dir: Path) -> int:
    from worldmodels.train.run import load_agent

    agent = load_agent(run_dir, device="cpu")
    seen = {id(p): p.numel() for o in agent.optimizers().values() for g in o.param_groups
            for p in g["params"]}  # fmt: skip
    return sum(seen.values())


def ours_rate(run_dir: Path, warmup: int) -> tuple[float, float, int]:
    """(updates/s, window seconds, updates in the window) from RUN/metrics.jsonl."""
    from worldmodels.bench.jobs import read_metrics

    rows = [r for r in read_metrics(run_dir) if "updates_per_s" in r]
    rows = [r for r in rows if r["updates"] >= warmup]
    if len(rows) < 2:
        raise RuntimeError(f"{run_dir}/metrics.jsonl has no window after {warmup} updates")
    first, last = rows[0], rows[-1]
    n = last["updates"] - first["updates"]
    dt = last["time"] - first["time"]
    return n / dt, dt, n


def peer_rate(times: list[float], warmup: int, measure: int) -> tuple[float, float, int]:
    # times[k] is the end of update k + 1; the window ends `measure` updates after update warmup
    dt = times[warmup + measure - 1] - times[warmup - 1]
    return measure / dt, dt, measure


def build_command(system: str, args, threads: int, work: Path) -> tuple[list[str], dict]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    if system in ("ours", "ours-eager"):
        steps = args.fill + 2 * (args.warmup + args.measure)
        cmd = [sys.executable, "-m", "worldmodels.cli", "train", "dreamerv3", "--preset", "size1m",
               "--env", "gym:CartPole-v1", "--steps", str(steps), "--seed", "0",
               "--run-dir", str(work / "run"), "--no-progress"]  # fmt: skip
        sets = {
            "run.threads": threads,
            "run.batch_size": BATCH,
            "run.batch_length": LENGTH,
            "run.train_ratio": TRAIN_RATIO,
            "run.prefill": args.fill,
            "run.log_every": 2,
            "run.eval_every": 0,
            "run.eval_episodes": 1,
            "run.gap_horizon": 0,
            "run.save_every_s": 1e9,
            "run.tensorboard": "false",
        }
        if system == "ours-eager":
            sets["compile"] = "false"
        sets["precision"] = PRECISIONS[args.precision]["ours"]
        for key, value in sets.items():
            cmd += ["--set", f"{key}={value}"]
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])
        )
        return cmd, env
    worker = "sheeprl" if system.startswith("sheeprl") else "dreamerv3"
    venv = sheeprl_venv() if worker == "sheeprl" else jax_venv()
    cmd = [str(venv / "bin/python"), str(Path(__file__).resolve()), "--worker", worker,
           "--threads", str(threads), "--warmup", str(args.warmup), "--measure", str(args.measure),
           "--fill", str(args.fill), "--precision", args.precision,
           "--out", str(work / "result.json"),
           "--log-dir", str(work)]  # fmt: skip
    if system == "sheeprl-compile":
        cmd += ["--compile"]
    if worker == "dreamerv3":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return cmd, env


def run_one(system: str, args, threads: int, cpus: list[int], out_dir: Path) -> dict:
    work = out_dir / f"{system}-t{threads}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log = out_dir / f"{system}-t{threads}.log"
    cmd, env = build_command(system, args, threads, work)
    pinned = cpus[:threads]
    print(
        f"\n[{system}, {threads} thread(s), CPUs {pinned}] log {os.path.relpath(log)}", flush=True
    )
    start = time.perf_counter()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, pinned),
        )
        timer = threading.Timer(args.timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    process_s = time.perf_counter() - start
    rss_mib = usage.ru_maxrss / 1024  # KiB on Linux
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"{system} exited with {proc.returncode} after {process_s:.0f} s; log "
            f"{log}:\n  " + "\n  ".join(tail)
        )
    if system in ("ours", "ours-eager"):
        rate, window, n = ours_rate(work / "run", args.warmup)
        params, versions = ours_params(work / "run"), ours_versions()
    else:
        result = json.loads((work / "result.json").read_text())
        rate, window, n = peer_rate(result["times"], args.warmup, args.measure)
        params, versions = result["params"], result["versions"]
    # sheeprl's memory-mapped replay files are sparse but large: keep only the logs
    for sub in ("run/replay", "run/checkpoints", "sheeprl", "logdir"):
        if (work / sub).exists():
            shutil.rmtree(work / sub, ignore_errors=True)
    row = {
        "system": system,
        "threads": threads,
        "warmup_updates": args.warmup,
        "measured_updates": n,
        "precision": args.precision,
        "updates_per_s": f"{rate:.4f}",
        "window_s": f"{window:.2f}",
        "max_rss_mib": f"{rss_mib:.0f}",
        "params": params,
        "versions": versions,
        "process_s": f"{process_s:.1f}",
        "cpus": " ".join(map(str, pinned)),
        "cpu_model": _cpu_model(),
        "log": os.path.relpath(log, ROOT),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(
        f"  {rate:.3f} updates/s over {n} updates ({window:.1f} s), max RSS {rss_mib:,.0f} MiB, "
        f"{params:,} parameters, {versions} ({process_s:.0f} s in all)",
        flush=True,
    )
    return row


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def find_row(rows: list[dict], system: str, threads: int, args) -> dict | None:
    for r in reversed(rows):
        if (r["system"], int(r["threads"]), int(r["warmup_updates"]), r["precision"]) != (
            system,
            threads,
            args.warmup,
            args.precision,
        ):
            continue
        n = int(r["measured_updates"])
        if n == args.measure or (system.startswith("ours") and abs(n - args.measure) <= 2):
            return r
    return None


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def print_table(rows: list[dict], args, threads_list: list[int]) -> None:
    print(
        "\n| system | threads | updates/s | ours / system | max RSS MiB | ours / system RSS "
        "| parameters | versions |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for threads in threads_list:
        found = {s: find_row(rows, s, threads, args) for s in args.systems}
        ours = found.get("ours") or find_row(rows, "ours", threads, args)
        for system in args.systems:
            r = found[system]
            if r is None:
                print(f"| {system} | {threads} | (not run) | | | | | |")
                continue
            ups, rss = float(r["updates_per_s"]), float(r["max_rss_mib"])
            ratio = f"{float(ours['updates_per_s']) / ups:.2f}" if ours else "-"
            rss_ratio = f"{float(ours['max_rss_mib']) / rss:.2f}" if ours else "-"
            print(
                f"| {system} | {threads} | {ups:.3f} | {ratio} | {rss:,.0f} | {rss_ratio} "
                f"| {int(r['params']):,} | {r['versions']} |"
            )
    models = sorted({r["cpu_model"] for r in rows if r["cpu_model"]})
    print(f"\nCPU: {'; '.join(models) or '?'}; updates/s over {args.measure} updates after "
          f"{args.warmup} of warm-up; precision {args.precision}")  # fmt: skip


def check_venvs(systems: list[str]) -> None:
    need = set()
    if any(s.startswith("sheeprl") for s in systems):
        need.add(sheeprl_venv())
    if "dreamerv3-jax" in systems:
        need.add(jax_venv())
    for venv in sorted(need):
        if not (venv / "bin/python").exists():
            print(f"error: {venv} is missing; install the peers first: {INSTALL}", file=sys.stderr)
            raise SystemExit(2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=DEFAULT_SYSTEMS)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--warmup", type=int, default=50, help="updates before the window")
    p.add_argument("--measure", type=int, default=200, help="updates in the window")
    p.add_argument(
        "--fill", type=int, default=1024, help="env steps before training (ours, sheeprl)"
    )
    p.add_argument(
        "--precision",
        default="float32",
        choices=list(PRECISIONS),
        help="every system's compute dtype: float32, or bf16 (ours precision=bf16, sheeprl "
        "fabric.precision=bf16-mixed, the reference's jax.compute_dtype bfloat16)",
    )
    p.add_argument("--cpus", type=int, nargs="+", help="CPUs to pin to (default: the first ones)")
    p.add_argument("--csv", type=Path, help="default runs/peers/dreamerv3/update_speed.csv")
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs/peers/dreamerv3")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    p.add_argument("--smoke", action="store_true", help="2 + 3 updates, 1 thread, fill 256")
    p.add_argument("--table-only", action="store_true", help="print the CSV's table, run nothing")
    # worker mode (inside a peer venv)
    p.add_argument("--worker", choices=["sheeprl", "dreamerv3"], help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--log-dir", help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.threads = args.threads[0]
        (sheeprl_worker if args.worker == "sheeprl" else dreamerv3_worker)(args)
        return 1
    if args.smoke:
        args.warmup, args.measure, args.fill, args.threads = 2, 3, 256, [1]
    if args.warmup < 1 or args.measure < 1:
        p.error("--warmup and --measure must be >= 1")
    name = "update_speed_smoke.csv" if args.smoke else "update_speed.csv"
    csv_path = args.csv or args.out_dir / name
    rows = read_rows(csv_path)
    if not args.table_only:
        check_venvs(args.systems)
    print("$", " ".join([os.path.relpath(sys.executable)] + sys.argv))
    if args.table_only:
        print_table(rows, args, args.threads)
        return 0
    cpus = args.cpus or sorted(os.sched_getaffinity(0))
    if max(args.threads) > len(cpus):
        p.error(f"{max(args.threads)} threads but only CPUs {cpus}")
    print(
        f"hardware: {platform.machine()} {_cpu_model()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; python {platform.python_version()}"
    )
    print(
        f"workload: DreamerV3 size1m, CartPole-v1 vector obs, batch {BATCH} x {LENGTH}, train "
        f"ratio {TRAIN_RATIO}; warm-up {args.warmup} updates, window {args.measure} updates; "
        f"CSV {os.path.relpath(csv_path)}",
        flush=True,
    )
    failed = []
    for threads in args.threads:
        for system in args.systems:
            if find_row(rows, system, threads, args):
                print(f"[{system}, {threads} thread(s)] in the CSV already", flush=True)
                continue
            try:
                row = run_one(system, args, threads, cpus, args.out_dir / "runs")
            except RuntimeError as e:
                print(f"  failed: {e}", flush=True)
                failed.append(f"{system} t{threads}")
                continue
            append_row(csv_path, row)
            rows.append(row)
    print_table(rows, args, args.threads)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
