"""Two-player board games in pure NumPy: ``board:tic_tac_toe`` (3x3) and ``board:connect_four``.

Boards are int8 arrays ``[rows, cols]`` holding ``+1`` for the first player's stones (X, seat 0),
``-1`` for the second player's (O, seat 1) and ``0`` for empty cells; row 0 is the top row.
Tic-tac-toe actions are cells ``row * 3 + col`` (9 actions); connect-four actions are columns
(7 actions) and the stone falls to the lowest empty row of that column.

Observation (the step dict of :mod:`worldmodels.envs.base` plus two keys):

* ``vector``: float32 ``[3 * rows * cols]``, three planes ``[3, rows, cols]`` flattened
  (``BoardEnv.planes_shape``) in *canonical form*, i.e. from the perspective of the player to
  move: plane 0 that player's stones, plane 1 the opponent's, plane 2 constant ``to_play``;
  ``obs='pixels'`` gives ``image`` (uint8, canonical colours) instead of ``vector``;
* ``legal``: bool ``[num_actions]``, the legal actions of the player to move (all False on the
  terminal observation);
* ``to_play``: int64 scalar, the seat (0 or 1) whose perspective the observation takes.

Rewards. Self-play (``opponent=None``; both players step the env in turn): the reward that arrives
with an observation is from the perspective of the player who *just moved*, ``+1`` for a winning
move, else 0 (draws and ongoing games). ``to_play`` and the canonical planes flip every move, so
a MuZero value target alternates sign the usual way. With a built-in ``opponent`` the env is a
single-player env: the opponent replies inside ``step`` and the reward is the agent's, ``+1`` win,
``-1`` loss, 0 draw or ongoing; every observation is from the agent's seat.

Illegal actions raise :class:`ValueError`; stepping a finished game raises :class:`RuntimeError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from worldmodels.envs.base import ActionSpace, Env, Spec, Symmetry, discrete_index, make_step
from worldmodels.errors import UserError

Policy = Callable[[dict[str, np.ndarray]], Any]  # step dict -> action index
SYMBOLS = {1: "X", -1: "O", 0: "."}
_WIN = 1_000_000  # negamax score of a won position (plus the remaining depth)


def stone(to_play: int) -> int:
    """The stone value of seat ``to_play``: +1 for seat 0 (X), -1 for seat 1 (O)."""
    return 1 - 2 * int(to_play)


# -- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Game:
    """A k-in-a-row game on a ``rows x cols`` grid; with ``gravity`` an action is a column."""

    name: str
    rows: int
    cols: int
    win_length: int
    gravity: bool

    @property
    def num_actions(self) -> int:
        return self.cols if self.gravity else self.rows * self.cols

    @functools.cached_property
    def lines(self) -> np.ndarray:
        """Every winning line as flat cell indices, ``[num_lines, win_length]``."""
        k, out = self.win_length, []
        for r in range(self.rows):
            for c in range(self.cols):
                for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    rr, cc = r + dr * (k - 1), c + dc * (k - 1)
                    if 0 <= rr < self.rows and 0 <= cc < self.cols:
                        out.append([(r + dr * i) * self.cols + c + dc * i for i in range(k)])
        return np.array(out, dtype=np.int64)

    @functools.cached_property
    def lines_through(self) -> tuple[np.ndarray, ...]:
        """For each flat cell, the winning lines that contain it, ``[n, win_length]``."""
        return tuple(self.lines[(self.lines == i).any(1)] for i in range(self.rows * self.cols))

    @functools.cached_property
    def move_order(self) -> np.ndarray:
        """Actions sorted centre-first (search tries likely-good moves first)."""
        if self.gravity:
            dist = np.abs(np.arange(self.cols) - (self.cols - 1) / 2)
        else:
            r, c = np.divmod(np.arange(self.num_actions), self.cols)
            dist = np.abs(r - (self.rows - 1) / 2) + np.abs(c - (self.cols - 1) / 2)
        return np.argsort(dist, kind="stable")

    @functools.cached_property
    def symmetries(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The board's symmetries as (cell, action) index permutations, identity first: the
        transformed board is ``board.reshape(-1)[cell]`` and the transformed action ``i`` is the
        original action ``action[i]``. Placement games keep every rotation and reflection of the
        board (8 on a square, 4 otherwise); with gravity only the left-right mirror keeps the
        rules (stones fall down), so connect four has 2."""
        idx = np.arange(self.rows * self.cols).reshape(self.rows, self.cols)
        if self.gravity:
            grids = [idx, idx[:, ::-1]]
        elif self.rows == self.cols:
            grids = [g for k in range(4) for g in (np.rot90(idx, k), np.rot90(idx, k).T)]
        else:
            grids = [idx, idx[::-1], idx[:, ::-1], idx[::-1, ::-1]]
        out = []
        for g in grids:
            cell = np.ascontiguousarray(g).reshape(-1)
            action = cell if not self.gravity else g[0] % self.cols
            out.append((cell, np.asarray(action, dtype=np.int64)))
        return tuple(out)

    def initial_board(self) -> np.ndarray:
        return np.zeros((self.rows, self.cols), dtype=np.int8)

    def legal(self, board: np.ndarray) -> np.ndarray:
        """Legal-action mask, bool ``[num_actions]``."""
        board = np.asarray(board).reshape(self.rows, self.cols)
        return (board[0] if self.gravity else board.reshape(-1)) == 0

    def landing(self, board: np.ndarray, action: int) -> int | None:
        """Flat cell where ``action``'s stone lands, or None if the action is illegal."""
        flat = np.asarray(board).reshape(-1)
        if not 0 <= action < self.num_actions:
            return None
        if not self.gravity:
            return action if flat[action] == 0 else None
        empty = np.flatnonzero(flat[action :: self.cols] == 0)
        return None if empty.size == 0 else int(empty[-1]) * self.cols + action

    def wins_at(self, board: np.ndarray, cell: int) -> bool:
        """Whether the stone on flat ``cell`` completes a line of ``win_length``."""
        flat = np.asarray(board).reshape(-1)
        s = flat[cell]
        return bool(s != 0 and (flat[self.lines_through[cell]] == s).all(1).any())

    def winner(self, board: np.ndarray) -> int:
        """+1 or -1 if that stone has a complete line, else 0 (computed from scratch)."""
        vals = np.asarray(board).reshape(-1)[self.lines]
        for s in (1, -1):
            if (vals == s).all(1).any():
                return s
        return 0

    def __str__(self) -> str:
        return f"board:{self.name}"


