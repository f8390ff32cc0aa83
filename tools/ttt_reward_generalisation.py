"""How far a MuZero reward model generalises from a tic-tac-toe self-play replay.

    python tools/ttt_reward_generalisation.py RUN_DIR [--updates 4000]

Reads the run's replay, counts which (position, winning move) pairs self-play ever stored, then
fits a fresh network of the run's size (representation h and dynamics g, scalar reward head) on
the replay's (observation, action, reward) transitions alone, once as stored and once under the
board's symmetries (``train.augment_symmetries``), and prints the predicted reward of the
immediately winning moves of every reachable position, split by whether the replay holds them.
This isolates the data from the self-play loop: a reward model that only learns the winning moves
it has seen cannot guide the search to the ones it has not.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
import torch
from ttt_diagnose import reachable_positions

from worldmodels.envs import make_env
from worldmodels.envs.board import GAMES, canonical, encode_planes
from worldmodels.models.muzero import MuZeroNetwork


def replay_transitions(run_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observation, action, reward that arrived next) of every stored move."""
    obs, act, rew = [], [], []
    for f in sorted(glob.glob(f"{run_dir}/replay/*.npz")):
        d = np.load(f)
        keep = ~d["is_last"][:-1]
        obs.append(d["vector"][:-1][keep])
        act.append(d["action"][:-1][keep])
        rew.append(d["reward"][1:][keep])
    return np.concatenate(obs), np.concatenate(act), np.concatenate(rew)


def all_moves() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (observation, legal move) pair of the reachable positions and whether it wins."""
    game = GAMES["tic_tac_toe"]
    obs, act, wins = [], [], []
    for board, to_play in reachable_positions():
        c = canonical(board, to_play).reshape(-1)
        for a in np.flatnonzero(c == 0):
            after = c.copy()
            after[a] = 1
            obs.append(encode_planes(c.reshape(3, 3), to_play))
            act.append(a)
            wins.append(game.winner(after.reshape(3, 3)) == 1)
    return np.stack(obs), np.array(act), np.array(wins)


def fit(config: dict, data, symmetries, updates: int, seed: int = 0) -> MuZeroNetwork:
    """A fresh h + g fitted on the replayed rewards (MSE), optionally under random symmetries."""
    torch.manual_seed(seed)
    m = config["model"]
    net = MuZeroNetwork(
        (27,),
        9,
        image=False,
        support_size=0,
        latent=m["latent"],
        units=m["units"],
        layers=m["layers"],
        head_layers=m["head_layers"],
        norm=m["norm"],
        act=m["act"],
    )
    o = config["optim"]
    opt = torch.optim.Adam(net.parameters(), o["lr"], weight_decay=o["weight_decay"])
    obs, act, rew = data
    rng = np.random.default_rng(seed)
    perm_obs = np.stack([s.obs for s in symmetries])
    perm_act = np.argsort(np.stack([s.action for s in symmetries]), axis=1)  # inverse
    for _ in range(updates):
        i = rng.integers(0, len(act), 128)
        k = rng.integers(0, len(symmetries), 128)
        x = np.take_along_axis(obs[i], perm_obs[k], axis=1)
        a = perm_act[k, act[i]]
        _, r = net.dynamics(net.represent(torch.as_tensor(x)), torch.as_tensor(a))
        loss = ((r[:, 0] - torch.as_tensor(rew[i])) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--updates", type=int, default=4000)
    args = p.parse_args()
    torch.set_num_threads(1)
    config = json.loads((Path(args.run_dir) / "config.json").read_text())["config"]
    data = replay_transitions(args.run_dir)
    obs, act, wins = all_moves()
    stored = {(o.astype(np.int8).tobytes(), int(a)) for o, a in zip(data[0], data[1])}
    seen = np.array([(o.astype(np.int8).tobytes(), int(a)) in stored for o, a in zip(obs, act)])
    print(f"replay: {len(data[1])} moves, {int((data[2] == 1).sum())} winning")
    print(
        f"reachable (position, move) pairs: {len(act)}, winning {int(wins.sum())}, "
        f"winning pairs in the replay {int((wins & seen).sum())}"
    )
    syms = make_env("board:tic_tac_toe").symmetries
    for name, use in (("as stored", syms[:1]), ("with symmetries", syms)):
        net = fit(config, data, use, args.updates)
        with torch.no_grad():
            _, r = net.dynamics(net.represent(torch.as_tensor(obs)), torch.as_tensor(act))
        r = r[:, 0].numpy()
        print(
            f"{name:16s} predicted reward: winning moves {r[wins].mean():.2f} (in replay "
            f"{r[wins & seen].mean():.2f}, not in replay {r[wins & ~seen].mean():.2f}), "
            f"other moves {r[~wins].mean():.3f}"
        )


if __name__ == "__main__":
    main()
