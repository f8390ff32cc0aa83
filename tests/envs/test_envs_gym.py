"""Gymnasium wrapper: shapes, dtypes, action scaling, truncation vs termination, seeding."""

import importlib.util

import gymnasium
import numpy as np
import pytest

from worldmodels.envs import ActionSpace, Spec, make_env
from worldmodels.envs.gym_env import GymEnv
from worldmodels.envs.image import resize
from worldmodels.errors import UserError

FLAGS = ("is_first", "is_last", "is_terminal")


def check_step(step, obs_space):
    assert set(step) == set(obs_space) | {"reward", *FLAGS}
    for key, spec in obs_space.items():
        assert step[key].shape == spec.shape and step[key].dtype == spec.dtype
    assert isinstance(step["reward"], np.float32)
    for flag in FLAGS:
        assert isinstance(step[flag], np.bool_)


def test_cartpole_vector():
    env = make_env("gym:CartPole-v1")
    assert env.obs_space == {"vector": Spec((4,), np.float32)}
    assert env.act_space == ActionSpace(discrete=True, n=2)
    assert env.act_space.shape == ()
    first = env.reset()
    check_step(first, env.obs_space)
    assert first["is_first"] and not first["is_last"] and first["reward"] == 0
    step = env.step(np.int64(1))
    check_step(step, env.obs_space)
    assert not step["is_first"] and step["reward"] == 1.0
    frame = env.render()  # vector mode still renders for videos
    assert frame is not None and frame.shape == (400, 600, 3)
    env.close()


def test_cartpole_pixels():
    env = make_env("gym:CartPole-v1", obs="pixels")
    assert env.obs_space == {"image": Spec((64, 64, 3), np.uint8)}
    first = env.reset()
    check_step(first, env.obs_space)
    assert first["image"].std() > 1.0  # not a constant frame
    step = env.step(np.array(0))
    check_step(step, env.obs_space)
    assert env.render().shape == (400, 600, 3)
    env.close()
    other = make_env("gym:CartPole-v1", obs="pixels", size=(32, 48))
    assert other.reset()["image"].shape == (32, 48, 3)
    other.close()


def test_discrete_observation_is_one_hot():
    env = make_env("gym:FrozenLake-v1")
    assert env.obs_space["vector"].shape == (16,)
    vec = env.reset()["vector"]
    assert vec.dtype == np.float32 and vec.sum() == 1.0 and vec[0] == 1.0


class RecordingEnv(gymnasium.Env):
    """Tiny gymnasium env that remembers the last action it received."""

    def __init__(self, low, high, obs_space=None, max_steps=3):
        self.observation_space = obs_space or gymnasium.spaces.Box(-1, 1, (2,), np.float64)
        self.action_space = gymnasium.spaces.Box(
            np.asarray(low, np.float32), np.asarray(high, np.float32)
        )
        self.received = None
        self.max_steps = max_steps

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.received = action
        self.t += 1
        return self.observation_space.sample(), 0.5, self.t >= self.max_steps, False, {}


def test_continuous_action_scaling():
    env = GymEnv(RecordingEnv([-2.0], [2.0]))
    assert env.act_space == ActionSpace(discrete=False, n=1)
    env.reset(seed=0)
    env.step(np.array([1.0], np.float32))
    np.testing.assert_allclose(env.unwrapped.received, [2.0])
    env.step(np.array([-1.0], np.float32))
    np.testing.assert_allclose(env.unwrapped.received, [-2.0])
    env.step(np.array([3.0], np.float32))  # clipped to the [-1, 1] interface range
    np.testing.assert_allclose(env.unwrapped.received, [2.0])

    asym = GymEnv(RecordingEnv([0.0, -1.0], [10.0, 3.0]))
    np.testing.assert_allclose(asym.scale_action(np.array([-1.0, 1.0])), [0.0, 3.0])
    np.testing.assert_allclose(asym.scale_action(np.array([0.0, 0.0])), [5.0, 1.0])
    assert asym.scale_action(np.zeros(2)).dtype == np.float32


def test_pendulum_scaling():
    env = make_env("gym:Pendulum-v1")
    assert env.act_space == ActionSpace(discrete=False, n=1)
    assert env.act_space.shape == (1,)
    np.testing.assert_allclose(env.scale_action(np.array([1.0])), [2.0])
    np.testing.assert_allclose(env.scale_action(np.array([-0.5])), [-1.0])
    env.reset()
    step = env.step(env.act_space.sample(np.random.default_rng(0)))
    assert step["vector"].shape == (3,) and step["reward"].dtype == np.float32


def test_truncation_is_not_termination():
    env = make_env("gym:CartPole-v1", max_episode_steps=5)
    env.reset(seed=0)
    steps = [env.step(np.int64(t % 2)) for t in range(5)]  # alternate: stays up for 5 steps
    assert [bool(s["is_last"]) for s in steps] == [False] * 4 + [True]
    assert not any(s["is_terminal"] for s in steps)


def test_termination():
    env = make_env("gym:CartPole-v1")
    env.reset(seed=0)
    for _ in range(100):
        step = env.step(np.int64(1))  # always push right: the pole falls
        if step["is_last"]:
            break
    assert step["is_last"] and step["is_terminal"]


