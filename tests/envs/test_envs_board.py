"""Board games: rules, canonical observations, reward signs, perfect play, single-player wrapper."""

import numpy as np
import pytest

from worldmodels.envs import Spec, list_suites, make_env, make_vector_env
from worldmodels.envs.board import (
    GAMES,
    BoardEnv,
    action_values,
    board_from_obs,
    canonical,
    encode_planes,
    minimax_value,
    negamax_action,
    negamax_policy,
    perfect_action,
    perfect_policy,
    play_match,
    random_action,
    random_policy,
)
from worldmodels.errors import UserError

TTT, C4 = GAMES["tic_tac_toe"], GAMES["connect_four"]

# A full connect-four board without four in a row (row 0 on top); from the bottom, rows hold
# 4 X / 3 O and 3 X / 4 O in turn, so filling it row by row alternates X and O.
C4_DRAW = np.array(
    [
        [1, -1, 1, -1, -1, 1, -1],
        [1, -1, 1, 1, 1, -1, -1],
        [-1, 1, 1, -1, -1, 1, -1],
        [1, -1, -1, 1, -1, 1, 1],
        [1, -1, -1, 1, -1, 1, -1],
        [1, 1, -1, 1, 1, -1, -1],
    ]
)


def play(env, actions):
    step = env.reset()
    for a in actions:
        step = env.step(a)
    return step


def c4_fill_order(board):
    """Columns that build ``board`` bottom-up with X and O alternating."""
    order, s = [], 1
    for row in board[::-1]:
        cols = {v: [c for c in range(7) if row[c] == v] for v in (1, -1)}
        for _ in range(7):
            order.append(cols[s].pop(0))
            s = -s
    return order


# -- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [tuple(map(int, line)) for line in TTT.lines])
def test_tic_tac_toe_every_line_wins(line):
    others = [c for c in range(9) if c not in line]
    env = make_env("board:tic_tac_toe")
    env.reset()
    for i, a in enumerate([line[0], others[0], line[1], others[1], line[2]]):
        step = env.step(a)
        assert bool(step["is_last"]) == (i == 4)
    assert step["is_terminal"] and step["reward"] == 1.0 and env.winner == 0
    assert TTT.winner(env.board) == 1 and not step["legal"].any()
    assert len(TTT.lines) == 8


@pytest.mark.parametrize(
    "x_cols,o_cols,name",
    [
        ([0, 1, 2, 3], [0, 1, 2], "row"),
        ([4, 4, 4, 4], [5, 5, 5], "column"),
        ([0, 1, 2, 3, 1, 2, 3], [2, 3, 3, 6, 6, 6], "diagonal /"),
        ([6, 5, 4, 3, 5, 4, 3], [4, 3, 3, 0, 0, 0], "diagonal \\"),
    ],
)
def test_connect_four_wins(x_cols, o_cols, name):
    env = make_env("board:connect_four")
    env.reset()
    for i, x in enumerate(x_cols):
        step = env.step(x)
        if i == len(x_cols) - 1:
            break
        assert not step["is_last"], name
        step = env.step(o_cols[i])
        assert not step["is_last"], name
    assert step["is_terminal"] and step["reward"] == 1.0 and env.winner == 0, name
    assert C4.winner(env.board) == 1
    assert len(C4.lines) == 69  # 24 horizontal, 21 vertical, 12 + 12 diagonal


def test_connect_four_gravity_and_full_column():
    env = make_env("board:connect_four")
    step = play(env, [3, 3, 3, 3, 3])
    board = env.board
    assert board[5, 3] == 1 and board[4, 3] == -1 and board[1, 3] == 1 and board[0, 3] == 0
    assert step["legal"].all()
    step = env.step(3)
    assert board_from_obs(step, C4)[0][0, 3] == -1
    assert step["legal"].tolist() == [True, True, True, False, True, True, True]
    with pytest.raises(ValueError, match=r"illegal action 3 \(column is full\)"):
        env.step(3)
    assert C4.landing(env.board, 3) is None and C4.landing(env.board, 0) == 35


