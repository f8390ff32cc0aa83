"""DreamerV3 at debug size: builds, acts and updates on each observation/action kind; save ->
load gives identical actions."""

import warnings

import numpy as np
import pytest
import torch

from worldmodels.agents import build_config
from worldmodels.agents.dreamer import DreamerAgent
from worldmodels.checkpoint import (
    flatten_state,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from worldmodels.envs import make_env
from worldmodels.replay import random_replay


@pytest.mark.parametrize(
    "env_id,overrides",
    [
        ("toy:target", {}),
        ("toy:reach", {}),  # REINFORCE (Nature 2025, the default for continuous actions)
        ("toy:reach", {"behavior.actor_grad_cont": "dynamics"}),  # the 2023 reference's
        ("toy:image_target", {}),
    ],
)
def test_build_act_update(env_id, overrides):
    torch.manual_seed(0)
    env = make_env(env_id)
    cfg, _ = build_config("dreamerv3", ["debug"], overrides)
    agent = DreamerAgent(cfg, env.obs_space, env.act_space)
    rng = np.random.default_rng(0)
    obs = {k: np.stack([v, v]) for k, v in env.reset(seed=0).items()}
    state = agent.init_state(2)
    state, action, _ = agent.act(state, obs, "explore")
    assert action.shape == (2, *env.act_space.shape)
    if env.act_space.discrete:
        assert action.dtype == np.int64 and ((0 <= action) & (action < env.act_space.n)).all()
    else:
        assert np.all(np.abs(action) <= 1.0)
    rb = random_replay(env, 200, rng)
    before = [p.clone() for p in agent.wm.parameters()]
    metrics = agent.update(rb.sample(cfg.run.batch_size, cfg.run.batch_length)).metrics
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    keys = ("loss/reward", "loss/cont", "loss/dyn", "loss/rep", "loss/actor", "loss/critic")
    for key in (*keys, "loss/repval"):  # repval: the Nature 2025 replayed value loss
        assert key in metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.wm.parameters()))


def test_dynamics_gradient_actor_updates():
    env = make_env("toy:reach")
    cfg, _ = build_config("dreamer", ["dreamerv3_2023", "debug"])
    agent = DreamerAgent(cfg, env.obs_space, env.act_space)
    assert agent.actor_grad == "dynamics"
    rb = random_replay(env, 100, np.random.default_rng(1))
    wm_before = [p.clone() for p in agent.wm.parameters()]
    actor_before = [p.clone() for p in agent.actor.parameters()]
    start = {k: v[:8] for k, v in agent.wm.rssm.initial(8).items()}
    agent._train_behavior(start, torch.ones(8))
    assert all(torch.equal(a, b) for a, b in zip(wm_before, agent.wm.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    assert np.isfinite(agent.update(rb.sample(4, 8)).metrics["loss/actor"])


def test_save_load_identical_actions():
    env = make_env("toy:target")
    cfg, _ = build_config("dreamerv3", ["debug"])
    torch.manual_seed(0)
    a = DreamerAgent(cfg, env.obs_space, env.act_space)
    rb = random_replay(env, 100, np.random.default_rng(0))
    a.update(rb.sample(4, 8))
    tensors, skeleton = flatten_state(a.state_dict())
    torch.manual_seed(123)
    b = DreamerAgent(cfg, env.obs_space, env.act_space)
    b.load_state_dict(unflatten_state(tensors, skeleton))
    obs = env.reset(seed=4)
    batch = {k: np.stack([v]) for k, v in obs.items()}
    for mode in ("eval", "explore"):
        torch.manual_seed(7)
        _, act_a, _ = a.act(a.init_state(1), batch, mode)
        torch.manual_seed(7)
        _, act_b, _ = b.act(b.init_state(1), batch, mode)
        np.testing.assert_array_equal(act_a, act_b)
    # and the next update is identical too (optimiser state restored)
    torch.manual_seed(9)
    batch = rb.sample(4, 8)
    torch.manual_seed(9)
    ma = a.update(batch).metrics
    torch.manual_seed(9)
    mb = b.update(batch).metrics
    assert ma["loss/model"] == pytest.approx(mb["loss/model"], rel=1e-5)


def test_python_api_make_agent_and_load(tmp_path):
    import worldmodels
    from worldmodels.cli import main

    agent = worldmodels.make_agent("dreamerv3", env="toy:target", presets=["debug"], device="cpu")
    assert agent.act_space.n == 4
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "dreamerv3",
                "--env",
                "toy:target",
                "--steps",
                "150",
                "--preset",
                "debug",
                "--run-dir",
                str(run),
                "--no-progress",
            ]
        )
        == 0
    )
    loaded = worldmodels.Agent.load(str(run), device="cpu")
    obs = {k: np.stack([v]) for k, v in make_env("toy:target").reset(seed=0).items()}
    _, action, _ = loaded.act(loaded.init_state(1), obs, mode="eval")
    assert action.shape == (1,)


