"""Dreamer's actor objective against the references, written out here from the papers' and the
reference code's formulas (not from the agent): the actor's input carries no gradient while
imagining, V3's dynamics objective subtracts the critic baseline, REINFORCE scores the raw
sample that the model receives clipped, and V2's ``mix`` weights the dynamics objective."""

import copy

import pytest
import torch

from worldmodels.agents import build_config
from worldmodels.agents.dreamer import DreamerAgent
from worldmodels.envs import make_env
from worldmodels.math import discount_weights, lambda_return


def _agent(env_id="toy:reach", presets=("debug",), **behavior):
    torch.manual_seed(0)
    env = make_env(env_id)
    cfg, _ = build_config("dreamer", list(presets))
    for k, v in behavior.items():
        setattr(cfg.behavior, k, v)
    cfg.optim.ac_clip = 1e9  # keep the raw gradients comparable
    agent = DreamerAgent(cfg, env.obs_space, env.act_space)
    with torch.no_grad():  # reward and critic start at zero output (outscale 0): wake them up
        for p in [*agent.wm.reward.parameters(), *agent.critic.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    return agent


def _start(agent, n=8):
    g = torch.Generator().manual_seed(1)
    start = agent.wm.rssm.initial(n)
    start["deter"] = torch.randn(start["deter"].shape, generator=g)
    return start


def test_actor_input_carries_no_gradient_while_imagining():
    """V1 ``self._actor(tf.stop_gradient(feat))``, V2 and V3 ``self.actor(sg(s))``."""
    agent = _agent(actor_grad="dynamics")
    seen = []
    raw = agent.actor.raw

    def spy(feat, *a, **kw):
        seen.append(feat.requires_grad)
        return raw(feat, *a, **kw)

    agent.actor.raw = spy
    for p in agent.wm.parameters():
        p.requires_grad_(False)
    feat, _, outputs = agent._imagine(_start(agent), 5, grad=True)
    assert feat.requires_grad  # the rollout itself is differentiable through the actions
    assert outputs.requires_grad  # the actor's own pass, which its loss reuses
    assert len(seen) == 5 and not any(seen)


def test_imagined_actions_are_raw_samples_and_the_model_gets_them_clipped():
    agent = _agent(actor_grad="reinforce")
    given = []
    img_step = agent.wm.rssm.img_step

    def spy(state, action):
        given.append(action.detach())
        return img_step(state, action)

    agent.wm.rssm.img_step = spy
    torch.manual_seed(2)
    _, actions, _ = agent._imagine(_start(agent, 64), 15, grad=False)
    given = torch.cat(given)
    assert actions.abs().max() > 1.0  # the raw samples REINFORCE scores
    assert given.abs().max() <= 1.0
    torch.testing.assert_close(given, actions.transpose(0, 1).reshape(-1, 1).clamp(-1, 1))


def _actor_step(agent, seed=3):
    """Run the agent's behaviour step with the optimisers stepped off; returns its actor loss
    and the actor's gradients."""
    agent.actor_opt.step = lambda *a, **k: None
    agent.critic_opt.step = lambda *a, **k: None
    torch.manual_seed(seed)
    metrics = agent._train_behavior(_start(agent), torch.ones(8))
    grads = [p.grad.clone() for p in agent.actor.parameters()]
    return metrics["loss/actor"], grads


def _reference_v3_dynamics_loss(agent, seed=3):
    """DreamerV3 2023 reference (ImagActorCritic.loss, grad=backprop), from its formulas:
    normed_ret = (R - lo) / S, normed_base = (v(s_t) - lo) / S with S = max(1, hi - lo) after
    the percentile update, adv = normed_ret - normed_base (v keeps its gradient through s_t),
    loss = -mean(w_t (adv_t + eta H[pi(.|s_t)])), w_t = prod_{k<t} gamma c_k."""
    b = agent.config.behavior
    retnorm = copy.deepcopy(agent.retnorm)
    for p in agent.wm.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    feat, action, _ = agent._imagine(_start(agent), b.horizon, grad=True)
    after = feat[:, 1:]
    reward = agent.wm.reward(after).pred()
    cont = agent.wm.cont(after).pred()
    value = agent.critic(feat).pred()
    ret = lambda_return(reward, cont, value, b.gamma, b.lam)
    retnorm.update(ret.detach())
    lo, scale = retnorm.offset(), retnorm.scale()
    adv = (ret - lo) / scale - (value[:, :-1] - lo) / scale
    weight = discount_weights(b.gamma * cont, 1.0).detach()[:, :-1]
    entropy = agent.actor(feat[:, :-1].detach()).entropy()
    loss = -(weight * (adv + agent.entropy_scale * entropy)).mean()
    agent.actor.zero_grad()
    loss.backward()
    for p in agent.wm.parameters():
        p.requires_grad_(True)
    return loss.detach(), [p.grad.clone() for p in agent.actor.parameters()]


def test_v3_dynamics_objective_subtracts_the_critic_baseline():
    agent = _agent(actor_grad="dynamics")
    ref_loss, ref_grads = _reference_v3_dynamics_loss(copy.deepcopy(agent))
    loss, grads = _actor_step(agent)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mix, same_as", [(1.0, "dynamics"), (0.0, "reinforce")])
def test_v2_mix_weights_the_dynamics_objective(mix, same_as):
    """dreamerv2/agent.py ``actor_grad: both``: objective = mix * target + (1 - mix) *
    reinforce, so mix 1 is pure dynamics and mix 0 pure REINFORCE."""
    mixed = _agent(actor_grad="mix", actor_grad_mix=mix)
    pure = _agent(actor_grad=same_as)
    loss_mixed, grads_mixed = _actor_step(mixed)
    loss_pure, grads_pure = _actor_step(pure)
    torch.testing.assert_close(loss_mixed, loss_pure)
    for a, b in zip(grads_mixed, grads_pure):
        torch.testing.assert_close(a, b)


def test_v1_and_v2_presets_keep_the_plain_return_objective():
    for preset in ("dreamerv1", "dreamerv2"):
        cfg, _ = build_config(preset)
        assert cfg.behavior.dynamics_baseline is False
    cfg, _ = build_config("dreamerv3")
    assert cfg.behavior.dynamics_baseline is True and cfg.behavior.retnorm_debias is False
