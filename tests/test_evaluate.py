"""Batched greedy evaluation (train.loop.evaluate): every env plays a share of the episodes fixed
in advance, so the mean is over the episodes assigned, not over whichever finish first."""

import numpy as np
import pytest

from worldmodels.envs import ActionSpace, Env, Spec, VectorEnv, make_step
from worldmodels.errors import UserError
from worldmodels.train.loop import evaluate


class SeededLengthEnv(Env):
    """Episode k after ``reset(seed)`` lasts ``lengths[seed][k]`` steps (then 1), reward 1 each."""

    def __init__(self, lengths):
        self.lengths = lengths
        self.obs_space = {"vector": Spec((1,), np.float32)}
        self.act_space = ActionSpace(discrete=True, n=2)
        self.queue: list[int] = []

    def reset(self, seed=None):
        if seed is not None:
            self.queue = list(self.lengths[seed])
        self.length, self.t = (self.queue.pop(0) if self.queue else 1), 0
        return make_step({"vector": np.zeros(1, np.float32)}, is_first=True)

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        return make_step({"vector": np.full(1, self.t, np.float32)}, 1.0, is_last=done)


class CountingAgent:
    """Acts 0 everywhere; records batch sizes and how often a row started an episode."""

    def __init__(self):
        self.batches, self.firsts = [], 0

    def init_state(self, n):
        return None

    def act(self, state, obs, mode):
        assert mode == "eval"
        self.batches.append(len(obs["is_first"]))
        self.firsts += int(np.sum(obs["is_first"]))
        return state, np.zeros(len(obs["is_first"]), np.int64), {}


# Seeds 100.. are the envs' reset seeds (VectorEnv.reset gives env i seed + i).
LENGTHS = {100: [2, 3, 4, 5], 101: [9, 9, 9, 9], 102: [1, 1, 1, 1]}


@pytest.mark.parametrize("episodes", [1, 3, 5, 7])
def test_batched_evaluation_counts_each_envs_share(episodes):
    env = VectorEnv([lambda: SeededLengthEnv(LENGTHS)] * 3)
    agent = CountingAgent()
    out = evaluate(agent, env, episodes, seed=100)
    # Env i plays episodes i, i + 3, ...: worked out by hand from LENGTHS
    expected = [LENGTHS[100 + k % 3][k // 3] for k in range(episodes)]
    assert out["episodes"] == episodes
    assert out["return_mean"] == pytest.approx(np.mean(expected))
    assert out["return_min"] == min(expected) and out["return_max"] == max(expected)
    assert out["length_mean"] == pytest.approx(np.mean(expected))
    # One batch of 3 throughout: the long env 1 bounds the number of acts
    assert set(agent.batches) == {3}
    env.close()


def test_short_episodes_are_not_over_counted():
    # Env 2 finishes an episode every step; taking the first 3 episodes to end would give 1.0.
    env = VectorEnv([lambda: SeededLengthEnv(LENGTHS)] * 3)
    out = evaluate(CountingAgent(), env, 3, seed=100)
    assert out["return_mean"] == pytest.approx((2 + 9 + 1) / 3)
    env.close()


def test_one_env_plays_episodes_in_sequence():
    env = VectorEnv([lambda: SeededLengthEnv(LENGTHS)])
    out = evaluate(CountingAgent(), env, 4, seed=100)
    assert out["return_mean"] == pytest.approx(np.mean(LENGTHS[100]))
    env.close()


def test_zero_episodes_is_a_user_error():
    env = VectorEnv([lambda: SeededLengthEnv(LENGTHS)])
    with pytest.raises(UserError, match="at least 1 episode"):
        evaluate(CountingAgent(), env, 0, seed=100)
    env.close()


def test_should_stop_interrupts_between_steps():
    """evaluate asks should_stop before each step and raises EvalInterrupted when it says so."""
    from worldmodels.train.loop import EvalInterrupted

    env = VectorEnv([lambda: SeededLengthEnv(LENGTHS)] * 3)
    agent = CountingAgent()
    asked = []

    def should_stop():
        asked.append(len(agent.batches))
        return len(agent.batches) >= 2

    with pytest.raises(EvalInterrupted):
        evaluate(agent, env, 7, seed=100, should_stop=should_stop)
    assert len(agent.batches) == 2 and asked == [0, 1, 2]


def test_signal_during_training_eval_saves_without_counting_the_eval(tmp_path):
    """A stop signal that arrives mid-eval abandons the eval at once and checkpoints the steps
    already taken; the resumed run evaluates first (last_eval unchanged) and then finishes."""
    import json

    from worldmodels.checkpoint import load_checkpoint
    from worldmodels.train.loop import Trainer
    from worldmodels.train.run import load_run, new_run

    run = tmp_path / "run"
    overrides = {"run.steps": 300, "run.eval_every": 200, "run.eval_episodes": 3}
    info = new_run(
        "dreamerv3",
        "toy:target",
        seed=0,
        presets=["dreamerv3", "debug"],
        overrides=overrides,
        run_dir=run,
    )
    trainer = Trainer(info, progress=False)
    act, eval_steps = trainer.agent.act, []

    def act_then_signal(state, obs, mode="explore"):
        if mode == "eval":
            eval_steps.append(1)
            trainer._stop_signal = 15  # what the SIGTERM handler does
        return act(state, obs, mode)

    trainer.agent.act = act_then_signal
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert len(eval_steps) == 1  # one eval step, not 3 episodes of them
    state, _ = load_checkpoint(run / "checkpoints")
    assert state["counters"]["env_steps"] == 200 and state["counters"]["last_eval"] == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any("eval/return_mean" in r for r in rows)

    resumed = Trainer(load_run(run), resume=True, progress=False)
    result = resumed.train()
    assert result["episodes"] == 3
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in rows if "eval/return_mean" in r]
    assert evals[0] in (200, 201) and evals[1:] == [300], evals  # checked after the next step