def test_legal_masks_and_illegal_moves():
    env = make_env("board:tic_tac_toe")
    step = env.reset()
    assert step["legal"].dtype == np.bool_ and step["legal"].all()
    step = env.step(4)
    step = env.step(np.eye(9)[0])  # a one-hot action is read as its argmax
    assert step["legal"].tolist() == [False, True, True, True, False, True, True, True, True]
    with pytest.raises(ValueError, match=r"illegal action 4 \(cell is occupied\); legal"):
        env.step(4)
    with pytest.raises(ValueError, match="out of range"):
        env.step(9)
    assert env.to_play == 0  # a refused action changes nothing
    play(env, [0, 3, 1, 4, 2])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(5)


def test_draws():
    env = make_env("board:tic_tac_toe")
    step = play(env, [0, 1, 2, 4, 3, 5, 7, 6, 8])
    assert step["is_terminal"] and step["reward"] == 0.0 and env.winner is None
    assert not step["legal"].any() and "draw" in str(env)
    assert C4.winner(C4_DRAW) == 0 and not C4.legal(C4_DRAW).any()
    env = make_env("board:connect_four")
    env.reset()
    order = c4_fill_order(C4_DRAW)
    for i, a in enumerate(order):
        step = env.step(a)
        assert bool(step["is_last"]) == (i == 41)
    assert np.array_equal(env.board, C4_DRAW)
    assert step["is_terminal"] and step["reward"] == 0.0 and env.winner is None


# -- observations and rewards ----------------------------------------------------------------


@pytest.mark.parametrize("game", ["tic_tac_toe", "connect_four"])
def test_canonical_perspective_flips_each_move(game):
    g = GAMES[game]
    env = make_env(f"board:{game}")
    assert env.obs_space == {
        "vector": Spec((3 * g.rows * g.cols,), np.float32),
        "legal": Spec((g.num_actions,), np.bool_),
        "to_play": Spec((), np.int64),
    }
    rng = np.random.default_rng(0)
    step = env.reset()
    for t in range(8):
        assert int(step["to_play"]) == t % 2 == env.to_play
        planes = step["vector"].reshape(env.planes_shape)
        assert (planes[2] == t % 2).all()
        # Plane 0 is the mover's stones: X's on even turns, O's on odd turns.
        mine = 1 if t % 2 == 0 else -1
        assert np.array_equal(planes[0], env.board == mine)
        assert np.array_equal(planes[1], env.board == -mine)
        assert np.array_equal(step["vector"], encode_planes(canonical(env.board, t % 2), t % 2))
        board, to_play = board_from_obs(step, g)
        assert np.array_equal(board, env.board) and to_play == t % 2
        assert np.array_equal(step["legal"], g.legal(env.board))
        step = env.step(random_action(step["legal"], rng))


def test_reward_is_from_the_movers_perspective():
    env = make_env("board:tic_tac_toe")
    # O wins: the reward +1 arrives with the observation seen by X (to_play 0), the loser.
    step = play(env, [0, 4, 1, 2, 3, 6])
    assert step["reward"] == 1.0 and int(step["to_play"]) == 0 and env.winner == 1
    assert "O wins" in str(env)
    # The same game against a scripted opponent: the agent (X) is told -1.
    replies = iter([4, 2, 6])
    env = make_env("board:tic_tac_toe", opponent=lambda s: next(replies))
    step = play(env, [0, 1])
    assert step["reward"] == 0.0 and not step["is_last"]
    step = env.step(3)
    assert step["reward"] == -1.0 and step["is_terminal"] and int(step["to_play"]) == 0


def test_step_dicts_match_obs_space_and_stack():
    for env_id, obs in [("board:tic_tac_toe", "vector"), ("board:connect_four", "pixels")]:
        env = make_env(env_id, obs=obs, size=(32, 40), opponent="random")
        step = env.step(random_action(env.reset()["legal"], np.random.default_rng(0)))
        assert set(step) == set(env.obs_space) | {"reward", "is_first", "is_last", "is_terminal"}
        for k, spec in env.obs_space.items():
            assert step[k].shape == spec.shape and step[k].dtype == spec.dtype, k
    envs = make_vector_env("board:connect_four", 2, opponent="random")
    out = envs.step(np.array([0, 6]))
    assert out["vector"].shape == (2, 126) and out["legal"].shape == (2, 7)
    assert out["to_play"].dtype == np.int64
    envs.close()


# -- players ---------------------------------------------------------------------------------


