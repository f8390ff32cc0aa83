"""Grade a MuZero tic-tac-toe run against exact minimax, position by position.

    python tools/ttt_diagnose.py RUN_DIR [--simulations N]

Over every non-terminal position reachable from the empty board (4,520, from the player to
move's side) it prints how well the network knows the game: the correlation of the value head
with the minimax value, how often the prior's argmax and the search's move are optimal, the
model's one-step action values r(s, a) - v(g(s, a)) against minimax Q, and the predicted reward of
immediately winning moves; and, per seat, the agent's non-optimal moves on every line a perfect
opponent can play (the games the perfect-player evaluation can lose). Board-game evaluation
(W/D/L against the random and perfect players) says *whether* the agent plays well; this says
*where* the model is wrong.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import worldmodels
from worldmodels.envs.board import GAMES, action_values, canonical, encode_planes


def reachable_positions() -> list[tuple[np.ndarray, int]]:
    """Every non-terminal tic-tac-toe position reachable in play, as (absolute board, to_play)."""
    game, seen, out = GAMES["tic_tac_toe"], set(), []

    def visit(board: tuple[int, ...], to_play: int) -> None:
        if (board, to_play) in seen:
            return
        seen.add((board, to_play))
        arr = np.array(board, dtype=np.int8).reshape(3, 3)
        if game.winner(arr) != 0 or 0 not in board:
            return
        out.append((arr, to_play))
        mark = 1 if to_play == 0 else -1
        for a in range(9):
            if board[a] == 0:
                visit(board[:a] + (mark,) + board[a + 1 :], 1 - to_play)

    visit((0,) * 9, 0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--simulations", type=int, default=0, help="search simulations (0 = config)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    torch.set_num_threads(1)
    agent = worldmodels.Agent.load(args.run_dir, device="cpu")
    if args.simulations:
        agent.config.search.eval_simulations = args.simulations
    eps = agent.config.model.h_eps
    positions = reachable_positions()
    canon = [canonical(b, tp) for b, tp in positions]
    obs = torch.tensor(np.stack([encode_planes(c, tp) for c, (_, tp) in zip(canon, positions)]))
    legal = torch.tensor(np.stack([c.reshape(-1) == 0 for c in canon]))
    q_star = np.stack([action_values(b, tp) for b, tp in positions])  # [N, 9], NaN illegal
    v_star = np.nanmax(q_star, 1)
    rows = np.arange(len(positions))
    with torch.no_grad():
        inf = agent.net.initial_inference(obs)
        value = agent.net.scalar(inf.value_logits, eps).numpy()
        prior = inf.policy_logits.masked_fill(~legal, -torch.inf).argmax(-1).numpy()
        searched = agent.search(obs, legal, explore=False).action.numpy()
        q_err, win_r, other_r = [], [], []
        for a in range(9):
            step = agent.net.recurrent_inference(inf.hidden, torch.full((len(rows),), a))
            r = agent.net.scalar(step.reward_logits, eps).numpy()
            v_next = agent.net.scalar(step.value_logits, eps).numpy()
            ok = ~np.isnan(q_star[:, a])
            q_err.append(np.abs(r - v_next - q_star[:, a])[ok])  # two-player: r + (-v')
            wins = ok & (q_star[:, a] == 1) & np.array([_wins_now(c, a) for c in canon])
            win_r.append(r[wins])
            other_r.append(r[ok & ~wins])
    q_err, win_r, other_r = map(np.concatenate, (q_err, win_r, other_r))
    result = {
        "positions": len(positions),
        "value_corr": float(np.corrcoef(value, v_star)[0, 1]),
        "value_mae": float(np.abs(value - v_star).mean()),
        "value_mean_by_minimax": {
            str(int(v)): float(value[v_star == v].mean()) for v in (-1, 0, 1)
        },
        "prior_optimal": float((q_star[rows, prior] == v_star).mean()),
        "search_optimal": float((q_star[rows, searched] == v_star).mean()),
        "search_blunders_from_won": int(((q_star[rows, searched] != v_star) & (v_star == 1)).sum()),
        "search_blunders_from_drawn": int(
            ((q_star[rows, searched] != v_star) & (v_star == 0)).sum()
        ),
        "model_q_mae": float(q_err.mean()),
        "reward_of_winning_moves": float(win_r.mean()),
        "reward_of_other_moves": float(other_r.mean()),
    }
    # Per seat (X = seat 0 moves first): where the opponent threatens to win next move and the
    # mover cannot win at once, does the search block (play the only non-losing cells)?
    seat = np.array([tp for _, tp in positions])
    wins_now = np.array([[_wins_now(c, a) for a in range(9)] for c in canon])
    threat = np.array([[_wins_now(-c, a) for a in range(9)] for c in canon])
    must_block = threat.any(1) & ~wins_now.any(1)
    blocked = threat[rows, searched]
    for s_, name in ((0, "x"), (1, "o")):
        mine = seat == s_
        result[f"search_optimal_{name}"] = float((q_star[rows, searched] == v_star)[mine].mean())
        result[f"positions_to_block_{name}"] = int((mine & must_block).sum())
        result[f"blocks_{name}"] = float(blocked[mine & must_block].mean())
        result[f"wins_when_it_can_{name}"] = float(
            wins_now[rows, searched][mine & wins_now.any(1)].mean()
        )
    examples = {}
    for s_, name in ((0, "x"), (1, "o")):
        seen, bad = perfect_lines(agent, s_)
        result[f"perfect_lines_positions_{name}"] = seen
        result[f"perfect_lines_blunders_{name}"] = len(bad)
        examples[name] = bad[:6]
    if args.json:
        print(json.dumps(result))
        return
    for k, v in result.items():
        print(f"{k:28s} {v}")
    for name, bad in examples.items():
        for ply, board, a in bad:
            print(
                f"{name} blunder at ply {ply}: {board} (rows, X/O/.) -> the search plays cell {a}"
            )


def perfect_lines(agent, seat: int) -> tuple[int, list[tuple[int, str, int]]]:
    """Walk every game in which the opponent plays each of its optimal moves and the agent
    (``seat``) its deterministic search move: (agent positions met, [(ply, board, move)] where
    the agent's move loses value). These are the positions the perfect-player evaluation can
    reach, so a blunder here is a game the agent can lose."""
    game = GAMES["tic_tac_toe"]
    seen, bad = set(), []

    def visit(board: np.ndarray, to_play: int, ply: int) -> None:
        key = (board.tobytes(), to_play)
        if key in seen or game.winner(board) != 0 or (board != 0).all():
            return
        seen.add(key)
        q = action_values(board, to_play)
        legal = board.reshape(-1) == 0
        best = np.nanmax(q)
        if to_play == seat:
            c = canonical(board, to_play)
            obs = torch.tensor(encode_planes(c, to_play))[None]
            a = int(agent.search(obs, torch.tensor(legal)[None], explore=False).action[0])
            if q[a] < best:
                text = "/".join("".join(".XO"[int(v)] for v in row) for row in board)
                bad.append((ply, text, a))
            moves = [a]
        else:
            moves = [m for m in range(9) if legal[m] and q[m] == best]
        for m in moves:
            nxt = board.copy().reshape(-1)
            nxt[m] = 1 - 2 * to_play
            visit(nxt.reshape(3, 3), 1 - to_play, ply + 1)

    visit(np.zeros((3, 3), np.int8), 0, 0)
    return sum(1 for _, tp in seen if tp == seat), sorted(bad)


def _wins_now(canonical_board: np.ndarray, a: int) -> bool:
    """Whether the player to move (+1) wins by playing empty cell ``a``."""
    b = canonical_board.reshape(-1).copy()
    if b[a] != 0:
        return False
    b[a] = 1
    return GAMES["tic_tac_toe"].wins_at(b, a)


if __name__ == "__main__":
    main()