GAMES: dict[str, Game] = {
    "tic_tac_toe": Game("tic_tac_toe", rows=3, cols=3, win_length=3, gravity=False),
    "connect_four": Game("connect_four", rows=6, cols=7, win_length=4, gravity=True),
}


def get_game(game: str | Game) -> Game:
    """A :class:`Game` by name (``'tic_tac_toe'``, ``'connect_four'``) or passed through."""
    if isinstance(game, Game):
        return game
    if game not in GAMES:
        known = ", ".join(f"board:{n}" for n in GAMES)
        raise UserError(f"unknown board game 'board:{game}'; fix: use one of {known}")
    return GAMES[game]


def canonical(board: np.ndarray, to_play: int) -> np.ndarray:
    """The board seen by seat ``to_play``: its stones +1, the opponent's -1 (int8)."""
    return (np.asarray(board, dtype=np.int8) * stone(to_play)).astype(np.int8)


def encode_planes(canonical_board: np.ndarray, to_play: int) -> np.ndarray:
    """Canonical board -> float32 ``[3 * rows * cols]`` (own, opponent, constant to_play)."""
    b = np.asarray(canonical_board)
    planes = np.stack([b == 1, b == -1, np.full(b.shape, bool(to_play))]).astype(np.float32)
    return planes.reshape(-1)


def board_from_obs(step: dict[str, np.ndarray], game: str | Game) -> tuple[np.ndarray, int]:
    """Recover ``(board, to_play)`` (absolute int8 board ``[rows, cols]``) from a step dict."""
    g = get_game(game)
    planes = np.asarray(step["vector"]).reshape(3, g.rows, g.cols)
    to_play = int(step["to_play"])
    canon = planes[0].astype(np.int8) - planes[1].astype(np.int8)
    return canonical(canon, to_play), to_play


# -- players ---------------------------------------------------------------------------------


def random_action(legal: np.ndarray, rng: np.random.Generator) -> int:
    """A uniformly random legal action."""
    actions = np.flatnonzero(np.asarray(legal))
    if actions.size == 0:
        raise ValueError("no legal action: the game is over")
    return int(rng.choice(actions))


