"""Why a CartPole agent's eval episodes end early: python tools/cartpole_failures.py RUN_DIR
[--episodes 16] [--seed 4242].

Plays greedy episodes side by side (the run's own eval setting) and prints, per episode, its
length, how it ended (``wall``: |x| > 2.4, ``pole``: |theta| > 12 degrees, ``time``: 500 steps),
the largest |x| reached, and, for agents that report a search root value (MuZero), that value
over the last 10 steps. Finally a count of how the replay's terminal steps ended, per fifth of
the run, which shows whether the agent ever saw the failure it makes."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from worldmodels.train.run import eval_envs, load_agent, set_threads

X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * np.pi / 360


def ending(vector: np.ndarray, length: int, limit: int = 500) -> str:
    if abs(vector[0]) > X_LIMIT:
        return "wall"
    if abs(vector[2]) > THETA_LIMIT:
        return "pole"
    return "time" if length >= limit else "?"


def play(run_dir: str, episodes: int, seed: int) -> None:
    agent = load_agent(run_dir, device="cpu")
    info = agent.run_info
    set_threads(info.config.run.threads)
    env = eval_envs(info, episodes, seed_offset=777)
    n = env.num_envs
    obs = env.reset(seed=seed)
    state = agent.init_state(n)
    done = np.zeros(n, bool)
    xs: list[list[float]] = [[] for _ in range(n)]
    values: list[list[float]] = [[] for _ in range(n)]
    last: list[np.ndarray | None] = [None] * n
    while not done.all():
        state, action, extra = agent.act(state, obs, mode="eval")
        root = extra.get("replay", {}).get("root_value")
        obs = env.step(action)
        for i in np.flatnonzero(~done & ~obs["is_first"]):
            xs[i].append(float(obs["vector"][i][0]))
            if root is not None:
                values[i].append(float(root[i]))
            if obs["is_last"][i]:
                done[i], last[i] = True, obs["vector"][i].copy()
    print(f"{run_dir}: {n} greedy episodes (seed {seed})")
    for i in range(n):
        tail = " ".join(f"{v:.0f}" for v in values[i][-10:]) if values[i] else "-"
        print(
            f"  episode {i:2d}: length {len(xs[i]):3d}, ended by {ending(last[i], len(xs[i]))}, "
            f"max |x| {np.max(np.abs(xs[i])):.2f}; root value, last 10 steps: {tail}"
        )
    env.close()


def replay_endings(run_dir: str, parts: int = 5) -> None:
    """Terminal steps in the replay by how they ended, per fifth of the run (chunk files are
    numbered in the order they were written)."""
    files = sorted(Path(run_dir, "replay").glob("*.npz"))
    counts: collections.Counter = collections.Counter()
    for f in files:
        index = int(f.stem.split("-")[0])
        d = np.load(f)
        for t in np.flatnonzero(d["is_terminal"]):
            counts[(ending(d["vector"][t], 0), index * parts // len(files))] += 1
    print(f"replay terminal steps per fifth of the run ({len(files)} chunk files):")
    for kind in sorted({k for k, _ in counts}):
        row = " / ".join(str(counts[(kind, q)]) for q in range(parts))
        print(f"  {kind}: {row}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--seed", type=int, default=4242)
    a = p.parse_args()
    play(a.run_dir, a.episodes, a.seed)
    replay_endings(a.run_dir)


if __name__ == "__main__":
    main()
