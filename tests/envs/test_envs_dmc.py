"""dmc:<domain>-<task>: vector and pixel observations, action repeat, time-limit truncation, and
one clear line when the extra is missing or the task is unknown."""

import sys

import numpy as np
import pytest

from worldmodels.envs import make_env
from worldmodels.errors import MissingExtraError, UserError


def test_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dm_control", None)  # find_spec -> ValueError: "missing"
    with pytest.raises(MissingExtraError) as info:
        make_env("dmc:cartpole-swingup")
    msg = str(info.value)
    assert "pip install 'worldmodels[dmc]'" in msg and "\n" not in msg


def test_vector_observations_and_truncation():
    pytest.importorskip("dm_control")
    env = make_env("dmc:cartpole-swingup", seed=0)
    assert env.obs_space["vector"].shape == (5,) and not env.act_space.discrete
    first = env.reset()
    assert first["is_first"] and first["vector"].dtype == np.float32
    steps, rewards = 0, []
    while True:
        step = env.step(np.array([0.3], dtype=np.float32))
        steps += 1
        rewards.append(step["reward"])
        if step["is_last"]:
            break
    assert steps == 500  # 1000 simulator steps at action repeat 2
    assert not step["is_terminal"]  # a time limit is truncation
    assert 0 <= min(rewards) and max(rewards) <= 2  # two summed rewards in [0, 1]


def test_action_repeat_sums_rewards():
    pytest.importorskip("dm_control")
    once = make_env("dmc:cartpole-swingup", seed=3, action_repeat=1)
    twice = make_env("dmc:cartpole-swingup", seed=3, action_repeat=2)
    a, b = once.reset(), twice.reset()
    np.testing.assert_array_equal(a["vector"], b["vector"])
    for action in ([1.0], [-0.5], [0.2]):
        r = once.step(np.array(action))["reward"] + 0.0
        last = once.step(np.array(action))
        step = twice.step(np.array(action))
        np.testing.assert_allclose(step["reward"], r + last["reward"], rtol=1e-6)
        np.testing.assert_array_equal(step["vector"], last["vector"])


def test_names_and_unknown_tasks():
    pytest.importorskip("dm_control")
    env = make_env("dmc:cup-catch")  # TD-MPC2's name of ball_in_cup
    assert env.act_space.n == 2
    assert make_env("dmc:cartpole-balance-sparse").obs_space["vector"].shape == (5,)
    with pytest.raises(UserError, match="dmc:cartpole-swingup") as info:
        make_env("dmc:cartpole-swingupp")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="action_repeat"):
        make_env("dmc:cartpole-swingup", frame_skip=2)


def test_pixels():
    pytest.importorskip("dm_control")
    try:
        env = make_env("dmc:cartpole-swingup", obs="pixels", seed=0)
        first = env.reset()
    except Exception as e:  # noqa: BLE001 - no OpenGL on this machine
        pytest.skip(f"no headless OpenGL: {type(e).__name__}")
    assert env.obs_space["image"].shape == (64, 64, 3)
    assert first["image"].dtype == np.uint8 and first["image"].shape == (64, 64, 3)
    assert first["image"].std() > 0
    for _ in range(10):
        step = env.step(np.array([1.0]))
    assert not np.array_equal(step["image"], first["image"])
    assert np.array_equal(env.render(), step["image"])
