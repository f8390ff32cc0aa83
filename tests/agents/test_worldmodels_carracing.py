"""World Models on CarRacing (carracing/ of the reference): the preset, C's (steer, gas, brake)
mapping, the random-weight collection policy, real-env fitness (the mean of per-episode real
returns, checked against episodes played one by one through ``act``), resume inside a real-env
generation, and the preset end to end on gym:CarRacing-v3."""

from __future__ import annotations

import importlib.util
import json
import os
import signal

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config, get_agent_spec
from worldmodels.checkpoint import load_checkpoint
from worldmodels.cli import main
from worldmodels.envs import ActionSpace, Spec, make_env
from worldmodels.envs.vector import VectorEnv
from worldmodels.errors import UserError

ENV = "toy:image_target"
REACH = "toy:reach"
"""Continuous actions and rewards: every candidate and seed has its own real return."""
needs_box2d = pytest.mark.skipif(
    importlib.util.find_spec("Box2D") is None,
    reason="Box2D not installed: pip install 'worldmodels[box2d]'",
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as runs use (``run.threads``): tiny batches on a busy CPU otherwise
    spend their time waiting on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cls():
    return get_agent_spec("worldmodels").load()[2]


def _agent(env_id=ENV, **overrides):
    cfg, _ = build_config("worldmodels", ["debug"], overrides)
    env = make_env(env_id, obs="pixels", seed=0)
    _cls().prepare(cfg, env)
    torch.manual_seed(0)
    return _cls()(cfg, env.obs_space, env.act_space, "cpu")


def test_carracing_preset_holds_the_reference_values():
    cfg, _ = build_config("worldmodels", ["carracing"])
    c = cfg.controller
    assert (cfg.vae.z_dim, cfg.mdnrnn.hidden, cfg.mdnrnn.mixtures) == (32, 256, 5)
    assert (c.inputs, c.bias, c.continuous, c.mode) == ("zh", True, "carracing", "real")
    assert (c.popsize, c.rollouts, c.sigma0, c.eval_every) == (64, 16, 0.1, 25)
    assert cfg.data.policy == "controller" and cfg.run.eval_episodes == 100
    image = {"image": Spec((64, 64, 3), np.uint8)}
    agent = _cls()(cfg, image, ActionSpace(discrete=False, n=3), "cpu")
    assert agent.c_dim == (32 + 256) * 3 + 3  # carracing/model.py's param_count


def test_carracing_outputs_are_steer_gas_brake_as_the_reference_maps_them():
    cfg, _ = build_config("worldmodels", ["debug"], {"controller.continuous": "carracing",
                                                      "controller.bias": True})  # fmt: skip
    image = {"image": Spec((64, 64, 3), np.uint8)}
    agent = _cls()(cfg, image, ActionSpace(discrete=False, n=3), "cpu")
    y = torch.linspace(-3.0, 3.0, 21)
    x = torch.zeros(21, agent.c_in)
    w = torch.zeros(21, agent.c_in + 1, 3)
    w[:, -1] = y[:, None]  # the bias row: every output's pre-activation is y
    a = agent.controller_actions(w.flatten(1), x)
    # GymEnv rescales [-1, 1] to CarRacing's bounds: steer [-1, 1], gas and brake [0, 1]
    low, high = torch.tensor([-1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 1.0])
    env_action = low + (a + 1) / 2 * (high - low)
    t = torch.tanh(y)
    torch.testing.assert_close(env_action[:, 0], t)
    torch.testing.assert_close(env_action[:, 1], (t + 1) / 2)
    torch.testing.assert_close(env_action[:, 2], t.clamp(0, 1))
    with pytest.raises(UserError, match="continuous=tanh"):
        cfg2, _ = build_config("worldmodels", ["debug"], {"controller.continuous": "carracing"})
        _cls().prepare(cfg2, make_env(ENV, seed=0))


def test_random_weight_collection_draws_one_controller_per_episode():
    agent = _agent(**{"data.policy": "controller"})
    env = VectorEnv([lambda i=i: make_env(ENV, seed=i) for i in range(2)])
    obs = env.reset(seed=0)
    state = agent.init_state(2)
    seen = []
    for _ in range(25):  # toy episodes last 10 steps: three episodes per env
        step = agent.act(state, obs, "explore")
        state = step.state
        seen.append((np.asarray(obs["is_first"]).copy(), state["params"].clone()))
        obs = env.step(step.action)
    for (first, params), (_, before) in zip(seen[1:], seen[:-1]):
        for i in range(2):
            assert torch.equal(params[i], before[i]) != bool(first[i])
    params = torch.stack([p for _, p in seen])
    assert params.abs().median() < 0.01  # Cauchy draws times a scale in [0, 0.01]


def _deterministic_v(agent) -> None:
    """V's posterior collapses onto its mean (z = mu), so that the noise order is moot."""
    with torch.no_grad():
        agent.vae.logvar.weight.zero_()
        agent.vae.logvar.bias.fill_(-60.0)


def _played_one_by_one(agent, params: torch.Tensor, seed: int, cap: int) -> float:
    """The return of one episode of ``params`` through ``act``, in a fresh env."""
    agent.controller = params.clone()
    env = make_env(REACH, obs="pixels", seed=12345)
    obs = env.reset(seed=seed)
    obs = {k: np.asarray(v)[None] for k, v in obs.items()}
    state, total = agent.init_state(1), 0.0
    for _ in range(cap):
        step = agent.act(state, obs, "eval")
        state = step.state
        raw = env.step(step.action[0])
        total += float(raw["reward"])
        if raw["is_last"]:
            break
        obs = {k: np.asarray(v)[None] for k, v in raw.items()}
    return total


@pytest.mark.parametrize("cap", [30, 4])  # toy:reach ends itself after 20 steps
def test_real_fitness_is_the_mean_of_the_candidates_real_episode_returns(cap):
    agent = _agent(REACH, **{"controller.mode": "real", "controller.max_steps": cap})
    _deterministic_v(agent)
    agent.done.append("controller")  # act plays C from here on
    torch.manual_seed(1)
    solutions = torch.randn(3, agent.c_dim).numpy()
    envs = VectorEnv([lambda i=i: make_env(REACH, obs="pixels", seed=i) for i in range(4)])
    fitness = agent.real_fitness(solutions, 2, envs, seed=100)  # 6 episodes in 2 batches
    returns = [
        [_played_one_by_one(agent, torch.as_tensor(s).float(), 100 + 2 * i + r, cap)
         for r in range(2)]
        for i, s in enumerate(solutions)
    ]  # fmt: skip
    np.testing.assert_allclose(fitness, np.mean(returns, 1), rtol=1e-5)
    assert len({round(r, 3) for rs in returns for r in rs}) == 6  # every episode its own return
    np.testing.assert_array_equal(agent.real_fitness(solutions, 2, envs, seed=100), fitness)


def _train(run, *extra, env=ENV):
    argv = ["train", "worldmodels", "--env", env, "--preset", "debug", "--run-dir", str(run),
            "--no-progress", "--set", "controller.mode=real", *extra]  # fmt: skip
    return main(argv)


def test_a_run_stopped_inside_a_real_generation_resumes_it(tmp_path, monkeypatch):
    gens = ["--set", "controller.generations=3", "--set", "controller.eval_every=0"]
    assert _train(tmp_path / "whole", *gens) == 0
    whole, _ = load_checkpoint(tmp_path / "whole" / "checkpoints")
    rows = [json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    generations = [
        r for r in rows if "controller/fitness_mean" in r and "controller/real_best" not in r
    ]
    assert len(generations) == 3  # one row per generation, then the stage's summary

    from worldmodels.agents.worldmodels import agent as mod

    real = mod.WorldModelsAgent.real_fitness
    calls = []

    def stop_in_the_second(self, solutions, rollouts, envs, seed, should_stop=None):
        calls.append(seed)
        if len(calls) == 2:  # a stop arrives while generation 1's episodes play
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, solutions, rollouts, envs, seed, should_stop)

    monkeypatch.setattr(mod.WorldModelsAgent, "real_fitness", stop_in_the_second)
    run = tmp_path / "cut"
    assert _train(run, *gens) == 130
    state, _ = load_checkpoint(run / "checkpoints")
    assert state["agent"]["progress"]["controller"]["es"]["generation"] == 1
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    cut, _ = load_checkpoint(run / "checkpoints")
    torch.testing.assert_close(cut["agent"]["controller"], whole["agent"]["controller"])
    assert calls[2] == calls[1]  # the interrupted generation is replayed on the same episodes


@needs_box2d
def test_carracing_preset_runs_end_to_end_on_car_racing(tmp_path):
    run = tmp_path / "car"
    argv = ["train", "worldmodels", "--env", "gym:CarRacing-v3", "--preset", "carracing",
            "--preset", "debug", "--run-dir", str(run), "--no-progress",
            "--set", "controller.popsize=2", "--set", "controller.rollouts=1",
            "--set", "controller.eval_rollouts=1", "--set", "data.episodes=1"]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for key in ("encode/frames", "controller/real_eval", "controller/real_best"):
        assert any(key in r for r in rows), key
    assert any("eval/return_mean" in r for r in rows)
    saved = json.loads((run / "config.json").read_text())
    assert saved["presets"] == ["worldmodels", "carracing", "debug"]
    c = saved["config"]["controller"]
    assert (c["mode"], c["continuous"], c["inputs"], c["bias"]) == ("real", "carracing", "zh", True)


def test_mid_start_dreams_take_continuous_actions():
    """controller.mid_starts with continuous actions: the pool's memory is M over the recorded
    action vectors, and dreams run from it."""
    agent = _agent(REACH, **{"controller.mid_starts": 1.0, "controller.max_steps": 6})
    rng = np.random.default_rng(0)
    z = agent.config.vae.z_dim
    first = np.zeros(5, bool)
    first[0] = True
    ep = {
        "mu": rng.standard_normal((5, z)).astype(np.float32),
        "logvar": np.zeros((5, z), np.float32),
        "action": rng.uniform(-1, 1, (5, agent.n_act)).astype(np.float32),
        "is_first": first,
    }
    agent.build_mid_pool([ep])
    k = int(torch.argmax(agent.mid_pool["t"]))  # t = 3
    with torch.no_grad():
        restart = torch.tensor([[1.0, 0.0, 0.0]])
        _, (h, _) = agent.mdn(torch.as_tensor(ep["mu"][:3])[None],
                              torch.as_tensor(ep["action"][:3])[None], restart)  # fmt: skip
    torch.testing.assert_close(agent.mid_pool["h"][k], h[0])
    agent.initial_z = torch.zeros(1, 2, z)
    _, length = agent.dream(torch.zeros(4, agent.c_dim), 1.0, torch.Generator().manual_seed(0))
    assert (length <= 5).all()  # 6 steps less the 1-3 already played
