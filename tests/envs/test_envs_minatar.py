"""minatar:<game>: binary channels as an upscaled uint8 image or a flat vector, the minimal
action set, sticky actions, seeding, truncation, and one-line errors."""

import importlib.util
import sys

import numpy as np
import pytest

from worldmodels.envs import make_env
from worldmodels.envs.minatar_env import GAMES, upscale_nearest
from worldmodels.errors import MissingExtraError, UserError

FLAGS = ("is_first", "is_last", "is_terminal")
needs_minatar = pytest.mark.skipif(
    importlib.util.find_spec("minatar") is None,
    reason="minatar not installed: pip install 'worldmodels[minatar]'",
)


def check_step(step, env):
    assert set(step) == set(env.obs_space) | {"reward", *FLAGS}
    for key, spec in env.obs_space.items():
        assert step[key].shape == spec.shape and step[key].dtype == spec.dtype
    assert isinstance(step["reward"], np.float32) and np.isfinite(step["reward"])
    for flag in FLAGS:
        assert isinstance(step[flag], np.bool_)


def test_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minatar", None)  # find_spec -> ValueError: "missing"
    with pytest.raises(MissingExtraError) as info:
        make_env("minatar:breakout", obs="pixels")
    msg = str(info.value)
    assert "pip install 'worldmodels[minatar]'" in msg and "\n" not in msg


def test_upscale_nearest_keeps_cells_whole():
    grid = np.arange(10 * 10 * 2, dtype=np.uint8).reshape(10, 10, 2)
    big = upscale_nearest(grid, (80, 80))
    assert big.shape == (80, 80, 2)
    np.testing.assert_array_equal(big[::8, ::8], grid)
    np.testing.assert_array_equal(big[7::8, 7::8], grid)
    odd = upscale_nearest(grid, (64, 64))
    assert set(np.unique(odd)) == set(np.unique(grid))  # every cell shows, none is blended


@needs_minatar
def test_smoke_breakout_pixels_50_random_steps():
    env = make_env("minatar:breakout", obs="pixels", seed=0)
    assert env.obs_space["image"].shape == (64, 64, 4)
    assert env.act_space.discrete and env.act_space.n == 3  # no-op, left, right
    first = env.reset()
    check_step(first, env)
    assert first["is_first"] and set(np.unique(first["image"])) == {0, 255}
    rng = np.random.default_rng(0)
    for _ in range(50):
        step = env.step(env.act_space.sample(rng))
        check_step(step, env)
        if step["is_last"]:
            assert step["is_terminal"]
            check_step(env.reset(), env)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.any()


@needs_minatar
@pytest.mark.parametrize("game", GAMES)
def test_every_game_as_vector(game):
    env = make_env(f"minatar:{game}", obs="vector", seed=1)
    (dim,) = env.obs_space["vector"].shape
    assert dim % 100 == 0 and 4 <= dim // 100 <= 10
    check_step(env.reset(), env)
    rng = np.random.default_rng(1)
    for _ in range(50):
        step = env.step(env.act_space.sample(rng))
        check_step(step, env)
        assert set(np.unique(step["vector"])) <= {0.0, 1.0}
        if step["is_last"]:
            env.reset()


@needs_minatar
def test_seeded_runs_repeat_and_truncate():
    def play(seed):
        env = make_env("minatar:space_invaders", obs="vector", seed=seed, max_episode_steps=30)
        steps = [env.reset()]
        rng = np.random.default_rng(0)
        while not steps[-1]["is_last"]:
            steps.append(env.step(env.act_space.sample(rng)))
        return steps

    a, b = play(4), play(4)
    assert len(a) == len(b) == 31  # reset + 30 steps (space invaders outlives 30 random steps)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["vector"], y["vector"])
    assert not a[-1]["is_terminal"]  # the time limit is truncation, not termination


@needs_minatar
@pytest.mark.parametrize(
    "env_id,kwargs,hint",
    [
        ("minatar:breakuot", {}, "minatar:breakout"),
        ("minatar:pong", {}, "minatar:asterix"),
        ("minatar:breakout", {"action_repeat": 2}, "action_repeat"),
        ("minatar:breakout", {"sticky_action_prob": 0.1}, "repeat_action_probability"),
        ("minatar:breakout", {"max_episode_steps": 0}, "max_episode_steps"),
    ],
)
def test_bad_input_is_one_line_user_error(env_id, kwargs, hint):
    with pytest.raises(UserError) as info:
        make_env(env_id, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and hint in msg, msg