def rollout(env, seed, actions):
    out = [env.reset(seed=seed)["vector"]]
    for a in actions:
        step = env.step(a)
        out.append(step["vector"])
        if step["is_last"]:
            out.append(env.reset()["vector"])
    return np.stack(out)


def test_seeding_determinism():
    actions = np.random.default_rng(0).integers(0, 2, size=60)
    a = rollout(make_env("gym:CartPole-v1"), 7, actions)
    b = rollout(make_env("gym:CartPole-v1"), 7, actions)
    c = rollout(make_env("gym:CartPole-v1"), 8, actions)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], c[0])
    # The constructor seed is used by a reset() without a seed.
    d, e = make_env("gym:CartPole-v1", seed=3), make_env("gym:CartPole-v1", seed=3)
    np.testing.assert_array_equal(d.reset()["vector"], e.reset(seed=3)["vector"])
    # Later resets continue gymnasium's RNG instead of repeating the first episode.
    assert not np.array_equal(d.reset()["vector"], e.reset(seed=3)["vector"])


def test_unsupported_spaces():
    class MultiBinaryActions(RecordingEnv):
        def __init__(self):
            super().__init__([0.0], [1.0])
            self.action_space = gymnasium.spaces.MultiBinary(3)

    with pytest.raises(UserError, match="action space MultiBinary"):
        GymEnv(MultiBinaryActions())
    image_obs = gymnasium.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    with pytest.raises(UserError, match="obs='pixels'"):
        GymEnv(RecordingEnv([0.0], [1.0], obs_space=image_obs))
    with pytest.raises(UserError, match="render_mode='rgb_array'"):
        GymEnv(RecordingEnv([0.0], [1.0]), obs="pixels")


def test_action_repeat_sums_rewards_of_the_repeated_steps():
    """R = 3 on Pendulum: each agent step is 3 gymnasium steps with the same action."""
    repeat, plain = (
        make_env("gym:Pendulum-v1", seed=5, action_repeat=3),
        gymnasium.make("Pendulum-v1"),
    )
    assert repeat.episode_length == 67  # ceil(200 / 3)
    first = repeat.reset()
    raw, _ = plain.reset(seed=5)
    np.testing.assert_allclose(first["vector"], raw, rtol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.uniform(-1, 1, size=1).astype(np.float32)
        step = repeat.step(a)
        total = 0.0
        for _ in range(3):
            raw, r, *_ = plain.step(2.0 * a)  # [-1, 1] -> [-2, 2]
            total += r
        assert step["reward"] == pytest.approx(total, rel=1e-5)
        np.testing.assert_allclose(step["vector"], raw, rtol=1e-5)
    lengths = 10
    while not step["is_last"]:
        step = repeat.step(np.zeros(1, np.float32))
        lengths += 1
    assert lengths == 67 and not step["is_terminal"]  # the time limit cut the 67th step short


def test_action_repeat_stops_at_termination():
    """CartPole pays 1 per gymnasium step: the episode's total is the same at any repeat."""
    totals = {}
    for r in (1, 4):
        env = make_env("gym:CartPole-v1", seed=3, action_repeat=r)
        env.reset()
        total, step = 0.0, {"is_last": False}
        while not step["is_last"]:
            step = env.step(np.int64(1))  # always push right: terminates within ~10 steps
            total += float(step["reward"])
        assert step["is_terminal"]
        totals[r] = total
    assert totals[1] == totals[4] and totals[1] < 40


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_action_repeat_is_refused(bad):
    with pytest.raises(UserError, match="action_repeat"):
        make_env("gym:CartPole-v1", action_repeat=bad)


def test_action_repeat_on_suites_without_it():
    make_env("toy:target", action_repeat=1)  # 1 is no repeat: fine anywhere
    with pytest.raises(UserError, match="run.action_repeat"):
        make_env("toy:target", action_repeat=2)


@pytest.mark.skipif(
    importlib.util.find_spec("Box2D") is None,
    reason="Box2D not installed: pip install 'worldmodels[box2d]'",
)
def test_car_racing_pixels_are_its_own_frame_without_the_dashboard():
    """CarRacing's image is its 96x96 observation, rows 0:84 kept (the dashboard is the bottom
    12), resized to 64x64 (World Models' carracing/env.py); no 600x400 render per step."""
    env = make_env("gym:CarRacing-v3", obs="pixels", seed=4)
    plain = gymnasium.make("CarRacing-v3")
    assert env.obs_space == {"image": Spec((64, 64, 3), np.uint8)}
    assert env.act_space == ActionSpace(discrete=False, n=3) and env.episode_length == 1000
    raw, _ = plain.reset(seed=4)
    first = env.reset()
    check_step(first, env.obs_space)
    np.testing.assert_array_equal(first["image"], resize(raw[:84], (64, 64)))
    for _ in range(3):
        step = env.step(np.array([0.5, 0.0, -1.0], np.float32))  # steer 0.5, gas 0.5, brake 0
        raw, reward, *_ = plain.step(np.array([0.5, 0.5, 0.0], np.float32))
        np.testing.assert_array_equal(step["image"], resize(raw[:84], (64, 64)))
        assert step["reward"] == pytest.approx(reward, rel=1e-5)
    assert env.render().shape == (96, 96, 3)
    env.close()
    plain.close()
