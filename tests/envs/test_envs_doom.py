"""doom:<scenario> over vizdoom: World Models' take_cover frames (status bar cropped, 64x64
RGB), the named button combinations, the tic cap as truncation, death as termination, frame
skip, seeding and one-line errors."""

import importlib.util
import sys

import numpy as np
import pytest

from worldmodels.envs import make_env
from worldmodels.errors import MissingExtraError, UserError

FLAGS = ("is_first", "is_last", "is_terminal")
needs_doom = pytest.mark.skipif(
    importlib.util.find_spec("vizdoom") is None,
    reason="vizdoom not installed: pip install 'worldmodels[doom]'",
)


def check_step(step, env):
    assert set(step) == {"image", "reward", *FLAGS}
    assert step["image"].shape == (64, 64, 3) and step["image"].dtype == np.uint8
    assert isinstance(step["reward"], np.float32)
    for flag in FLAGS:
        assert isinstance(step[flag], np.bool_)


@pytest.mark.parametrize("what", ["registry", "import"])
def test_missing_extra_names_the_pip_install(monkeypatch, what):
    monkeypatch.setitem(sys.modules, "vizdoom", None)  # find_spec -> ValueError, import fails
    if what == "registry":
        build = lambda: make_env("doom:take_cover", obs="pixels")  # noqa: E731
    else:
        from worldmodels.envs.doom import DoomEnv

        build = lambda: DoomEnv("take_cover")  # noqa: E731
    with pytest.raises(MissingExtraError) as info:
        build()
    msg = str(info.value)
    assert "pip install 'worldmodels[doom]'" in msg and "\n" not in msg


@needs_doom
def test_take_cover_spaces_frames_and_action_names():
    env = make_env("doom:take_cover", obs="pixels", seed=0)
    assert env.obs_space["image"].shape == (64, 64, 3)
    assert env.obs_space["image"].dtype == np.uint8
    assert env.act_space.discrete and env.act_space.n == 3
    # vizdoom's button map for take_cover: [0, 0], [0, 1], [1, 0] over (MOVE_LEFT, MOVE_RIGHT).
    assert env.action_names == ("none", "right", "left")
    assert env.episode_length == 2100
    first = env.reset()
    check_step(first, env)
    assert first["is_first"] and not first["is_last"] and first["reward"] == 0
    assert first["image"].std() > 0
    step = env.step(np.int64(1))
    check_step(step, env)
    assert step["reward"] == 1.0 and not step["is_first"] and not step["is_last"]
    assert env.render().shape == (240, 320, 3)
    env.close()
    env.close()  # closing twice is harmless


@needs_doom
def test_ids_other_scenarios_and_their_buttons():
    for env_id in ("doom:TakeCover", "doom:VizdoomTakeCover-v1"):
        env = make_env(env_id, obs="pixels")
        assert env.unwrapped.spec.id == "VizdoomTakeCover-v1"
        env.close()
    env = make_env("doom:basic", obs="pixels")  # VizdoomBasic-v1: MOVE_LEFT, MOVE_RIGHT, ATTACK
    assert env.unwrapped.spec.id == "VizdoomBasic-v1"
    assert env.action_names == ("none", "attack", "right", "left")
    env.close()


@needs_doom
def test_tic_cap_truncates_and_frame_skip_sums_rewards():
    env = make_env("doom:VizdoomTakeCover-v1", obs="pixels", max_frames=6, action_repeat=2)
    assert env.episode_length == 3
    for _ in range(2):  # a second episode after the cap
        assert env.reset()["is_first"]
        steps = [env.step(np.int64(0)) for _ in range(3)]
        assert [bool(s["is_last"]) for s in steps] == [False, False, True]
        assert not any(s["is_terminal"] for s in steps)  # a time limit is truncation
        assert [float(s["reward"]) for s in steps] == [2.0, 2.0, 2.0]
    env.close()


@needs_doom
def test_random_play_dies_as_termination():
    env = make_env("doom:take_cover", obs="pixels", seed=1)
    env.reset()
    rng = np.random.default_rng(1)
    steps, total, prev = 0, 0.0, None
    while steps < 2100:
        step = env.step(env.act_space.sample(rng))
        check_step(step, env)
        steps += 1
        total += float(step["reward"])
        if step["is_last"]:
            break
        prev = step["image"]
    assert step["is_terminal"] and steps < 1000
    assert total == steps  # +1 per tic alive
    np.testing.assert_array_equal(step["image"], prev)  # no screen after death: repeated
    env.close()


@needs_doom
def test_same_seed_same_frames_and_returns():
    def play(seed):
        env = make_env("doom:take_cover", obs="pixels", seed=seed)
        images, total = [env.reset()["image"]], 0.0
        for a in [1, 1, 2, 0, 2, 1, 0, 0] * 10:
            step = env.step(np.int64(a))
            images.append(step["image"])
            total += float(step["reward"])
            if step["is_last"]:
                break
        env.close()
        return np.stack(images), total

    (images_a, return_a), (images_b, return_b) = play(7), play(7)
    np.testing.assert_array_equal(images_a, images_b)
    assert return_a == return_b


@needs_doom
@pytest.mark.parametrize(
    "env_id,kwargs,hint",
    [
        ("doom:take_cover", {"obs": "vector"}, "--obs pixels"),
        ("doom:take_covr", {"obs": "pixels"}, "doom:take_cover"),
        ("doom:VizdoomTakeCovr-v1", {"obs": "pixels"}, "doom:VizdoomTakeCover-v1"),
        ("doom:take_cover", {"obs": "pixels", "frame_skip": 4}, "action_repeat"),
        ("doom:take_cover", {"obs": "pixels", "max_frames": 0}, "max_frames"),
        ("doom:take_cover", {"obs": "pixels", "skill": 9}, "skill"),
        ("doom:VizdoomTakeCover-MultiBinary-v1", {"obs": "pixels"}, "-MultiBinary"),
    ],
)
def test_bad_input_is_one_line_user_error(env_id, kwargs, hint):
    with pytest.raises(UserError) as info:
        make_env(env_id, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and hint in msg, msg