_TTT = GAMES["tic_tac_toe"]
_TTT_LINES = tuple(tuple(tuple(int(i) for i in line) for line in ls) for ls in _TTT.lines_through)


def _ttt_wins(b: tuple[int, ...], cell: int) -> bool:
    return any(all(b[i] == 1 for i in line) for line in _TTT_LINES[cell])


@functools.cache
def _ttt_action_values(b: tuple[int, ...]) -> tuple[float, ...]:
    """Minimax value of each action on a canonical board, for the mover; NaN where illegal."""
    out = []
    for a in range(9):
        if b[a] != 0:
            out.append(float("nan"))
            continue
        nb = b[:a] + (1,) + b[a + 1 :]
        if _ttt_wins(nb, a):
            out.append(1.0)
        elif 0 not in nb:
            out.append(0.0)
        else:
            out.append(-_ttt_value(tuple(-x for x in nb)))
    return tuple(out)


@functools.cache
def _ttt_value(b: tuple[int, ...]) -> float:
    return max(v for v in _ttt_action_values(b) if v == v)


def _ttt_key(board: np.ndarray, to_play: int) -> tuple[int, ...]:
    b = np.asarray(board).reshape(-1)
    if b.shape != (9,):
        raise ValueError(f"expected a tic-tac-toe board of 9 cells, got shape {np.shape(board)}")
    key = tuple(int(x) for x in canonical(b, to_play))
    if _TTT.winner(np.array(key)) != 0 or 0 not in key:
        raise ValueError("the tic-tac-toe game is over: no action to value")
    return key


def minimax_value(board: np.ndarray, to_play: int) -> float:
    """Exact tic-tac-toe value for the player to move: +1 win, 0 draw, -1 loss."""
    return _ttt_value(_ttt_key(board, to_play))


def action_values(board: np.ndarray, to_play: int) -> np.ndarray:
    """Exact tic-tac-toe value of each action for the mover, float32 ``[9]``, NaN where illegal."""
    return np.array(_ttt_action_values(_ttt_key(board, to_play)), dtype=np.float32)


def perfect_action(board: np.ndarray, to_play: int, rng: np.random.Generator) -> int:
    """A minimax-optimal tic-tac-toe action, uniformly among the optimal ones (memoised)."""
    values = action_values(board, to_play)
    return int(rng.choice(np.flatnonzero(values == np.nanmax(values))))


@functools.cache
def _window_weights(k: int) -> np.ndarray:
    return np.array([0] + [4 ** (n - 1) for n in range(1, k)] + [0], dtype=np.int64)


def _heuristic(game: Game, b: np.ndarray) -> int:
    """Score of canonical board ``b`` for the player to move: open lines weighted 4^(n-1)."""
    vals = b.reshape(-1)[game.lines]
    own, opp = (vals == 1).sum(1), (vals == -1).sum(1)
    weight = _window_weights(game.win_length)
    return int(weight[own][opp == 0].sum() - weight[opp][own == 0].sum())


def _negamax(game: Game, b: np.ndarray, depth: int, alpha: float, beta: float) -> float:
    """Alpha-beta negamax on canonical ``b`` (the mover's stones +1); a score for the mover."""
    legal = game.legal(b)
    moves = [int(a) for a in game.move_order if legal[a]]
    if not moves:
        return 0.0
    if depth == 0:
        return float(_heuristic(game, b))
    best = -np.inf
    for a in moves:
        v = _move_score(game, b, a, depth, alpha, beta)
        best, alpha = max(best, v), max(alpha, v)
        if alpha >= beta:
            break
    return best


def _move_score(game: Game, b: np.ndarray, a: int, depth: int, alpha: float, beta: float) -> float:
    cell = game.landing(b, a)
    b = b.copy()
    b.reshape(-1)[cell] = 1
    if game.wins_at(b, cell):
        return float(_WIN + depth)  # earlier wins score higher
    if not game.legal(b).any():
        return 0.0
    return -_negamax(game, -b, depth - 1, -beta, -alpha)


