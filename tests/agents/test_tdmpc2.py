"""TD-MPC2: builds, plans and updates at debug size for continuous and discrete actions; the
consistency target gets no gradient; windows are cut at episode starts; save -> load plans the
same actions; the CLI trains end to end; 20+ action dimensions plan 2 more MPPI iterations."""

import json

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config
from worldmodels.agents.tdmpc2 import TDMPC2Agent
from worldmodels.agents.tdmpc2.agent import heuristic_discount, rollout_weights
from worldmodels.checkpoint import load_checkpoint, save_checkpoint
from worldmodels.cli import main
from worldmodels.envs import make_env
from worldmodels.envs.base import ActionSpace
from worldmodels.replay import random_replay
from worldmodels.train.run import new_run


def _agent(env_id: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    env = make_env(env_id)
    cfg, _ = build_config("tdmpc2", ["debug"], overrides)
    return TDMPC2Agent(cfg, env.obs_space, env.act_space), env


def _obs(env, n: int = 2) -> dict:
    return {k: np.stack([v] * n) for k, v in env.reset(seed=0).items()}


@pytest.mark.parametrize(
    "env_id", ["toy:reach", "gym:Pendulum-v1", "toy:target", "gym:CartPole-v1"]
)
def test_builds_acts_updates(env_id):
    agent, env = _agent(env_id)
    space = env.act_space
    state = agent.init_state(2)
    for mode in ("explore", "eval"):
        state, action, _ = agent.act(state, _obs(env), mode)
        if space.discrete:
            assert action.shape == (2,) and action.dtype == np.int64
            assert ((action >= 0) & (action < space.n)).all()
        else:
            assert action.shape == (2, space.n) and action.dtype == np.float32
            assert np.abs(action).max() <= 1
    before = [p.detach().clone() for p in agent.model.parameters()]
    rb = random_replay(env, 120)
    for _ in range(2):  # zero-initialised output layers: the hidden ones move from update 2 on
        metrics = agent.update(rb.sample(8, 4)).metrics
    for key in ("loss/consistency", "loss/reward", "loss/value", "loss/termination", "loss/pi"):
        assert np.isfinite(metrics[key]), key
    changed = [not torch.equal(a, b) for a, b in zip(before, agent.model.parameters())]
    assert all(changed), "every parameter (incl. the policy) takes a step"
    assert agent.updates == 2


def test_pixels():
    torch.manual_seed(0)
    env = make_env("toy:reach", obs="pixels")
    cfg, _ = build_config("tdmpc2", ["debug"])
    agent = TDMPC2Agent(cfg, env.obs_space, env.act_space)
    _, action, _ = agent.act(agent.init_state(2), _obs(env), "explore")
    assert action.shape == (2, 1)
    metrics = agent.update(random_replay(env, 40).sample(4, 4)).metrics
    assert np.isfinite(metrics["loss/model"])
    image = torch.as_tensor(_obs(env)["image"])
    agent.model.train()  # random shifts while training, none while acting
    assert not torch.equal(
        agent.model.encode({"image": image}), agent.model.encode({"image": image})
    )
    agent.model.eval()
    assert torch.equal(agent.model.encode({"image": image}), agent.model.encode({"image": image}))


def test_policy_prior_acting_without_planning():
    agent, env = _agent("toy:reach", **{"plan.mpc": False})
    _, action, _ = agent.act(agent.init_state(2), _obs(env), "eval")
    assert action.shape == (2, 1)
    z = agent.model.encode({"vector": torch.as_tensor(_obs(env)["vector"])})
    torch.testing.assert_close(torch.as_tensor(action), agent.model.pi(z).mode)


def test_updates_fit_a_fixed_batch():
    agent, env = _agent("toy:reach")
    batch = random_replay(env, 120).sample(16, 4)
    first = agent.update(batch).metrics
    for _ in range(100):
        last = agent.update(batch).metrics
    assert last["loss/reward"] < 0.8 * first["loss/reward"]
    assert last["loss/value"] < 0.8 * first["loss/value"]
    assert last["loss/consistency"] < 0.1 * first["loss/consistency"]


def test_consistency_loss_gives_no_gradient_to_its_target():
    agent, env = _agent("toy:reach")
    batch = {k: torch.as_tensor(v) for k, v in random_replay(env, 120).sample(8, 4).items()}
    batch["is_first"] = torch.zeros_like(batch["is_first"])
    obs = batch["vector"].clone().requires_grad_(True)
    losses, _, _ = agent.losses({**batch, "vector": obs})
    losses["consistency"].backward()
    assert obs.grad[:, 1:].abs().max() == 0  # targets sg(h(o_{t+1}))
    assert obs.grad[:, 0].abs().max() > 0  # the rollout starts at h(o_0)
    assert all(p.grad is None for p in agent.target_q.parameters())


def test_windows_are_cut_at_episode_starts():
    is_first = torch.tensor([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]], dtype=torch.bool)
    weight, weight_z = rollout_weights(is_first, rho=0.5)
    torch.testing.assert_close(weight, torch.tensor([[1, 0.5, 0.25], [1, 0, 0], [0, 0, 0]]))
    torch.testing.assert_close(
        weight_z, torch.tensor([[1, 0.5, 0.25, 0.125], [1, 0.5, 0, 0], [1, 0, 0, 0]])
    )

    # Whatever follows an episode start inside a window leaves the losses unchanged.
    agent, env = _agent("toy:reach")
    with torch.no_grad():  # non-zero output layers, so that the losses depend on the targets
        agent.model.reward_net[-1].weight.normal_(0, 0.1)
        agent.model.Qs.weight[-1].normal_(0, 0.1)
    batch = {k: torch.as_tensor(v) for k, v in random_replay(env, 120).sample(8, 4).items()}
    batch["is_first"] = torch.zeros_like(batch["is_first"])
    batch["is_first"][0, 2] = True
    changed = {k: v.clone() for k, v in batch.items()}
    changed["vector"][0, 2:] += 3.0
    changed["reward"][0, 2:] -= 5.0
    changed["action"][0, 1:] *= -1
    changed["is_terminal"][0, 2:] = True
    results = []
    for data in (batch, changed):
        torch.manual_seed(1)
        with torch.no_grad():
            results.append(agent.losses(data)[0])
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k])
    changed["reward"][1, 3] += 5.0  # a valid step does count
    torch.manual_seed(1)
    with torch.no_grad():
        assert agent.losses(changed)[0]["reward"] != results[0]["reward"]


