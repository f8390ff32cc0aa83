"""Toy envs: known random and optimal returns, shapes, seeding."""

import numpy as np
import pytest

from worldmodels.envs import Spec, make_env
from worldmodels.envs.toy import ImageTargetEnv, ReachEnv, TargetEnv
from worldmodels.errors import UserError


def run_episodes(env, policy, episodes):
    returns = []
    for _ in range(episodes):
        step = env.reset()
        total, length = 0.0, 0
        while not step["is_last"]:
            step = env.step(policy(step))
            total += float(step["reward"])
            length += 1
        returns.append(total)
    return np.array(returns), step, length


def test_target_optimal_and_random():
    env = make_env("toy:target", seed=0)
    assert env.obs_space == {"vector": Spec((5,), np.float32)}
    assert env.act_space.discrete and env.act_space.n == 4
    best, last, length = run_episodes(env, lambda s: np.argmax(s["vector"][:4]), 50)
    assert length == 10 and last["is_terminal"] and last["vector"][-1] == 1.0
    assert TargetEnv.optimal_return == 10.0 and np.all(best == TargetEnv.optimal_return)
    rng = np.random.default_rng(0)
    rand, _, _ = run_episodes(env, lambda s: env.act_space.sample(rng), 1000)
    assert TargetEnv.random_return == 2.5
    assert abs(rand.mean() - TargetEnv.random_return) < 0.2


def quadrant(image):
    h, w = image.shape[:2]
    quads = [image[: h // 2, : w // 2], image[: h // 2, w // 2 :]]
    quads += [image[h // 2 :, : w // 2], image[h // 2 :, w // 2 :]]
    return int(np.argmax([q.mean() for q in quads]))


@pytest.mark.parametrize("env_id,obs", [("toy:image_target", "vector"), ("toy:target", "pixels")])
def test_image_target(env_id, obs):
    env = make_env(env_id, obs=obs, seed=1)
    assert env.obs_space == {"image": Spec((64, 64, 3), np.uint8)}
    best, last, _ = run_episodes(env, lambda s: quadrant(s["image"]), 20)
    assert last["image"].dtype == np.uint8
    assert np.all(best == ImageTargetEnv.optimal_return)


def test_reach_optimal_and_random():
    env = make_env("toy:reach", seed=0)
    assert env.obs_space == {"vector": Spec((2,), np.float32)}
    assert not env.act_space.discrete and env.act_space.shape == (1,)

    def greedy(step):
        x, goal = step["vector"]
        return np.clip([(goal - x) / ReachEnv.speed], -1.0, 1.0).astype(np.float32)

    # Per episode, greedy matches the analytic bound -sum_k max(d - 0.2k, 0).
    for _ in range(20):
        step = env.reset()
        d = abs(float(step["vector"][0]) - ReachEnv.goal)
        bound = -sum(max(d - 0.2 * k, 0.0) for k in range(1, 21))
        total = 0.0
        while not step["is_last"]:
            step = env.step(greedy(step))
            total += float(step["reward"])
        assert total == pytest.approx(bound, abs=1e-4)
        assert not step["is_terminal"]  # truncated, not terminated
    best, _, length = run_episodes(env, greedy, 2000)
    assert length == 20
    assert abs(best.mean() - ReachEnv.optimal_return) < 0.1
    rng = np.random.default_rng(1)
    rand, _, _ = run_episodes(env, lambda s: env.act_space.sample(rng), 500)
    assert abs(rand.mean() - ReachEnv.random_return) < 1.5  # s.e. of 500 episodes ~ 0.37
    assert ReachEnv.random_return < ReachEnv.optimal_return


def test_reach_pixels():
    env = make_env("toy:reach", obs="pixels", size=(32, 32))
    step = env.reset()
    assert step["image"].shape == (32, 32, 3) and step["image"].std() > 0


def test_toy_seeding():
    def trace(seed):
        env = make_env("toy:reach", seed=seed)
        return [env.reset()["vector"][0] for _ in range(5)]

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)
    assert len(set(trace(3))) == 5  # later resets continue the rng
    env = make_env("toy:target")
    ks = [int(np.argmax(env.reset(seed=s)["vector"][:4])) for s in range(2)]
    assert ks == [int(np.argmax(env.reset(seed=s)["vector"][:4])) for s in range(2)]


def test_step_after_end_raises():
    env = make_env("toy:target")
    env.reset()
    for _ in range(10):
        env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_one_hot_action_accepted():
    env = make_env("toy:target", seed=0)
    k = int(np.argmax(env.reset()["vector"][:4]))
    assert env.step(np.eye(4, dtype=np.float32)[k])["reward"] == 1.0


def test_unknown_toy():
    with pytest.raises(UserError, match="toy:target, toy:image_target, toy:reach"):
        make_env("toy:nope")
    with pytest.raises(UserError, match="no extra arguments"):
        make_env("toy:target", length=3)