def test_minimax_values():
    empty = np.zeros((3, 3), np.int8)
    assert minimax_value(empty, 0) == 0.0
    assert np.array_equal(action_values(empty, 0), np.zeros(9))
    # X in a corner, O on an adjacent edge: X to move wins.
    board = np.array([1, -1, 0, 0, 0, 0, 0, 0, 0])
    assert minimax_value(board, 0) == 1.0
    values = action_values(board, 0)
    assert np.isnan(values[:2]).all() and np.nanmax(values) == 1.0
    # Two X in a row and O to move: O must block (only cell 2 avoids defeat).
    board = np.array([1, 1, 0, 0, -1, 0, 0, 0, 0])
    assert np.flatnonzero(action_values(board, 1) == 0).tolist() == [2]
    rng = np.random.default_rng(0)
    assert {perfect_action(board, 1, rng) for _ in range(5)} == {2}
    with pytest.raises(ValueError, match="over"):
        minimax_value(np.array([1, 1, 1, -1, -1, 0, 0, 0, 0]), 1)


def test_perfect_player_never_loses_to_random():
    for a_first in (True, False):
        result = play_match(perfect_policy(1), random_policy(2), n_games=200, a_first=a_first)
        assert result["losses"] == 0 and sum(result.values()) == 200, result
        assert result["wins"] > 100, result


def test_two_perfect_players_draw():
    result = play_match(perfect_policy(1), perfect_policy(2), n_games=100)
    assert result == {"wins": 0, "draws": 100, "losses": 0}


def test_negamax_connect_four():
    rng = np.random.default_rng(0)
    # X has three in the bottom row: X to move completes it, O to move blocks it.
    board = np.zeros((6, 7), np.int8)
    board[5, :3] = 1
    board[4, :2] = -1
    assert negamax_action(C4, board, 0, rng, depth=2) == 3
    board[4, 6] = -1
    assert negamax_action(C4, board, 1, rng, depth=2) == 3
    result = play_match(negamax_policy(C4, depth=2), random_policy(3), C4, n_games=4)
    assert result["wins"] == 4, result
    with pytest.raises(ValueError, match="over"):
        negamax_action(C4, C4_DRAW, 0, rng)


# -- single-player wrapper -------------------------------------------------------------------


def episode_returns(env, policy, episodes):
    returns = []
    for _ in range(episodes):
        step, total = env.reset(), 0.0
        while not step["is_last"]:
            step = env.step(policy(step))
            total += float(step["reward"])
        returns.append(total)
    return np.array(returns)


def test_single_player_rewards():
    env = make_env("board:tic_tac_toe", opponent="perfect", agent_first="alternate", seed=0)
    returns = episode_returns(env, random_policy(0), 40)
    assert set(returns) <= {-1.0, 0.0} and (returns == -1.0).mean() > 0.5
    env = make_env("board:tic_tac_toe", opponent="random", seed=0)
    returns = episode_returns(env, perfect_policy(0), 40)
    assert set(returns) <= {0.0, 1.0} and returns.mean() > 0.7
    env = make_env("board:connect_four", opponent="negamax", depth=2, seed=0)
    returns = episode_returns(env, random_policy(0), 2)
    assert (returns == -1.0).all()


def test_agent_seat_options():
    env = make_env("board:tic_tac_toe", opponent="random", agent_first=False, seed=0)
    step = env.reset()
    assert int(step["to_play"]) == 1 and env.agent_seat == 1
    assert (env.board == 1).sum() == 1 and step["legal"].sum() == 8
    assert step["vector"].reshape(3, 9)[1].sum() == 1  # the opponent's X, seen from O
    assert str(env).endswith("O to move") and env.last_opponent_action is not None
    env = make_env("board:tic_tac_toe", opponent="random", agent_first="alternate")
    assert [int(env.reset()["to_play"]) for _ in range(4)] == [0, 1, 0, 1]


