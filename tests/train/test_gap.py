"""Model exploitation at evaluation: ``Imaginer.imagine_return`` of the agents that imagine or
plan, and ``evaluate``'s ``imagined_return`` / ``real_return`` / ``return_gap``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from worldmodels.agents import build_config, get_agent_spec
from worldmodels.cli import main
from worldmodels.core import EvalInterrupted, Imaginer
from worldmodels.envs import ActionSpace, Env, Spec, VectorEnv, make_env, make_step
from worldmodels.train.loop import evaluate

AGENTS = {"dreamerv3": "toy:target", "planet": "toy:reach", "tdmpc2": "toy:reach",
          "muzero": "toy:target"}  # fmt: skip
GAP_KEYS = {"imagined_return", "real_return", "return_gap"}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the debug preset runs (several spin on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(name: str):
    cfg, _ = build_config(name, ["debug"])
    env = make_env(AGENTS[name], seed=0)
    cls = get_agent_spec(name).load()[2]
    cls.prepare(cfg, env)
    torch.manual_seed(0)
    return cls(cfg, env.obs_space, env.act_space, "cpu")


def _venv(name: str, n: int = 2) -> VectorEnv:
    return VectorEnv([lambda: make_env(AGENTS[name], seed=0)] * n)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_imagine_return_is_finite_per_env(name):
    agent, env = _build(name), _venv(name)
    assert isinstance(agent, Imaginer)
    pred = agent.imagine_return(agent.init_state(2), env.reset(seed=1), 6)
    env.close()
    assert pred.shape == (2,) and np.isfinite(pred).all()


def _stop_at(call: int):
    """A ``should_stop`` that answers True at its ``call``-th question; ``.asked`` counts."""

    def should_stop():
        should_stop.asked += 1
        return should_stop.asked >= call

    should_stop.asked = 0
    return should_stop


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_imagine_return_stops_when_asked(name):
    """should_stop is asked before each imagined step; True raises EvalInterrupted at once."""
    agent, env = _build(name), _venv(name, 1)
    stop = _stop_at(3)
    with pytest.raises(EvalInterrupted):
        agent.imagine_return(agent.init_state(1), env.reset(seed=1), 6, should_stop=stop)
    env.close()
    assert stop.asked == 3


def test_evaluate_passes_should_stop_to_the_imagined_return():
    """A signal during the imagined return of the first eval episode stops the eval before its
    first real step (PlaNet's default horizon of plans takes half a minute)."""
    agent, env = _build("planet"), _venv("planet", 1)
    acted = []
    act = agent.act
    agent.act = lambda *a, **k: acted.append(1) or act(*a, **k)
    stop = _stop_at(3)  # 1: evaluate's check before the step; 2, 3: imagined steps
    with pytest.raises(EvalInterrupted):
        evaluate(agent, env, 1, seed=0, should_stop=stop, gap_horizon=10)
    env.close()
    assert stop.asked == 3 and acted == []


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_gap_leaves_the_eval_returns_unchanged(name):
    agent, env = _build(name), _venv(name)
    torch.manual_seed(1)
    plain = evaluate(agent, env, 3, seed=5)
    torch.manual_seed(1)
    with_gap = evaluate(agent, env, 3, seed=5, gap_horizon=4, gap_episodes=2)
    env.close()
    assert GAP_KEYS.isdisjoint(plain) and GAP_KEYS <= set(with_gap)
    assert {k: v for k, v in with_gap.items() if k not in GAP_KEYS} == plain
    gap = with_gap["imagined_return"] - with_gap["real_return"]
    assert with_gap["return_gap"] == pytest.approx(gap)


class ConstHead(nn.Module):
    """A head whose prediction is ``value`` everywhere."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, feat):
        return SimpleNamespace(pred=lambda: torch.full(feat.shape[:-1], self.value))


@pytest.mark.parametrize("cont, expected", [(1.0, 0.5 * 7), (0.5, 0.5 * (2 - 0.5**6))])
def test_dreamer_imagined_return_by_hand(cont, expected):
    """Reward c = 0.5 every step: c * horizon while the continue head says 1; with continue
    probability p, step t's reward is weighted by p^t: c * (1 - p^7) / (1 - p)."""
    agent, env = _build("dreamerv3"), _venv("dreamerv3", 1)
    agent.wm.reward, agent.wm.cont = ConstHead(0.5), ConstHead(cont)
    pred = agent.imagine_return(agent.init_state(1), env.reset(seed=0), 7)
    env.close()
    np.testing.assert_allclose(pred, [expected], rtol=1e-6)


class LengthEnv(Env):
    """Episodes of ``lengths`` steps in turn (reset seed i: lengths[i]), reward 1 each step."""

    lengths = {0: [3, 8, 1], 1: [6, 2, 2]}

    def __init__(self):
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
        return make_step({"vector": np.ones(1, np.float32)}, 1.0, is_last=self.t >= self.length)


class RandomImaginer:
    """Acts 0; imagines ``horizon + 10`` after drawing from the torch RNG, which the eval's own
    draws (``torch.rand`` in ``act``) must not see."""

    def __init__(self):
        self.calls: list[int] = []
        self.draws: list[float] = []

    def init_state(self, n):
        return None

    def act(self, state, obs, mode):
        self.draws.append(float(torch.rand(())))
        return state, np.zeros(len(obs["is_first"]), np.int64), {}

    def imagine_return(self, state, obs, horizon, should_stop=None):
        assert np.all(obs["is_first"])
        self.calls.append(len(obs["is_first"]))
        torch.rand(100)
        return np.full(len(obs["is_first"]), horizon + 10.0)


def test_real_return_covers_the_same_steps_of_the_first_episodes():
    """Env 0 plays episodes 0, 2, 4 (lengths 3, 8, 1), env 1 episodes 1, 3, 5 (6, 2, 2); with
    horizon 4 the first 3 episodes' real returns are min(length, 4): 3, 4, 4."""
    env = VectorEnv([LengthEnv] * 2)
    torch.manual_seed(0)
    plain_agent = RandomImaginer()
    plain = evaluate(plain_agent, env, 6, seed=0)
    torch.manual_seed(0)
    agent = RandomImaginer()
    out = evaluate(agent, env, 6, seed=0, gap_horizon=4, gap_episodes=3)
    assert agent.calls == [2, 1]  # episodes 0 and 1 at the reset, episode 2 when env 0 resets
    assert agent.draws == plain_agent.draws
    assert out["imagined_return"] == 14.0
    assert out["real_return"] == pytest.approx((3 + 4 + 4) / 3)
    assert {k: v for k, v in out.items() if k not in GAP_KEYS} == plain
    assert GAP_KEYS.isdisjoint(evaluate(RandomImaginer(), env, 6, seed=0, gap_horizon=0))
    env.close()


def test_gap_metrics_in_a_training_run_and_in_eval(tmp_path, capsys):
    run = tmp_path / "r"
    rc = main(["train", "dreamerv3", "--env", "toy:target", "--steps", "120", "--preset", "debug",
               "--set", "run.eval_every=100", "--set", "run.gap_horizon=5", "--run-dir", str(run),
               "--no-progress"])  # fmt: skip
    assert rc == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/return_mean" in r]
    assert len(evals) == 2
    assert all({f"eval/{k}" for k in GAP_KEYS} <= set(r) for r in evals)
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert "first 5 steps: the model predicted" in capsys.readouterr().out
