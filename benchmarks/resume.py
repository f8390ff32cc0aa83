"""Resume benchmark: SIGKILL a training run at random moments, resume it each time, compare.

    python benchmarks/resume.py --env gym:CartPole-v1 --preset debug --steps 4000 --kills 3

Runs the same command twice: once uninterrupted, once killed with SIGKILL ``--kills`` times at
random env steps (each kill right after the run logs that step) and resumed with
``worldmodels train --resume`` after each kill. Prints, per kill: the step it was killed at, the
checkpoint step it resumed from, and how many collected steps were not yet in a replay chunk on
disk (what the kill lost; bounded by ``run.replay_chunk``). At the end it compares the final
counters (env steps, updates) and replay sizes of the two runs. Exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from worldmodels.checkpoint import load_checkpoint
from worldmodels.replay import ReplayBuffer


def _last_step(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue  # a line being written
    return 0


def _replay_steps(run: Path, chunk: int) -> int:
    """Steps stored in the run's replay chunk files (what a resume would load)."""
    return len(ReplayBuffer(10**9, run / "replay", chunk))


def _counters(run: Path) -> dict:
    state, _ = load_checkpoint(run / "checkpoints")
    return {k: state["counters"][k] for k in ("env_steps", "updates", "episodes")}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agent", default="dreamerv3")
    p.add_argument("--env", default="gym:CartPole-v1")
    p.add_argument("--preset", default="debug")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=float, default=10.0, help="run.save_every_s")
    p.add_argument("--out", default="runs/resume")
    args = p.parse_args()
    exe = str(Path(sys.executable).parent / "worldmodels")
    stamp = int(time.time())
    base = Path(args.out)
    # log every step: the last metrics line then tells the step a kill happened at (to 1 step)
    sets = ["--set", f"run.save_every_s={args.save_every}", "--set", "run.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train_cmd(run: Path) -> list[str]:
        return [exe, "train", args.agent, "--env", args.env, "--preset", args.preset,
                "--steps", str(args.steps), "--seed", str(args.seed), "--run-dir", str(run),
                "--no-progress", *sets]  # fmt: skip

    # Uninterrupted reference
    ref = base / f"ref-{stamp}"
    print("$", " ".join(train_cmd(ref)), flush=True)
    t0 = time.time()
    subprocess.run(train_cmd(ref), check=True, env=env, stdout=subprocess.DEVNULL)
    ref_wall = time.time() - t0

    # Killed and resumed
    run = base / f"killed-{stamp}"
    rng = random.Random(args.seed)
    cfg_chunk = None
    targets = sorted(rng.sample(range(args.steps // 10, args.steps * 9 // 10), args.kills))
    kills = []
    proc = subprocess.Popen(train_cmd(run), env=env, stdout=subprocess.DEVNULL)
    t0 = time.time()
    for target in targets:
        while _last_step(run) < target or not (run / "checkpoints/latest.json").exists():
            if proc.poll() is not None:
                raise SystemExit(f"run exited with {proc.returncode} before step {target}")
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))  # a random moment after the logged step
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_after = _last_step(run)
        if cfg_chunk is None:
            cfg_chunk = json.loads((run / "config.json").read_text())["config"]["run"]
        chunk = int(cfg_chunk["replay_chunk"])
        on_disk = _replay_steps(run, chunk)
        resumed_from = json.loads((run / "checkpoints/latest.json").read_text())["step"]
        kills.append(
            {
                "killed_at_step": killed_after,
                "resumed_from_step": resumed_from,
                "replay_on_disk": on_disk,
                "unflushed_lost": max(0, killed_after - on_disk),
            }
        )
        print(json.dumps(kills[-1]), flush=True)
        resume = [exe, "train", "--resume", str(run), "--no-progress"]
        proc = subprocess.Popen(resume, env=env, stdout=subprocess.DEVNULL)
    if proc.wait() != 0:
        raise SystemExit(f"resumed run exited with {proc.returncode}")
    killed_wall = time.time() - t0

    a, b = _counters(ref), _counters(run)
    chunk = int(cfg_chunk["replay_chunk"])
    ra, rb = _replay_steps(ref, chunk), _replay_steps(run, chunk)
    print(
        f"\n{args.agent} {args.preset} on {args.env}, {args.steps} steps, seed {args.seed}, "
        f"{args.kills} SIGKILLs, replay chunk {chunk}, checkpoint every {args.save_every:g} s, "
        f"{platform.machine()} {os.cpu_count()} cores"
    )
    print(f"uninterrupted: {a}, replay {ra} steps, wall {ref_wall:.0f} s")
    print(f"killed+resumed: {b}, replay {rb} steps, wall {killed_wall:.0f} s (incl. redone work)")
    ok = a["env_steps"] == b["env_steps"] == args.steps and a["updates"] == b["updates"]
    lost_ok = all(k["unflushed_lost"] <= chunk for k in kills)
    print(f"same env steps and updates: {ok}; each kill lost <= one chunk ({chunk}): {lost_ok}")
    return 0 if ok and lost_ok else 1


if __name__ == "__main__":
    sys.exit(main())