@pytest.mark.parametrize(
    "env_id,presets", [("toy:target", []), ("toy:reach", ["dreamerv3_2023"])]
)  # REINFORCE on discrete actions; dynamics gradients through the compiled step
def test_compiled_update_matches_eager(env_id, presets):
    """compile=true (torch.compile of the posterior, imagination and head steps) computes
    the same update as eager: same seed, same losses and gradient norms (to float tolerance;
    weights after Adam's first step are not compared: it amplifies float noise in tiny grads)."""
    env = make_env(env_id)
    rb = random_replay(env, 200, np.random.default_rng(0))
    batch = rb.sample(4, 8)
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        # float32: compiled and eager bf16 round differently (fused casts), which would hide
        # a real mismatch inside bf16's noise.
        overrides = {"compile": compiled, "precision": "fp32"}
        cfg, _ = build_config("dreamerv3", [*presets, "debug"], overrides)
        agent = DreamerAgent(cfg, env.obs_space, env.act_space)
        # The reward and critic output layers start at zero, which makes the first actor
        # gradient ~1e-4 (float noise); give them the same random weights in both agents.
        gen = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for p in [*agent.wm.reward.parameters(), *agent.critic.parameters()]:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a compile fallback would warn
            metrics = agent.update(batch).metrics
        assert agent._obs_step.active == compiled and agent._imag_step.active == compiled
        results.append(metrics)
    m_eager, m_comp = results
    keys = ["loss/model", "loss/dyn", "loss/actor", "loss/critic", "imag_return"]
    keys += ["grad/model", "grad/actor", "grad/critic"]  # gradient norms before clipping
    for key in keys:
        assert m_comp[key] == pytest.approx(m_eager[key], rel=1e-3, abs=1e-5), key


def test_repval_trains_critic_on_replayed_returns():
    # Same weights, same batch, same imagination noise: the replayed loss changes the critic's
    # gradient only when it is on.
    env = make_env("toy:target")
    rb = random_replay(env, 100, np.random.default_rng(0))
    batch = rb.sample(4, 8)
    grads = {}
    for weight in (0.0, 0.3):
        torch.manual_seed(0)
        cfg, _ = build_config("dreamerv3", ["debug"], {"behavior.repval": weight})
        agent = DreamerAgent(cfg, env.obs_space, env.act_space)
        torch.manual_seed(1)
        metrics = agent.update(batch).metrics
        grads[weight] = metrics["grad/critic"]
        assert ("loss/repval" in metrics) == (weight > 0)
    assert grads[0.3] != grads[0.0]


def test_laprop_optimizer_updates_and_round_trips(tmp_path):
    # Through a checkpoint on disk: the next update after loading matches the original's.
    env = make_env("toy:target")
    cfg, _ = build_config("dreamerv3", ["debug"], {"optim.optimizer": "laprop", "optim.warmup": 0})
    torch.manual_seed(0)
    a = DreamerAgent(cfg, env.obs_space, env.act_space)
    assert type(a.model_opt).__name__ == "LaPropAGC"
    rb = random_replay(env, 100, np.random.default_rng(0))
    before = [p.clone() for p in a.wm.parameters()]
    metrics = a.update(rb.sample(4, 8)).metrics
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert any(not torch.equal(x, y) for x, y in zip(before, a.wm.parameters()))
    save_checkpoint(tmp_path, {"agent": a.state_dict()}, step=1, meta={})
    b = DreamerAgent(cfg, env.obs_space, env.act_space)
    b.load_state_dict(load_checkpoint(tmp_path)[0]["agent"])
    batch = rb.sample(4, 8)
    torch.manual_seed(3)
    ma = a.update(batch).metrics
    torch.manual_seed(3)
    mb = b.update(batch).metrics
    assert ma["loss/model"] == pytest.approx(mb["loss/model"])
    for x, y in zip(a.wm.parameters(), b.wm.parameters()):
        torch.testing.assert_close(x, y)


