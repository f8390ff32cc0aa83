"""Board games with a trained agent: evaluation matches against reference players, and a person
playing the agent in the terminal (``worldmodels play``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..envs.board import (
    SYMBOLS,
    BoardEnv,
    Policy,
    get_game,
    negamax_policy,
    perfect_policy,
    play_match,
    random_policy,
    stone,
)
from ..errors import UserError


def board_game_name(env_id: str) -> str | None:
    """``'board:tic_tac_toe'`` -> ``'tic_tac_toe'``; None for other suites."""
    suite, _, name = env_id.partition(":")
    return name if suite == "board" else None


def plays_board(agent: Any, env_id: str) -> bool:
    """Whether board evaluation applies: a board env and an agent that honours legal masks."""
    return board_game_name(env_id) is not None and agent.traits.legal_actions


def agent_policy(agent: Any) -> Policy:
    """A ``step -> action`` policy playing the agent greedily (``mode='eval'``) on one board."""
    state = agent.init_state(1)

    def policy(step: dict[str, np.ndarray]) -> int:
        nonlocal state
        if bool(step["is_first"]):
            state = agent.init_state(1)
        obs = {k: np.asarray(v)[None] for k, v in step.items()}
        state, action, _ = agent.act(state, obs, mode="eval")
        return int(np.asarray(action).reshape(-1)[0])

    return policy


def _strong_player(game: str, seed: int) -> tuple[str, Policy]:
    if game == "tic_tac_toe":
        return "perfect", perfect_policy(seed)
    return "negamax", negamax_policy(game, depth=4, seed=seed)


def board_evaluation(agent: Any, env_id: str, games: int, seed: int = 0) -> dict[str, float]:
    """Agent vs random and vs the perfect (tic-tac-toe) or depth-4 negamax player, ``games`` each
    as first and as second player: ``{'board/<opponent>_<first|second>_<wins|draws|losses>'}``."""
    game = board_game_name(env_id)
    if game is None:
        raise UserError(f"board evaluation needs a board: env, got {env_id}")
    strong_name, strong = _strong_player(game, seed)
    out: dict[str, float] = {}
    for name, opponent in (("random", random_policy(seed)), (strong_name, strong)):
        for first in (True, False):
            result = play_match(
                agent_policy(agent), opponent, game, n_games=games, seed=seed, a_first=first
            )
            seat = "first" if first else "second"
            for k, v in result.items():
                out[f"board/{name}_{seat}_{k}"] = float(v)
    return out


def board_summary(result: dict[str, float]) -> str:
    """One line: W/D/L per opponent and seat."""
    parts = []
    for key in result:
        if key.endswith("_wins"):
            stem = key[: -len("_wins")]
            w, d, lo = (int(result[f"{stem}_{k}"]) for k in ("wins", "draws", "losses"))
            parts.append(f"{stem.removeprefix('board/')} {w}/{d}/{lo}")
    return "W/D/L " + ", ".join(parts)


def play_human(
    agent: Any,
    game: str,
    *,
    human_first: bool = True,
    read: Callable[[], str] = input,
    write: Callable[[str], None] = print,
) -> str:
    """A person plays ``agent`` in the terminal: board drawn, moves read with ``read``, a bad
    move answered with one line and asked again. Returns ``'human'``, ``'agent'`` or ``'draw'``.
    An exhausted input (EOFError) abandons the game with a UserError."""
    g = get_game(game)
    env = BoardEnv(g)
    step = env.reset()
    human_seat = 0 if human_first else 1
    policy = agent_policy(agent)
    noun = "column" if g.gravity else "cell"
    you = SYMBOLS[stone(human_seat)]
    write(f"you are {you} ({'first' if human_first else 'second'}); enter a {noun} number")
    shown = False
    while not step["is_last"]:
        if env.to_play == human_seat:
            if not shown:
                write(env.ansi())
                shown = True
            legal = np.flatnonzero(step["legal"]).tolist()
            try:
                text = read().strip()
            except EOFError:
                raise UserError("no move given (end of input); game abandoned") from None
            if not text.lstrip("-").isdigit() or int(text) not in legal:
                write(f"bad move {text!r}: choose a free {noun} from {legal}")
                continue
            step, shown = env.step(int(text)), False
        else:
            action = policy(step)
            step = env.step(action)
            write(f"agent plays {action}")
    write(env.ansi())
    if env.winner is None:
        outcome = "draw"
    else:
        outcome = "human" if env.winner == human_seat else "agent"
    write({"draw": "draw", "human": "you win", "agent": "the agent wins"}[outcome])
    return outcome
