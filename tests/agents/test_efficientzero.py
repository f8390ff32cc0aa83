"""EfficientZero's additions on the MuZero agent: the SimSiam consistency loss (negative cosine,
the observation branch a target without gradient), the value prefix (targets, the LSTM reset at
the horizon in the unroll and in the search, the edge reward as the difference of prefixes on a
hand-worked tree), and one update with both on."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldmodels.agents import build_config
from worldmodels.agents.muzero import MuZeroAgent
from worldmodels.agents.muzero.agent import negative_cosine, value_prefix_targets
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.models.muzero import Inference
from worldmodels.planners import MCTSConfig, RootOutput, muzero_search

EZ = {
    "model.value_prefix": True,
    "model.lstm_hidden": 8,
    "train.consistency": 2.0,
    "model.projection": (16, 12, 8, 12),
}


def _agent(env_id="gym:CartPole-v1", **overrides):
    cfg, _ = build_config("muzero", ["debug"], {**EZ, **overrides})
    env = make_env(env_id)
    return MuZeroAgent(cfg, env.obs_space, env.act_space), env


def test_negative_cosine_against_torch():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    torch.testing.assert_close(negative_cosine(x, y), -F.cosine_similarity(x, y, eps=0))
    torch.testing.assert_close(negative_cosine(x, 3 * x), -torch.ones(5))


def test_consistency_target_branch_gets_no_gradient():
    """The loss's gradient equals the one computed with the observation branch detached by
    hand, and nothing reaches h from the observation branch."""
    torch.manual_seed(0)
    agent, _ = _agent()
    net = agent.net
    B, K = 6, 2
    obs0 = torch.randn(B, 4)
    obs = torch.randn(B, K, 4)
    actions = torch.randint(0, 2, (B, K))

    def loss_and_grads(fn):
        net.zero_grad()
        states = []
        agent.unroll(obs0, actions, states)
        fn(states).sum().backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    ours = loss_and_grads(lambda states: agent._consistency_loss(states, obs))

    def by_hand(states):  # target computed with gradient, then detached, step by step
        out = []
        for k in range(K):
            target = net.project(net.represent(obs[:, k]), False).detach()
            online = net.project(states[k], True)
            out.append(-F.cosine_similarity(online, target, dim=-1, eps=1e-5))
        return torch.stack(out, 1)

    ref = loss_and_grads(by_hand)
    assert ours.keys() == ref.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], ref[name], msg=name)
    # The observation branch alone: nothing reaches its input or h.
    net.zero_grad()
    obs_req = obs.clone().requires_grad_(True)
    states = [x.detach().requires_grad_(True) for x in _states(agent, obs0, actions)]
    agent._consistency_loss(states, obs_req).sum().backward()
    assert obs_req.grad is None
    assert all(p.grad is None for n, p in net.named_parameters() if n.startswith("repr_"))
    assert all(x.grad is not None for x in states)


def _states(agent, obs0, actions):
    states = []
    agent.unroll(obs0, actions, states)
    return states


def test_value_prefix_targets_by_hand():
    u = torch.tensor([[0.0, 1, 2, 3, 4, 5, 6, 7]])  # index 0 unused
    assert value_prefix_targets(u, 5).tolist() == [[0, 1, 3, 6, 10, 15, 6, 13]]
    assert value_prefix_targets(u, 2).tolist() == [[0, 1, 3, 3, 7, 5, 11, 7]]
    assert value_prefix_targets(u, 1).tolist() == u.tolist()


def test_unroll_resets_the_lstm_at_the_horizon():
    """With horizon 2 and K = 4 the prefix logits of steps 3 and 4 are those of an LSTM started
    from zero at step 3; steps 1 and 2 chain the state."""
    torch.manual_seed(1)
    agent, _ = _agent(
        **{"model.lstm_horizon_len": 2, "train.num_unroll_steps": 4, "run.batch_length": 8}
    )
    net = agent.net
    torch.nn.init.normal_(net.reward_head.out.weight)  # the output layer starts at zero
    obs0, actions = torch.randn(3, 4), torch.randint(0, 2, (3, 4))
    with torch.no_grad():
        _, _, reward_logits = agent.unroll(obs0, actions)
        s, state, expect = net.represent(obs0), None, []
        for k in range(4):
            if k == 2:
                state = None  # the reset after step 2
            s, logits, state = net.dynamics(s, actions[:, k], state)
            expect.append(logits)
        s, state = net.represent(obs0), None
        for k in range(3):  # no reset: step 3 differs
            s, chained, state = net.dynamics(s, actions[:, k], state)
    torch.testing.assert_close(reward_logits, torch.stack(expect, 1))
    assert not torch.allclose(chained, expect[2])
    assert reward_logits.shape == (3, 4, 2 * agent.config.model.support_size + 1)


class CountingNet:
    """A stand-in for the network in the search: the LSTM state h counts the steps since the
    last reset, the value prefix is 10 h + a, values 0, uniform priors, hidden = depth."""

    support_size = 0

    def recurrent_inference(self, hidden, action, state):
        h, c = state
        h = h + 1
        prefix = 10 * h[:, 0] + action.double()
        zeros = torch.zeros(hidden.shape[0], 1, dtype=torch.float64)
        return Inference(
            hidden + 1,
            prefix[:, None],
            torch.zeros(hidden.shape[0], 3, dtype=torch.float64),
            zeros,
            (h, c),
        )

    def scalar(self, logits, eps):
        return logits[..., 0]

    def initial_reward_state(self, batch, like):
        z = torch.zeros(batch, 1, dtype=torch.float64)
        return z, z.clone()


def test_search_rewards_are_prefix_differences_with_resets():
    """Hand-worked: along a path a1, a2, a3 with horizon 2 the edge rewards are 10 + a1, then
    (20 + a2) - (10 + a1), then 10 + a3 (the LSTM restarts below depth 2)."""
    agent, _ = _agent(**{"model.lstm_horizon_len": 2})
    agent.net = CountingNet()
    agent.gamma = 1.0
    hidden = torch.zeros(1, 1, dtype=torch.float64)
    root = RootOutput(
        torch.zeros(1, 3, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
        agent._root_node(hidden),
    )
    out = muzero_search(
        root, agent._recurrent_fn, MCTSConfig(num_simulations=40, root_exploration_fraction=0.0)
    )
    tree = out.tree
    checked = {1: 0, 2: 0, 3: 0}
    for node in range(1, 41):
        path, n = [], node
        while tree.parents[0, n] >= 0:
            path.append(int(tree.action_from_parent[0, n]))
            n = int(tree.parents[0, n])
        path.reverse()
        depth = len(path)
        parent = int(tree.parents[0, node])
        reward = float(tree.children_rewards[0, parent, path[-1]])
        if depth == 1:
            expect = 10 + path[0]
        elif depth == 2:
            expect = (20 + path[1]) - (10 + path[0])
        elif depth == 3:
            expect = 10 + path[2]
        else:
            continue
        assert reward == pytest.approx(expect), (path, reward)
        checked[depth] += 1
        assert int(tree.embeddings["depth"][0, node]) == depth
    assert min(checked.values()) > 0, checked


def test_update_with_both_additions():
    torch.manual_seed(0)
    agent, env = _agent(**{"optim.weight_decay": 0.0})  # only gradients move the weights
    torch.nn.init.normal_(agent.net.reward_head.out.weight)  # zero-initialised: no gradient
    from worldmodels.envs.vector import VectorEnv
    from worldmodels.replay import ReplayBuffer

    venv = VectorEnv([lambda i=i: make_env("gym:CartPole-v1", seed=i) for i in range(2)])
    rb = ReplayBuffer(10_000, chunk_size=16, seed=0)
    obs, state = venv.reset(seed=0), agent.init_state(2)
    for _ in range(30):
        state, action, info = agent.act(state, obs, "explore")
        rb.add_batch({**obs, **info, "action": action})
        obs = venv.step(action)
    batch = rb.sample(4, agent.config.run.batch_length)
    before = {n: p.detach().clone() for n, p in agent.net.named_parameters()}
    metrics = agent.update(batch).metrics
    assert np.isfinite(metrics["loss/consistency"]) and -1 <= metrics["loss/consistency"] <= 1
    changed = {n for n, p in agent.net.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("reward_lstm") for n in changed)
    assert any(n.startswith("projection") for n in changed)
    assert any(n.startswith("prediction_head") for n in changed)


def test_off_policy_horizon_schedule_by_hand():
    """clip(5 - age // (0.3 x 50k), 1, 5) with the age in env steps (the reference's formula):
    15k steps of age cost one step of horizon."""
    agent, _ = _agent(
        **{
            "train.off_policy_correction": True,
            "train.td_steps": 5,
            "run.batch_length": 11,
            "run.steps": 50_000,
        }
    )
    # Before set_progress the newest sampled step is the clock.
    early = {"env_step": torch.tensor([[0] * 11, [15_000] * 11, [30_000] * 11])}
    assert agent.td_steps(early).tolist() == [3, 4, 5]
    agent.set_progress(100_000)
    ages = torch.tensor([0, 14_999, 15_000, 29_999, 30_000, 59_999, 60_000, 100_000])
    data = {"env_step": (100_000 - ages)[:, None].expand(-1, 11)}
    assert agent.td_steps(data).tolist() == [5, 5, 4, 4, 3, 2, 1, 1]
    agent.config.train.off_policy_correction = False
    assert agent.td_steps(data) == 5


def test_off_policy_correction_in_a_run(tmp_path):
    """The loop tells the agent its env steps, so old windows get shorter horizons."""
    from worldmodels.cli import main

    run = tmp_path / "run"
    args = [
        "train",
        "efficientzero",
        "--env",
        "gym:CartPole-v1",
        "--preset",
        "debug",
        "--steps",
        "160",
        "--run-dir",
        str(run),
        "--no-progress",
        "--set",
        "train.off_policy_correction=true",
        "--set",
        "train.td_steps=3",
        "--set",
        "run.batch_length=9",
        "--set",
        "model.lstm_hidden=8",
        "--set",
        "model.projection=[16,12,8,12]",
    ]
    assert main(args) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    td = [r["value/td_steps"] for r in rows if "value/td_steps" in r]
    assert td and 1 <= min(td) and max(td) <= 3 and min(td) < 3


def test_search_prefixes_equal_the_unroll_on_the_real_network():
    """Every node's value prefix in a search equals the unroll's along the node's path (the
    same resets, H = 2), with non-zero heads."""
    torch.manual_seed(3)
    agent, _ = _agent(**{"model.lstm_horizon_len": 2})
    net = agent.net
    torch.nn.init.normal_(net.reward_head.out.weight)
    obs = torch.randn(1, 4)
    with torch.no_grad():
        out = agent.search(obs, torch.ones(1, 2, dtype=torch.bool), explore=False)
    tree, checked = out.tree, 0
    for node in range(1, tree.parents.shape[1]):
        path, n = [], node
        while tree.parents[0, n] >= 0:
            path.append(int(tree.action_from_parent[0, n]))
            n = int(tree.parents[0, n])
        path.reverse()
        with torch.no_grad():
            _, _, reward_logits = agent.unroll(obs, torch.tensor([path]))
        prefix = net.scalar(reward_logits[:, -1], agent.config.model.h_eps)
        torch.testing.assert_close(tree.embeddings["prefix"][0, node], prefix[0])
        checked += len(path) >= 3
    assert checked > 0  # some path crossed a reset


def test_batched_reanalysis_equals_roots_searched_one_by_one():
    """The reanalysed policies and values of a batch (no root noise) are those of each root
    searched alone, with the target network when asked; only the unrolled positions are
    searched when bootstraps come from the target network."""
    torch.manual_seed(0)
    agent, _ = _agent(
        **{
            "train.reanalyse_ratio": 0.5,
            "train.value_bootstrap": "target",
            "train.reanalyse_network": "target",
            "train.num_unroll_steps": 2,
            "run.batch_length": 6,
        }
    )
    for p in agent.target_net.parameters():  # a target that differs from the online network
        p.data.add_(0.3 * torch.randn_like(p))
    B, L, A = 4, 6, 2
    obs = torch.randn(B, L, 4)
    policy = torch.full((B, L, A), -1.0)
    root_value = torch.full((B, L), -7.0)
    agent._reanalyse({"vector": obs}, policy, root_value)
    legal = torch.ones(1, A, dtype=torch.bool)
    for b in range(B):
        for t in range(L):
            if b < 2 and t < 3:  # ceil(0.5 * 4) rows, K + 1 positions
                one = agent.search(obs[b, t][None], legal, explore=False, net=agent.target_net)
                torch.testing.assert_close(policy[b, t], one.action_weights[0].float())
                torch.testing.assert_close(root_value[b, t], one.root_value[0].float())
            else:
                assert (policy[b, t] == -1).all() and root_value[b, t] == -7
    online = agent.search(obs[0, 0][None], legal, explore=False)
    assert not torch.allclose(online.root_value[0].float(), root_value[0, 0])


def test_reanalysis_with_the_target_needs_a_target_network():
    with pytest.raises(UserError, match="reanalyse_network"):
        _agent(**{"train.reanalyse_network": "target", "train.value_bootstrap": "search"})


def test_atari100k_preset_runs_at_debug_size(tmp_path):
    """The `efficientzero_atari100k` protocol end to end at debug size: 96 x 96 RGB with 4 frames
    stacked, lives and clipped rewards in training envs only, whole unclipped games in
    evaluation."""
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from worldmodels.cli import main
    from worldmodels.train.run import load_run, make_envs

    cfg, _ = build_config("efficientzero", ["efficientzero_atari100k"])
    assert cfg.run.action_repeat == 4 and cfg.run.eval_episodes == 32
    assert cfg.train.discount == pytest.approx(0.997**4)
    run = tmp_path / "run"
    shrink = ["model.lstm_hidden=8", "model.projection=[16,12,8,12]", "run.batch_size=2"]
    shrink += ["run.eval_env_options=episodic_life=false,clip_rewards=false,max_frames=400"]
    args = ["train", "efficientzero", "--env", "atari:breakout", "--run-dir", str(run)]
    args += ["--preset", "efficientzero_atari100k", "--preset", "debug", "--steps", "80"]
    args += ["--no-progress", *[a for s in shrink for a in ("--set", s)]]
    assert main(args) == 0
    info = load_run(run)
    train, evaluation = make_envs(info, 1)
    try:
        env, eval_env = train._envs[0], evaluation._envs[0]
        assert env.obs_space["image"].shape == (96, 96, 12)
        assert env._episodic_life and env._clip_rewards and env._repeat == 4
        assert not eval_env._episodic_life and not eval_env._clip_rewards
        assert eval_env._max_frames == 400 and env._max_frames == 12_000
    finally:
        train.close()
        evaluation.close()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/return_mean" in r for r in rows)