def test_open_loop_report_observes_context_then_imagines():
    """Up to ``context`` the report decodes the posterior of the full-window filter (later
    observations cannot change it); after it, the prior rolled by hand with the same noise."""
    from worldmodels.agents import build_config
    from worldmodels.envs import make_env
    from worldmodels.models.dreamer import WorldModel

    cfg, _ = build_config("dreamerv3", ["debug"])
    env = make_env("toy:target")
    torch.manual_seed(0)
    wm = WorldModel(cfg.model, env.obs_space, env.act_space.n)
    rb = random_replay(env, 60)
    batch = {k: torch.as_tensor(v) for k, v in rb.sample(2, 8).items()}
    action = torch.nn.functional.one_hot(batch["action"].long(), env.act_space.n).float()
    context = 3
    torch.manual_seed(1)
    report = wm.report(batch, action, context)
    # By hand: filter the context, then img_step with the recorded a_{t-1}, same seed
    torch.manual_seed(1)
    prev = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
    with torch.no_grad():
        obs = {"vector": batch["vector"][:, :context]}
        post, _ = wm.rssm.observe(wm.encode(obs), prev[:, :context], batch["is_first"][:, :context])
        state = {"deter": post["deter"][:, -1], "stoch": post["stoch"][:, -1]}
        preds = [wm.vec_dec(wm.rssm.feat(post)).pred()]
        for t in range(context, 8):
            state = wm.rssm.img_step(state, prev[:, t])
            preds.append(wm.vec_dec(wm.rssm.feat(state)).pred()[:, None])
        expected = torch.cat(preds, 1).numpy()
        torch.manual_seed(1)  # the same posterior noise for the first steps
        full, _ = wm.rssm.observe(wm.encode({"vector": batch["vector"]}), prev, batch["is_first"])
        posterior = wm.vec_dec(wm.rssm.feat(full)).pred()[:, :context].numpy()
    np.testing.assert_allclose(report["vector/model"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(report["vector/model"][:, :context], posterior, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(report["vector/real"], batch["vector"].numpy())


def test_imagined_values_are_the_online_critic_on_every_imagined_state(monkeypatch):
    """The REINFORCE update takes the values of s_0..s_{H-1} from the critic's pass that its loss
    uses (one pass, not two) and the last state's from the heads: together they must equal the
    online critic, before its step, applied to all H+1 imagined states."""
    import copy

    import worldmodels.agents.dreamer.agent as mod

    env = make_env("toy:target")
    torch.manual_seed(0)
    cfg, _ = build_config("dreamerv3", ["debug"])
    agent = DreamerAgent(cfg, env.obs_space, env.act_space)
    with torch.no_grad():  # the critic's output layer starts at zero: give it weights
        for p in agent.critic.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    critic = copy.deepcopy(agent.critic)
    seen = {}
    imagine, lam = agent._imagine, mod.lambda_return

    def spy_imagine(*args, **kwargs):
        out = imagine(*args, **kwargs)
        seen["feat"] = out[0]
        return out

    def spy_lambda(reward, cont, value, *args):
        seen["value"] = value
        return lam(reward, cont, value, *args)

    monkeypatch.setattr(agent, "_imagine", spy_imagine)
    monkeypatch.setattr(mod, "lambda_return", spy_lambda)
    start = agent.wm.rssm.initial(6)
    start["stoch"] = torch.nn.functional.one_hot(torch.randint(0, 4, (6, 4)), 4).float()
    start["deter"] = torch.randn(6, agent.wm.rssm.deter)
    agent._train_behavior(start, torch.ones(6))
    with torch.no_grad():
        want = critic(seen["feat"]).pred()
    assert seen["value"].shape == want.shape == (6, cfg.behavior.horizon + 1)
    torch.testing.assert_close(seen["value"], want)