def test_longer_windows_are_unfolded():
    agent, env = _agent("toy:reach", **{"run.batch_length": 6})
    data = {k: torch.as_tensor(v) for k, v in random_replay(env, 120).sample(3, 6).items()}
    windows = agent._windows(data)
    assert windows["vector"].shape == (9, 4, 2)
    torch.testing.assert_close(windows["vector"][1], data["vector"][0, 1:5])
    assert np.isfinite(agent.update({k: v.numpy() for k, v in data.items()}).metrics["loss/model"])


def test_heuristic_discount():
    assert heuristic_discount(500, 5, 0.95, 0.995) == pytest.approx(0.99)
    assert heuristic_discount(200, 5, 0.95, 0.995) == pytest.approx(0.975)
    assert heuristic_discount(10, 5, 0.95, 0.995) == 0.95
    assert heuristic_discount(10_000, 5, 0.95, 0.995) == 0.995


@pytest.mark.parametrize("env_id", ["toy:reach", "toy:target"])
def test_save_load_plans_identical_actions(env_id, tmp_path):
    agent, env = _agent(env_id, seed=0)
    agent.update(random_replay(env, 120).sample(8, 4))
    save_checkpoint(tmp_path, {"agent": agent.state_dict()}, step=1, meta={})
    state, _ = load_checkpoint(tmp_path)
    other, _ = _agent(env_id, seed=1)
    other.load_state_dict(state["agent"])
    obs = _obs(env, 3)
    runs = []
    for a in (agent, other):
        torch.manual_seed(7)
        s = a.init_state(3)
        actions = []
        for mode in ("explore", "explore", "eval"):  # the second plan uses the warm start
            s, act, _ = a.act(s, obs, mode)
            actions.append(act)
        runs.append(actions)
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)
    fresh, _ = _agent(env_id, seed=1)
    torch.manual_seed(7)
    _, act, _ = fresh.act(fresh.init_state(3), obs, "explore")
    assert not np.array_equal(act, runs[0][0]) or env.act_space.discrete


