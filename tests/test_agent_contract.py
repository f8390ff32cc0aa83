"""Every registered agent against the contract of worldmodels.core.agent: build at debug size on
an env it can use, act, update, save, load, same action under a fixed seed, resume continues the
counters. A new agent that registers is tested here without a line of its own."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from worldmodels.agents import AGENTS, build_config, get_agent_spec
from worldmodels.core import Agent, AgentBase, Reporter, Step, Traits, Update
from worldmodels.envs import make_env
from worldmodels.envs.vector import VectorEnv
from worldmodels.replay import ReplayBuffer

ENV_FOR_FAMILY = {"planet": "toy:reach", "tdmpc2": "toy:reach", "worldmodels": "toy:image_target"}
"""An env each agent family can use (discrete toy:target otherwise)."""


def _env_id(name: str) -> str:
    return ENV_FOR_FAMILY.get(get_agent_spec(name).family, "toy:target")


def _build(name: str, seed: int = 0):
    cfg, _ = build_config(name, ["debug"])
    env = make_env(_env_id(name), seed=seed)
    cls = get_agent_spec(name).load()[2]
    cls.prepare(cfg, env)
    torch.manual_seed(seed)
    return cls(cfg, env.obs_space, env.act_space, "cpu"), env, cfg


def _replay(agent, env_id: str, steps: int = 64) -> ReplayBuffer:
    venv = VectorEnv([lambda: make_env(env_id, seed=0)])
    rb = ReplayBuffer(10_000, chunk_size=32, seed=0)
    obs, state = venv.reset(seed=0), agent.init_state(1)
    for t in range(steps):
        state, action, extras = agent.act(state, obs, "explore")
        # as the loop's Collector writes it: the env step each step was stored at
        rb.add_batch({**obs, **extras, "action": action, "env_step": np.full(1, t, np.int64)})
        obs = venv.step(action)
    venv.close()
    return rb


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_agent_contract(name):
    agent, env, cfg = _build(name)
    assert isinstance(agent, Agent) and isinstance(agent, AgentBase)
    assert isinstance(agent.traits, Traits)
    # act: a typed step, actions of the env's space for every env
    obs = {k: np.stack([np.asarray(v)] * 2) for k, v in env.reset(seed=1).items()}
    step = agent.act(agent.init_state(2), obs, "explore")
    assert isinstance(step, Step)
    assert step.action.shape == (2, *env.act_space.shape)
    assert step.action.dtype == env.act_space.dtype
    assert all(np.asarray(v).shape[0] == 2 for v in step.extras.values())
    # update: typed metrics; the batch is not written into
    rb = _replay(agent, _env_id(name))
    s = agent.traits.sampling
    batch = rb.sample(4, cfg.run.batch_length, s.priority_alpha, s.priority_beta)
    keys = {k: v.copy() for k, v in batch.items()}
    if not agent.traits.stages:  # staged agents train in their stages, not by updates
        out = agent.update(batch)
        assert isinstance(out, Update) and out.metrics
        assert all(isinstance(v, float) and np.isfinite(v) for v in out.metrics.values())
        assert batch.keys() == keys.keys()
        assert all(np.array_equal(batch[k], keys[k]) for k in keys)
        if s.prioritized:
            assert out.priorities.shape == (4,) and (out.priorities > 0).all()
            rb.update_priorities(batch["index"], out.priorities)
    # report: open-loop predictions next to the truth (a latent probe without a decoder)
    if isinstance(agent, Reporter):
        report = agent.report(batch, context=3)
        T = cfg.run.batch_length
        if "latent/distance" in report:
            dist = report["latent/distance"]
            assert report.keys() == {"latent/distance"} and dist.shape == (4, T)
            assert np.isfinite(dist).all() and (dist >= 0).all() and not dist[:, :3].any()
        else:
            for kind in {k.split("/")[0] for k in report}:
                real, model, error = (report[f"{kind}/{x}"] for x in ("real", "model", "error"))
                assert real.shape == model.shape == error.shape and real.shape[:2] == (4, T)
                np.testing.assert_allclose(error, np.abs(real.astype(float) - model), atol=1)
            if "vector" in agent.obs_space:
                np.testing.assert_array_equal(report["vector/real"], batch["vector"])
    # save -> load -> the same greedy action under a fixed seed
    loaded, _, _ = _build(name, seed=1)
    loaded.load_state_dict(agent.state_dict())
    actions = []
    for a in (agent, loaded):
        torch.manual_seed(7)
        actions.append(a.act(a.init_state(2), obs, "eval").action)
    np.testing.assert_array_equal(actions[0], actions[1])


@pytest.mark.parametrize("name", ["dreamerv3", "muzero", "planet", "tdmpc2"])
def test_resume_continues_counters(tmp_path, name):
    """A run stopped after its first checkpoint resumes at the same env step and update count."""
    from worldmodels.train.loop import Trainer
    from worldmodels.train.run import load_run, new_run

    over = {"run.eval_every": 0, "run.prefill": 32}
    info = new_run(
        name,
        _env_id(name),
        presets=["debug"],
        overrides={**over, "run.steps": 64},
        run_dir=tmp_path / "r",
    )
    Trainer(info, progress=False).train()
    first = json.loads((tmp_path / "r" / "checkpoints" / "latest.json").read_text())
    info = load_run(tmp_path / "r")
    info.config.run.steps = 96
    trainer = Trainer(info, resume=True, progress=False)
    assert trainer.c.env_steps == 64 and trainer.c.updates > 0
    updates = trainer.c.updates
    trainer.train()
    assert trainer.c.env_steps == 96 and trainer.c.updates > updates
    assert first["step"] == 64


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_nonfinite_update_is_skipped(name):
    """A NaN reward makes a loss non-finite: the metrics say so, the optimiser steps whose
    gradient is not finite are skipped, and no parameter or optimiser state becomes NaN."""
    agent, env, cfg = _build(name)
    if agent.traits.stages:
        pytest.skip("staged agents are not updated by the loop (their stages train them)")
    rb = _replay(agent, _env_id(name))
    s = agent.traits.sampling
    batch = rb.sample(4, cfg.run.batch_length, s.priority_alpha, s.priority_beta)
    batch["reward"] = np.full_like(batch["reward"], np.nan)
    out = agent.update(batch)
    assert not all(np.isfinite(v) for v in out.metrics.values())
    bad = [k for k, v in _tensors(agent.state_dict()).items() if not torch.isfinite(v).all()]
    assert not bad, f"non-finite state after a skipped update: {bad[:3]}"


def test_step_if_finite_skips_nan_gradients():
    from worldmodels.nn.optim import step_if_finite

    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([w], lr=0.1)
    (w * torch.tensor([1.0, float("nan")])).sum().backward()
    step_if_finite(opt, torch.nn.utils.clip_grad_norm_([w], 1.0))
    assert torch.equal(w.detach(), torch.ones(2)) and not opt.state
    opt.zero_grad()
    w.sum().backward()
    step_if_finite(opt, torch.nn.utils.clip_grad_norm_([w], 1.0))
    assert (w.detach() < 1).all()


def _tensors(d, prefix=""):
    """The float tensors of a nested state dict, by dotted key."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_tensors(v, f"{prefix}{k}."))
        elif torch.is_tensor(v) and v.is_floating_point():
            out[prefix + str(k)] = v
    return out


def test_many_nonfinite_updates_save_and_stop(tmp_path, monkeypatch, capsys):
    """After MAX_NONFINITE non-finite updates in a row the run saves and stops in one line."""
    import worldmodels.train.loop as loop
    from worldmodels.agents.dreamer import DreamerAgent
    from worldmodels.cli import main

    monkeypatch.setattr(loop, "MAX_NONFINITE", 3)
    monkeypatch.setattr(DreamerAgent, "update", lambda self, batch: Update({"loss": np.nan}))
    run = tmp_path / "r"
    rc = main(
        ["train", "dreamerv3", "--env", "toy:target", "--preset", "debug", "--steps", "400",
         "--set", "run.prefill=64", "--set", "run.eval_every=0", "--run-dir", str(run),
         "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert "3 updates in a row had a non-finite loss or gradient" in err[-1]
    assert (run / "checkpoints" / "latest.json").exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("loss" not in r for r in rows)  # non-finite metrics are not logged