def negamax_action(
    game: str | Game, board: np.ndarray, to_play: int, rng: np.random.Generator, depth: int = 4
) -> int:
    """Depth-limited alpha-beta negamax move (uniform among the best-scoring moves)."""
    g = get_game(game)
    b = canonical(np.asarray(board).reshape(g.rows, g.cols), to_play)
    legal = g.legal(b)
    if not legal.any() or g.winner(b) != 0:
        raise ValueError(f"{g}: the game is over: no action to search")
    best, ties = -np.inf, []
    for a in (int(a) for a in g.move_order if legal[a]):
        # Window just below the best: equal moves score exactly, worse ones are cut off.
        v = _move_score(g, b, a, max(int(depth), 1), best - 0.5, np.inf)
        if v > best:
            best, ties = v, [a]
        elif v == best:
            ties.append(a)
    return int(rng.choice(ties))


def random_policy(seed: int = 0) -> Policy:
    """A policy ``step -> action`` that plays uniformly random legal moves."""
    rng = np.random.default_rng(seed)
    return lambda step: random_action(step["legal"], rng)


def perfect_policy(seed: int = 0) -> Policy:
    """A policy ``step -> action`` playing perfect tic-tac-toe (ties broken at random)."""
    rng = np.random.default_rng(seed)
    return lambda step: perfect_action(*board_from_obs(step, _TTT), rng)


def negamax_policy(game: str | Game, depth: int = 4, seed: int = 0) -> Policy:
    """A policy ``step -> action`` using :func:`negamax_action` at ``depth`` plies."""
    g, rng = get_game(game), np.random.default_rng(seed)
    return lambda step: negamax_action(g, *board_from_obs(step, g), rng, depth)


# -- rendering -------------------------------------------------------------------------------


def render_text(game: str | Game, board: np.ndarray, status: str = "") -> str:
    """Terminal drawing: X / O stones; empty tic-tac-toe cells show their action index."""
    g = get_game(game)
    b = np.asarray(board).reshape(g.rows, g.cols)
    if g.gravity:
        rows = ["| " + " ".join(SYMBOLS[int(x)] for x in row) + " |" for row in b]
        rows.append("  " + " ".join(str(c) for c in range(g.cols)))
    else:
        cells = [
            [SYMBOLS[int(x)] if x else str(r * g.cols + c) for c, x in enumerate(row)]
            for r, row in enumerate(b)
        ]
        sep = "\n" + "+".join(["---"] * g.cols) + "\n"
        rows = [sep.join("|".join(f" {x} " for x in row) for row in cells)]
    return "\n".join(rows + ([status] if status else []))