def test_cli_trains_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "tdmpc2", "--env", "toy:reach", "--preset", "debug", "--steps", "300"]
    assert main([*args, "--run-dir", str(run), "--no-progress"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["agent"] == "tdmpc2" and cfg["presets"] == ["tdmpc2", "debug"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    for key in ("eval/return_mean", "loss/consistency", "loss/value", "loss/pi", "q_scale"):
        assert key in keys, key
    assert main(["eval", str(run), "--episodes", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["episodes"] == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_id, steps, threshold",
    [("toy:target", 800, 8.0), ("toy:reach", 1500, -4.0)],  # random 2.5 / -12.8, best 10 / -1.16
)
def test_learns_toy_envs_at_default_size(env_id, steps, threshold, tmp_path, capsys):
    """~2 minutes each on one CPU core: default size and planner, 300-500 random steps first."""
    run = tmp_path / "run"
    prefill = "300" if env_id == "toy:target" else "500"
    args = ["train", "tdmpc2", "--env", env_id, "--steps", str(steps), "--run-dir", str(run)]
    sets = ["--set", f"run.prefill={prefill}", "--set", "run.eval_every=0"]
    assert main([*args, *sets, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["return_mean"] >= threshold, result


def test_discount_from_the_env_time_limit(tmp_path):
    # gym:Pendulum-v1 truncates at 200 steps -> gamma = (40 - 1) / 40 = 0.975 (reference
    # heuristic), recorded in config.json; an env without a time limit falls back to 500 -> 0.99.
    info = new_run("tdmpc2", "gym:Pendulum-v1", presets=["debug"], run_dir=tmp_path / "p")
    assert info.config.loss.episode_length == 200
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert saved["config"]["loss"]["episode_length"] == 200
    env = make_env("gym:Pendulum-v1")
    agent = TDMPC2Agent(info.config, env.obs_space, env.act_space)
    assert agent.gamma == pytest.approx(0.975)
    info = new_run("tdmpc2", "toy:reach", presets=["debug"], run_dir=tmp_path / "t")
    assert info.config.loss.episode_length is None
    env = make_env("toy:reach")
    assert TDMPC2Agent(info.config, env.obs_space, env.act_space).gamma == pytest.approx(0.99)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("action_dim", [4, 19, 20, 21])
def test_large_action_spaces_plan_two_more_iterations(action_dim, discrete):
    """Reference `TDMPC2.__init__`: ``cfg.iterations += 2*int(cfg.action_dim >= 20)`` ("Heuristic
    for large action spaces"; in its discrete variant action_dim is the number of actions).
    Counted as the sequence scorings of one plan (one per MPPI iteration), and the config keeps
    the value given (building twice from the same config does not add 4)."""
    env = make_env("toy:reach")
    cfg, _ = build_config("tdmpc2", ["debug"], {"plan.iterations": 3})
    expected = cfg.plan.iterations + 2 * int(action_dim >= 20)
    space = ActionSpace(discrete=discrete, n=action_dim)
    for _ in range(2):
        torch.manual_seed(0)
        agent = TDMPC2Agent(cfg, env.obs_space, space)
        calls: list[torch.Size] = []

        def counted(z, actions, score=agent._score, calls=calls):
            calls.append(actions.shape)
            return score(z, actions)

        agent._score = counted
        agent.act(agent.init_state(2), _obs(env), "explore")
        assert len(calls) == expected, (len(calls), expected)
        assert calls[0][-1] == action_dim
        assert cfg.plan.iterations == 3