def test_make_env_round_trip_and_errors():
    suites = {s["name"]: s for s in list_suites()}
    assert suites["board"]["extra"] is None and suites["board"]["installed"]
    env = make_env("board:connect_four", obs="pixels", size=(48, 56))
    assert isinstance(env, BoardEnv) and env.act_space.n == 7 and env.act_space.discrete
    assert env.obs_space["image"] == Spec((48, 56, 3), np.uint8) and "vector" not in env.obs_space
    assert env.reset()["image"].shape == (48, 56, 3)
    for kwargs, hint in [
        ({"opponent": "perfect"}, "negamax"),
        ({"opponent": "nobody"}, "'random'"),
        ({"agent_first": "maybe"}, "'alternate'"),
        ({"depth": 0}, "depth >= 1"),
        ({"bogus": 1}, "bogus"),
    ]:
        with pytest.raises(UserError, match=hint) as info:
            make_env("board:connect_four", **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="board:tic_tac_toe, board:connect_four"):
        make_env("board:chess")


def test_determinism_with_seed():
    def trace(seed):
        env = make_env("board:tic_tac_toe", opponent="random", seed=seed, agent_first="alternate")
        policy, boards = random_policy(7), []
        for _ in range(6):
            episode_returns(env, policy, 1)
            boards.append(env.board.tobytes())
        return boards

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)
    env = make_env("board:tic_tac_toe", opponent="random")
    env.reset(seed=5)
    first = env.board
    env.reset(seed=5)
    assert np.array_equal(first, env.board)


def test_render():
    env = make_env("board:tic_tac_toe")
    play(env, [4, 0])
    img = env.render()
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    red, blue = (img == (220, 40, 40)).all(-1), (img == (40, 70, 220)).all(-1)
    assert red[21:43, 21:43].sum() > 20 and red[:21, :21].sum() == 0  # X in the centre
    assert blue[:21, :21].sum() > 20 and blue[21:43, 21:43].sum() == 0  # O in the corner
    text = str(env)
    assert text.splitlines()[0] == " O | 1 | 2 " and text.endswith("X to move")
    env = make_env("board:connect_four")
    play(env, [3])
    assert env.ansi().splitlines()[5] == "| . . . X . . . |"
    assert env.render().shape == (64, 64, 3)


@pytest.mark.parametrize("game, count", [("tic_tac_toe", 8), ("connect_four", 2)])
def test_symmetries_commute_with_the_rules(game, count):
    """Playing the transformed moves from the empty board gives the transformed observations,
    legal masks, rewards and ends, for every symmetry the env declares, over random games."""
    env = make_env(f"board:{game}")
    syms = env.symmetries
    assert len(syms) == count
    assert {tuple(s.obs) for s in syms}.__len__() == count  # all distinct
    np.testing.assert_array_equal(syms[0].obs, np.arange(env.obs_space["vector"].shape[0]))
    np.testing.assert_array_equal(syms[0].action, np.arange(env.act_space.n))
    rng = np.random.default_rng(0)
    for _ in range(10):
        steps, actions = [env.reset()], []
        while not steps[-1]["is_last"]:
            actions.append(int(rng.choice(np.flatnonzero(steps[-1]["legal"]))))
            steps.append(env.step(actions[-1]))
        for s in syms:
            inverse = np.argsort(s.action)
            twin = make_env(f"board:{game}")
            got = [twin.reset()] + [twin.step(int(inverse[a])) for a in actions]
            for orig, mirrored in zip(steps, got):
                np.testing.assert_array_equal(orig["vector"][s.obs], mirrored["vector"])
                np.testing.assert_array_equal(orig["legal"][s.action], mirrored["legal"])
                for key in ("reward", "is_last", "is_terminal", "to_play"):
                    assert orig[key] == mirrored[key], key


def test_symmetries_are_the_square_and_pixels_have_none():
    sym = make_env("board:tic_tac_toe").symmetries
    board = np.arange(9).reshape(3, 3)
    # Each declared cell permutation is a rotation or reflection of the 3 x 3 grid.
    expected = {tuple(np.rot90(g, k).reshape(-1)) for g in (board, board.T) for k in range(4)}
    assert {tuple(s.action) for s in sym} == expected
    assert make_env("board:tic_tac_toe", obs="pixels").symmetries == ()
    assert make_env("gym:CartPole-v1").symmetries == ()


@pytest.mark.parametrize("parallel", [False, True])
def test_vector_env_passes_symmetries(parallel):
    venv = make_vector_env("board:tic_tac_toe", 2, parallel=parallel)
    try:
        want = make_env("board:tic_tac_toe").symmetries
        assert [tuple(s.obs) for s in venv.symmetries] == [tuple(s.obs) for s in want]
    finally:
        venv.close()
