"""atari:<game> over ale-py: the Atari 100k settings (frame skip with max-pooling, 64x64 RGB or
96x96 grey, sticky actions, no-op starts, lives, the 108k-frame cap, frame stacking, reward
clipping) and one-line errors."""

import importlib.util
import sys

import numpy as np
import pytest

from worldmodels.envs import make_env
from worldmodels.errors import MissingExtraError, UserError

FLAGS = ("is_first", "is_last", "is_terminal")
HAVE_ALE = importlib.util.find_spec("ale_py") is not None and (
    importlib.util.find_spec("cv2") is not None
)
needs_ale = pytest.mark.skipif(
    not HAVE_ALE, reason="ale-py / opencv not installed: pip install 'worldmodels[atari]'"
)


def check_step(step, env):
    assert set(step) == set(env.obs_space) | {"reward", *FLAGS}
    for key, spec in env.obs_space.items():
        assert step[key].shape == spec.shape and step[key].dtype == spec.dtype
    assert isinstance(step["reward"], np.float32) and np.isfinite(step["reward"])
    for flag in FLAGS:
        assert isinstance(step[flag], np.bool_)


def test_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # find_spec -> ValueError: "missing"
    with pytest.raises(MissingExtraError) as info:
        make_env("atari:pong", obs="pixels")
    msg = str(info.value)
    assert "pip install 'worldmodels[atari]'" in msg and "\n" not in msg


@needs_ale
def test_missing_opencv_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(MissingExtraError, match=r"'cv2'.*worldmodels\[atari\]"):
        make_env("atari:pong", obs="pixels")


@needs_ale
def test_smoke_pong_50_random_steps():
    env = make_env("atari:pong", obs="pixels", seed=0)
    assert env.obs_space["image"].shape == (64, 64, 3)
    assert env.act_space.discrete and env.act_space.n == 6  # Pong's minimal action set
    assert env.episode_length == 27_000  # 108k frames at frame skip 4
    first = env.reset()
    check_step(first, env)
    assert first["is_first"] and not first["is_last"] and first["reward"] == 0
    assert first["image"].std() > 0
    rng = np.random.default_rng(0)
    for _ in range(50):
        step = env.step(env.act_space.sample(rng))
        check_step(step, env)
        assert not step["is_first"]
    assert not np.array_equal(step["image"], first["image"])
    assert env.render().shape == (210, 160, 3)
    env.close()


@needs_ale
def test_grey_96_and_full_action_space():
    env = make_env(
        "atari:Breakout", obs="pixels", size=(96, 96), grayscale=True, full_action_space=True
    )
    assert env.obs_space["image"].shape == (96, 96, 1) and env.act_space.n == 18
    check_step(env.reset(), env)
    check_step(env.step(np.int64(1)), env)


@needs_ale
def test_seeded_runs_repeat_with_sticky_actions():
    def play(seed):
        env = make_env("atari:breakout", obs="pixels", seed=seed, repeat_action_probability=0.25)
        images = [env.reset()["image"]]
        for a in [1, 2, 3, 2, 2, 3, 0, 1] * 5:
            images.append(env.step(np.int64(a))["image"])
        return np.stack(images)

    np.testing.assert_array_equal(play(7), play(7))


@needs_ale
def test_frame_cap_truncates_and_frame_skip_is_action_repeat():
    env = make_env("atari:pong", obs="pixels", max_frames=100, noop_max=0, action_repeat=2)
    assert env.episode_length == 50
    env.reset()
    steps = 0
    while True:
        step = env.step(np.int64(0))
        steps += 1
        if step["is_last"]:
            break
    assert steps == 50 and not step["is_terminal"]  # a time limit is truncation
    assert env.reset()["is_first"]


@needs_ale
def test_episodic_life_ends_episode_and_continues_the_game():
    env = make_env("atari:breakout", obs="pixels", seed=1, episodic_life=True)
    env.reset()
    lives = env._ale.lives()
    assert lives == 5
    for _ in range(5000):
        step = env.step(np.int64(0))  # never serves again: FIRE is needed after a lost life
        if step["is_last"]:
            break
        step = env.step(np.int64(1))  # FIRE serves the ball
        if step["is_last"]:
            break
    assert step["is_last"] and step["is_terminal"]
    assert env._ale.lives() == lives - 1
    env.reset()
    assert env._ale.lives() == lives - 1  # the same game goes on
    env.reset(seed=1)
    assert env._ale.lives() == lives  # an explicit seed starts a new game


