"""VectorEnv: stacking, DreamerV3-style autoreset, seeding, subprocess variant."""

import numpy as np
import pytest

from worldmodels.envs import ActionSpace, Env, Spec, VectorEnv, make_env, make_step, make_vector_env
from worldmodels.errors import UserError


class CountingEnv(Env):
    """Episodes of fixed length; the observation is the step count; records actions."""

    def __init__(self, length):
        self.length = length
        self.obs_space = {"vector": Spec((1,), np.float32)}
        self.act_space = ActionSpace(discrete=True, n=10)
        self.actions = []
        self.resets = 0

    def reset(self, seed=None):
        self.t = 0
        self.resets += 1
        return make_step({"vector": np.zeros(1, np.float32)}, is_first=True)

    def step(self, action):
        self.actions.append(int(action))
        self.t += 1
        done = self.t >= self.length
        obs = {"vector": np.full(1, self.t, np.float32)}
        return make_step(obs, 1.0, is_last=done, is_terminal=done)


def test_autoreset():
    envs = VectorEnv([lambda: CountingEnv(2), lambda: CountingEnv(3)])
    assert envs.num_envs == 2 and envs.obs_space == {"vector": Spec((1,), np.float32)}
    first = envs.reset(seed=0)
    assert first["vector"].shape == (2, 1) and first["reward"].dtype == np.float32
    assert first["is_first"].tolist() == [True, True] and first["is_first"].dtype == bool
    flags = []
    for t in range(1, 7):
        out = envs.step(np.array([t, t]))
        flags.append((out["is_first"].tolist(), out["is_last"].tolist(), out["reward"].tolist()))
    assert flags == [
        ([False, False], [False, False], [1.0, 1.0]),
        ([False, False], [True, False], [1.0, 1.0]),
        ([True, False], [False, True], [0.0, 1.0]),  # env 0 reset: action 3 ignored
        ([False, True], [False, False], [1.0, 0.0]),  # env 1 reset: action 4 ignored
        ([False, False], [True, False], [1.0, 1.0]),
        ([True, False], [False, False], [0.0, 1.0]),
    ]
    assert envs._envs[0].actions == [1, 2, 4, 5]
    assert envs._envs[1].actions == [1, 2, 3, 5, 6]
    envs.close()


def test_step_before_reset_resets():
    envs = VectorEnv([lambda: CountingEnv(2)] * 3)
    out = envs.step(np.zeros(3, np.int64))
    assert out["is_first"].all() and (out["reward"] == 0).all()
    assert [e.actions for e in envs._envs] == [[], [], []]


def test_make_vector_env_seeding():
    envs = make_vector_env("toy:reach", 3, seed=5)
    first = envs.reset(seed=10)
    for i in range(3):
        single = make_env("toy:reach").reset(seed=10 + i)
        np.testing.assert_array_equal(first["vector"][i], single["vector"])
    again = make_vector_env("toy:reach", 3, seed=5).reset(seed=10)
    np.testing.assert_array_equal(first["vector"], again["vector"])
    # Without reset(seed), env i uses its constructor seed: seed + i.
    fresh = make_vector_env("toy:reach", 2, seed=5).step(np.zeros((2, 1), np.float32))
    assert fresh["vector"][1, 0] == make_env("toy:reach", seed=6).reset()["vector"][0]


def test_gym_vector_truncation_autoreset():
    envs = make_vector_env("gym:CartPole-v1", 2, max_episode_steps=3)
    envs.reset(seed=0)
    outs = [envs.step(np.array([t % 2, t % 2])) for t in range(4)]
    assert outs[2]["is_last"].all() and not outs[2]["is_terminal"].any()
    assert outs[3]["is_first"].all() and (outs[3]["reward"] == 0).all()
    envs.close()


def test_parallel_matches_sync():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 4, size=(25, 2))
    results = []
    for parallel in (False, True):
        with make_vector_env("toy:target", 2, seed=1, parallel=parallel) as envs:
            out = [envs.reset(seed=3)]
            out += [envs.step(a) for a in actions]
            results.append(out)
    for a, b in zip(*results):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_bad_vector_input():
    with pytest.raises(UserError, match="num_envs"):
        make_vector_env("toy:target", 0)
    with pytest.raises(UserError, match="did you mean"):
        make_vector_env("gym:CartPol-v1", 2, parallel=True)
    envs = make_vector_env("toy:target", 2)
    with pytest.raises(ValueError, match="leading dim 2"):
        envs.step(np.zeros(3, np.int64))