def render_image(
    game: str | Game, board: np.ndarray, size: tuple[int, int] = (64, 64)
) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` drawing: tic-tac-toe red X / blue O; connect four red / yellow."""
    g = get_game(game)
    b = np.asarray(board).reshape(g.rows, g.cols)
    h, w = int(size[0]), int(size[1])
    ys, xs = (np.arange(h) + 0.5) * g.rows / h, (np.arange(w) + 0.5) * g.cols / w
    r, c = np.minimum(ys.astype(int), g.rows - 1), np.minimum(xs.astype(int), g.cols - 1)
    dy, dx = (ys - r - 0.5)[:, None], (xs - c - 0.5)[None, :]
    cell = b[r[:, None], c[None, :]]
    dist = np.hypot(dy, dx)
    img = np.empty((h, w, 3), dtype=np.uint8)
    if g.gravity:
        img[:] = (30, 80, 200)
        hole = dist < 0.4
        img[hole & (cell == 0)] = (235, 235, 235)
        img[hole & (cell == 1)] = (220, 40, 40)
        img[hole & (cell == -1)] = (240, 200, 30)
        return img
    img[:] = (230, 230, 230)
    ty, tx = max(0.04, 0.51 * g.rows / h), max(0.04, 0.51 * g.cols / w)
    grid = (np.abs(dy) > 0.5 - ty) | (np.abs(dx) > 0.5 - tx)
    img[grid] = (40, 40, 40)
    cross = (np.abs(dx - dy) < 0.1) | (np.abs(dx + dy) < 0.1)
    img[(cell == 1) & cross & (np.maximum(np.abs(dx), np.abs(dy)) < 0.32)] = (220, 40, 40)
    img[(cell == -1) & (np.abs(dist - 0.27) < 0.07)] = (40, 70, 220)
    return img


# -- the env ---------------------------------------------------------------------------------

OPPONENTS = ("random", "perfect", "negamax")


class BoardEnv(Env):
    """A two-player board game as an :class:`Env` (see the module docstring for conventions).

    ``opponent``: None for self-play (both players call ``step`` in turn), or ``'random'``,
    ``'perfect'`` (tic-tac-toe only), ``'negamax'`` (``depth`` plies), or a policy
    ``step -> action`` that is shown the self-play observation from its own seat; the opponent
    then replies inside ``step``. ``agent_first``: True (the agent is X and moves first), False,
    or ``'alternate'`` (first in episodes 0, 2, 4, ...); ignored in self-play. The env's RNG
    (``seed``, reseeded by ``reset(seed)``) drives the built-in opponents.
    """

    def __init__(
        self,
        game: str | Game = "tic_tac_toe",
        *,
        obs: str = "vector",
        seed: int | None = 0,
        size: tuple[int, int] = (64, 64),
        opponent: str | Policy | None = None,
        agent_first: bool | str = True,
        depth: int = 4,
    ):
        self.game = get_game(game)
        self.name = str(self.game)
        if obs not in ("vector", "pixels"):
            raise UserError(f"unknown obs {obs!r} for {self.name}; fix: use 'vector' or 'pixels'")
        if opponent is not None and not callable(opponent) and opponent not in OPPONENTS:
            raise UserError(
                f"unknown opponent {opponent!r} for {self.name}; fix: use None (self-play), "
                f"a policy callable or one of {', '.join(map(repr, OPPONENTS))}"
            )
        if opponent == "perfect" and self.game.name != "tic_tac_toe":
            raise UserError(
                f"opponent='perfect' exists only for board:tic_tac_toe, not {self.name}; "
                "fix: use opponent='negamax' (with depth=...)"
            )
        if agent_first not in (True, False, "alternate"):
            raise UserError(f"bad agent_first {agent_first!r}; fix: use True, False or 'alternate'")
        if int(depth) < 1:
            raise UserError(f"bad depth {depth!r}; fix: use depth >= 1 plies")
        self._pixels = obs == "pixels"
        self._size = (int(size[0]), int(size[1]))
        self.opponent, self.agent_first, self.depth = opponent, agent_first, int(depth)
        self._seed = seed
        self._rng: np.random.Generator | None = None
        self.planes_shape = (3, self.game.rows, self.game.cols)
        n = self.game.num_actions
        main = (
            Spec((*self._size, 3), np.uint8)
            if self._pixels
            else Spec((3 * self.game.rows * self.game.cols,), np.float32)
        )
        self.obs_space = {
            ("image" if self._pixels else "vector"): main,
            "legal": Spec((n,), np.bool_),
            "to_play": Spec((), np.int64),
        }
        self.act_space = ActionSpace(discrete=True, n=n)
        cells = self.game.rows * self.game.cols
        self.symmetries = (
            ()
            if self._pixels
            else tuple(
                Symmetry(np.concatenate([cell + i * cells for i in range(3)]), action)
                for cell, action in self.game.symmetries
            )
        )
        self._board = self.game.initial_board()
        self.to_play = 0  # seat to move next
        self.agent_seat = 0
        self.winner: int | None = None  # seat of the winner once the game is won
        self.done = True
        self.last_opponent_action: int | None = None
        self._episodes = 0

    @property
    def board(self) -> np.ndarray:
        """A copy of the absolute board (``+1`` X / seat 0, ``-1`` O / seat 1)."""
        return self._board.copy()

    # -- Env interface ---------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is not None:
            self._rng = np.random.default_rng(int(seed))
        elif self._rng is None:
            self._rng = np.random.default_rng(self._seed)
        self._board = self.game.initial_board()
        self.to_play, self.winner, self.done = 0, None, False
        self.last_opponent_action = None
        first = self.agent_first if self.agent_first != "alternate" else self._episodes % 2 == 0
        self._episodes += 1
        self.agent_seat = 0 if (self.opponent is None or first) else 1
        if self.agent_seat == 1:
            self._opponent_move()
        return make_step(self._observe(), 0.0, is_first=True)

    def step(self, action: Any) -> dict[str, np.ndarray]:
        if self.done:
            raise RuntimeError(f"{self.name}: call reset() before step() (the game is over)")
        reward = float(self._play(discrete_index(action, self.game.num_actions)))
        if self.opponent is not None and not self.done:
            reward = -float(self._opponent_move())
        return make_step(self._observe(), reward, is_last=self.done, is_terminal=self.done)

    def render(self) -> np.ndarray:
        """RGB uint8 ``[H, W, 3]`` of the absolute board (``size`` of the constructor)."""
        return render_image(self.game, self._board, self._size)

    def ansi(self) -> str:
        """Text drawing of the board plus a status line."""
        return render_text(self.game, self._board, self._status())

    def __str__(self) -> str:
        return self.ansi()

    # -- internals -------------------------------------------------------------------------

    def _play(self, a: int) -> int:
        """Place the mover's stone for action ``a``; 1 if that move wins, else 0."""
        cell = self.game.landing(self._board, a)
        if cell is None:
            legal = np.flatnonzero(self.game.legal(self._board)).tolist()
            what = "column is full" if self.game.gravity else "cell is occupied"
            raise ValueError(f"{self.name}: illegal action {a} ({what}); legal actions: {legal}")
        mover = self.to_play
        self._board.reshape(-1)[cell] = stone(mover)
        self.to_play = 1 - mover
        if self.game.wins_at(self._board, cell):
            self.winner, self.done = mover, True
            return 1
        self.done = not self.game.legal(self._board).any()
        return 0

    def _opponent_move(self) -> int:
        legal, rng = self.game.legal(self._board), self._rng
        if self.opponent == "random":
            a = random_action(legal, rng)
        elif self.opponent == "perfect":
            a = perfect_action(self._board, self.to_play, rng)
        elif self.opponent == "negamax":
            a = negamax_action(self.game, self._board, self.to_play, rng, self.depth)
        else:
            a = discrete_index(self.opponent(self._observe(self.to_play)), self.game.num_actions)
        self.last_opponent_action = a
        return self._play(a)

    def _observe(self, seat: int | None = None) -> dict[str, np.ndarray]:
        if seat is None:
            seat = self.to_play if self.opponent is None else self.agent_seat
        canon = canonical(self._board, seat)
        legal = self.game.legal(self._board) & (not self.done)
        if self._pixels:
            out = {"image": render_image(self.game, canon, self._size)}
        else:
            out = {"vector": encode_planes(canon, seat)}
        return {**out, "legal": legal, "to_play": np.int64(seat)}

    def _status(self) -> str:
        if not self.done:
            return f"{SYMBOLS[stone(self.to_play)]} to move"
        return "draw" if self.winner is None else f"{SYMBOLS[stone(self.winner)]} wins"


def make_board(
    name: str,
    *,
    obs: str = "vector",
    seed: int | None = 0,
    size: tuple[int, int] = (64, 64),
    **kwargs: Any,
) -> BoardEnv:
    """Build ``board:<name>``; kwargs: ``opponent``, ``agent_first``, ``depth`` (see BoardEnv)."""
    game = get_game(name)
    unknown = sorted(set(kwargs) - {"opponent", "agent_first", "depth"})
    if unknown:
        raise UserError(
            f"env 'board:{name}' got unknown arguments {', '.join(unknown)}; "
            "fix: use opponent=, agent_first= or depth="
        )
    return BoardEnv(game, obs=obs, seed=seed, size=size, **kwargs)


# -- evaluation ------------------------------------------------------------------------------


def play_match(
    policy_a: Policy,
    policy_b: Policy,
    game: str | Game = "tic_tac_toe",
    n_games: int = 100,
    seed: int = 0,
    a_first: bool | None = None,
) -> dict[str, int]:
    """Play ``n_games`` self-play games; returns ``{'wins', 'draws', 'losses'}`` for ``policy_a``.

    Each policy is called with the self-play step dict from its own seat (canonical ``vector``,
    ``legal``, ``to_play``) and returns an action. ``a_first``: None alternates who moves first
    (``policy_a`` in games 0, 2, ...); True / False fixes it. Policies own their randomness;
    ``seed`` seeds the env.
    """
    env = BoardEnv(game, seed=seed)
    result = {"wins": 0, "draws": 0, "losses": 0}
    for i in range(int(n_games)):
        a_seat = 0 if (a_first if a_first is not None else i % 2 == 0) else 1
        step = env.reset()
        while not step["is_last"]:
            policy = policy_a if env.to_play == a_seat else policy_b
            step = env.step(policy(step))
        key = "draws" if env.winner is None else ("wins" if env.winner == a_seat else "losses")
        result[key] += 1
    env.close()
    return result
