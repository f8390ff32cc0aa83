"""crafter:reward and crafter:noreward: 64x64 images, 17 actions, the achievement logs in every
step dict, and Crafter's score S = exp(mean(ln(1 + s_i))) - 1 (s_i in percent)."""

import importlib.util
import math
import sys

import numpy as np
import pytest

from worldmodels.envs import VectorEnv, crafter_score, crafter_success_rates, make_env
from worldmodels.envs.crafter_env import ACHIEVEMENTS, ACTIONS, LOG_KEYS
from worldmodels.errors import MissingExtraError, UserError

FLAGS = ("is_first", "is_last", "is_terminal")
needs_crafter = pytest.mark.skipif(
    importlib.util.find_spec("crafter") is None,
    reason="crafter not installed: pip install 'worldmodels[crafter]'",
)


def check_step(step, env):
    assert set(step) == set(env.obs_space) | {"reward", *FLAGS, *LOG_KEYS}
    for key, spec in env.obs_space.items():
        assert step[key].shape == spec.shape and step[key].dtype == spec.dtype
    assert isinstance(step["reward"], np.float32) and np.isfinite(step["reward"])
    assert isinstance(step["log/reward"], np.float32)
    for flag in FLAGS:
        assert isinstance(step[flag], np.bool_)
    for a in ACHIEVEMENTS:
        assert isinstance(step[f"log/achievement_{a}"], np.int32)


def test_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "crafter", None)  # find_spec -> ValueError: "missing"
    with pytest.raises(MissingExtraError) as info:
        make_env("crafter:reward", obs="pixels")
    msg = str(info.value)
    assert "pip install 'worldmodels[crafter]'" in msg and "\n" not in msg


def test_score_is_the_geometric_mean_formula():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0, 100, size=22)
    expected = math.exp(sum(math.log(1 + s) for s in rates) / 22) - 1
    assert crafter_score(rates) == pytest.approx(expected, rel=1e-12)
    assert crafter_score(dict(zip(ACHIEVEMENTS, rates))) == pytest.approx(expected, rel=1e-12)
    assert crafter_score([0.0] * 22) == 0.0
    assert crafter_score([100.0] * 22) == pytest.approx(100.0)
    assert crafter_score([100.0] + [0.0] * 21) == pytest.approx(101 ** (1 / 22) - 1)
    with pytest.raises(ValueError, match="percent"):
        crafter_score([0.5, 120.0])


def test_success_rates_count_episodes_with_an_unlock():
    def last(**counts):
        return {f"log/achievement_{a}": np.int32(counts.get(a, 0)) for a in ACHIEVEMENTS}

    episodes = [last(collect_wood=3, wake_up=1), last(collect_wood=1), last(), last()]
    rates = crafter_success_rates(episodes)
    assert set(rates) == set(ACHIEVEMENTS)
    assert rates["collect_wood"] == 50.0 and rates["wake_up"] == 25.0
    assert rates["collect_diamond"] == 0.0
    stacked = {k: np.stack([e[k] for e in episodes]) for k in episodes[0]}
    assert crafter_success_rates([stacked]) == rates


@needs_crafter
def test_names_match_the_package():
    import crafter

    assert ACHIEVEMENTS == tuple(crafter.constants.achievements)
    assert ACTIONS == tuple(crafter.constants.actions)


@needs_crafter
@pytest.mark.parametrize("task", ["reward", "noreward"])
def test_smoke_50_random_steps(task):
    env = make_env(f"crafter:{task}", obs="pixels", seed=0)
    assert env.obs_space["image"].shape == (64, 64, 3)
    assert env.act_space.discrete and env.act_space.n == 17
    assert env.episode_length == 10_000
    first = env.reset()
    check_step(first, env)
    assert first["is_first"] and first["reward"] == 0 and first["image"].std() > 0
    rng = np.random.default_rng(0)
    for _ in range(50):
        step = env.step(env.act_space.sample(rng))
        check_step(step, env)
        if task == "noreward":
            assert step["reward"] == 0
    assert np.array_equal(env.render(), step["image"])


@needs_crafter
def test_achievement_counts_and_termination():
    env = make_env("crafter:reward", obs="pixels", seed=2)
    env.reset()
    rng = np.random.default_rng(2)
    total, unlocked_rewards = 0.0, 0
    seen = {a: 0 for a in ACHIEVEMENTS}
    for _ in range(3000):  # a random agent dies within a few hundred steps
        step = env.step(env.act_space.sample(rng))
        total += float(step["reward"])
        assert step["reward"] == step["log/reward"]
        for a in ACHIEVEMENTS:
            count = int(step[f"log/achievement_{a}"])
            assert count >= seen[a]  # counts only grow within an episode
            unlocked_rewards += seen[a] == 0 and count > 0
            seen[a] = count
        if step["is_last"]:
            break
    assert step["is_last"] and step["is_terminal"]  # died before the 10k-step limit
    assert unlocked_rewards >= 1
    rates = crafter_success_rates([step])
    assert sum(r == 100.0 for r in rates.values()) == unlocked_rewards
    first = env.reset()
    assert all(first[f"log/achievement_{a}"] == 0 for a in ACHIEVEMENTS)


@needs_crafter
def test_seeding_and_length():
    env = make_env("crafter:reward", obs="pixels", seed=5, length=3)
    b = env.reset()["image"]
    steps = [env.step(np.int64(0)) for _ in range(3)]
    assert steps[-1]["is_last"] and not steps[-1]["is_terminal"]
    assert not np.array_equal(env.reset()["image"], b)  # the next world
    np.testing.assert_array_equal(env.reset(seed=5)["image"], b)


@needs_crafter
def test_log_keys_stack_in_a_vector_env():
    envs = VectorEnv([lambda i=i: make_env("crafter:reward", obs="pixels", seed=i) for i in (0, 1)])
    out = envs.reset(seed=0)
    out = envs.step(np.array([5, 5]))
    assert out["image"].shape == (2, 64, 64, 3) and out["log/achievement_wake_up"].shape == (2,)
    envs.close()


@needs_crafter
@pytest.mark.parametrize(
    "env_id,kwargs,hint",
    [
        ("crafter:reward", {"obs": "vector"}, "--obs pixels"),
        ("crafter:rewards", {"obs": "pixels"}, "crafter:reward or crafter:noreward"),
        ("crafter:reward", {"obs": "pixels", "action_repeat": 2}, "action_repeat"),
        ("crafter:reward", {"obs": "pixels", "area": (32, 32)}, "length"),
    ],
)
def test_bad_input_is_one_line_user_error(env_id, kwargs, hint):
    with pytest.raises(UserError) as info:
        make_env(env_id, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and hint in msg, msg