def play_pair(game, actions, plain_kwargs, other_kwargs, **common):
    """The reset and step results of two envs that differ only in ``other_kwargs``, seeded
    alike and given the same ``actions``."""
    runs = []
    for kwargs in (plain_kwargs, other_kwargs):
        env = make_env(game, obs="pixels", **common, **kwargs)
        runs.append((env, [env.reset()] + [env.step(np.int64(a)) for a in actions]))
    return runs


@needs_ale
@pytest.mark.parametrize("grayscale", [False, True])
def test_frame_stack_concatenates_the_last_k_frames_oldest_first(grayscale):
    k, channels = 4, 1 if grayscale else 3
    actions = [1] + list(np.random.default_rng(0).integers(0, 4, size=40))
    (plain, plain_steps), (stacked, stacked_steps) = play_pair(
        "atari:breakout",
        actions,
        {},
        {"frame_stack": k},
        seed=3,
        size=(24, 20),
        grayscale=grayscale,
    )
    assert plain.obs_space["image"].shape == (24, 20, channels)
    assert stacked.obs_space["image"].shape == (24, 20, channels * k)
    previous = None
    for t, (ref, step) in enumerate(zip(plain_steps, stacked_steps, strict=True)):
        check_step(step, stacked)
        image = step["image"]
        slices = [image[..., i * channels : (i + 1) * channels] for i in range(k)]
        np.testing.assert_array_equal(slices[-1], ref["image"])  # the newest frame is last
        if t == 0:
            for s in slices:  # a reset fills the stack with its first frame
                np.testing.assert_array_equal(s, ref["image"])
        else:  # one step shifts the stack by one frame
            np.testing.assert_array_equal(image[..., :-channels], previous[..., channels:])
        assert step["reward"] == ref["reward"]
        previous = image
    assert not np.array_equal(slices[0], slices[-1])  # the stack holds different frames


@needs_ale
def test_frame_stack_refills_after_a_lost_life():
    k = 3
    env = make_env(
        "atari:breakout",
        obs="pixels",
        seed=1,
        size=(16, 16),
        grayscale=True,
        episodic_life=True,
        frame_stack=k,
    )
    env.reset()
    lives = env._ale.lives()
    for _ in range(2000):
        step = env.step(np.int64(1))  # FIRE serves, then the paddle stays: the ball is lost
        if step["is_last"]:
            break
    assert step["is_terminal"] and env._ale.lives() == lives - 1
    image = env.reset()["image"]
    assert env._ale.lives() == lives - 1  # the same game goes on
    for i in range(1, k):
        np.testing.assert_array_equal(image[..., i : i + 1], image[..., :1])
    assert not np.array_equal(image, step["image"])  # not the stack of the last episode


@needs_ale
def test_clip_rewards_gives_the_sign_of_the_game_reward():
    actions = np.random.default_rng(0).integers(0, 6, size=300)
    (_, plain_steps), (clipped, clipped_steps) = play_pair(
        "atari:space_invaders",
        actions,
        {},
        {"clip_rewards": True},
        seed=0,
        size=(16, 16),
        grayscale=True,
    )
    raw = np.array([s["reward"] for s in plain_steps])
    clipped_rewards = np.array([s["reward"] for s in clipped_steps])
    assert raw.max() > 1  # a step worth more than one point, so clipping changes something
    assert clipped_rewards.dtype == np.float32 and set(clipped_rewards) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(clipped_rewards, np.sign(raw))
    for ref, step in zip(plain_steps, clipped_steps, strict=True):
        check_step(step, clipped)
        np.testing.assert_array_equal(step["image"], ref["image"])  # only the reward differs


@needs_ale
@pytest.mark.parametrize(
    "env_id,kwargs,hint",
    [
        ("atari:pong", {"obs": "vector"}, "--obs pixels"),
        ("atari:pongg", {"obs": "pixels"}, "atari:pong"),
        ("atari:pong", {"obs": "pixels", "frameskip": 4}, "action_repeat"),
        ("atari:pong", {"obs": "pixels", "repeat_action_probability": 2}, "[0, 1]"),
        ("atari:pong", {"obs": "pixels", "noop_max": -1}, "noop_max"),
        ("atari:pong", {"obs": "pixels", "frame_stack": 0}, "frame_stack"),
        ("atari:pong", {"obs": "pixels", "frame_stack": "x"}, "frame_stack"),
        ("atari:pong", {"obs": "pixels", "frame_stack": 2.0}, "fix: e.g. 4"),
    ],
)
def test_bad_input_is_one_line_user_error(env_id, kwargs, hint):
    with pytest.raises(UserError) as info:
        make_env(env_id, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and hint in msg, msg
