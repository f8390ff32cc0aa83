"""Dreamer V1/V2/V3 as presets of one agent: each builds, acts and updates; the axis pieces
(KL handling, Gaussian latent, tanh-Gaussian actor, critic targets) against independent
computations; nonsense combinations are refused with one line."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from worldmodels.agents import build_config
from worldmodels.agents.dreamer import DreamerAgent
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.math import TanhNormal, categorical_kl, gaussian_kl
from worldmodels.models import RSSM
from worldmodels.models.dreamer import kl_loss
from worldmodels.replay import random_replay


@pytest.mark.parametrize("agent", ["dreamerv1", "dreamerv2", "dreamerv3"])
@pytest.mark.parametrize("env_id", ["toy:target", "toy:reach"])
def test_preset_builds_acts_updates(agent, env_id):
    torch.manual_seed(0)
    env = make_env(env_id)
    cfg, names = build_config(agent, ["debug"])
    same, _ = build_config("dreamer", [agent, "debug"])
    assert cfg == same  # `train dreamerv1` is `train dreamer --preset dreamerv1`
    ag = DreamerAgent(cfg, env.obs_space, env.act_space)
    obs = {k: np.stack([v, v]) for k, v in env.reset(seed=0).items()}
    state, action, _ = ag.act(ag.init_state(2), obs, "explore")
    assert action.shape == (2, *env.act_space.shape)
    before = [p.clone() for p in ag.actor.parameters()]
    metrics = ag.update(random_replay(env, 100).sample(4, 8)).metrics
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, ag.actor.parameters()))


def test_preset_axes_values():
    v1, _ = build_config("dreamerv1")
    v2, _ = build_config("dreamerv2")
    v3, _ = build_config("dreamerv3")
    assert (v1.model.latent, v1.model.kl, v1.model.stoch, v1.model.deter) == (
        "gaussian",
        "elbo",
        30,
        200,
    )
    assert (v1.behavior.actor_grad, v1.behavior.actor_dist_cont) == ("dynamics", "tanh_normal")
    assert (v2.model.latent, v2.model.kl, v2.model.kl_alpha) == ("categorical", "balanced", 0.8)
    assert (v2.model.stoch, v2.model.classes, v2.behavior.critic_target) == (32, 32, "hard")
    assert (v3.model.kl, v3.behavior.retnorm, v3.behavior.critic_head) == (
        "dyn_rep",
        "percentile",
        "symexp_twohot",
    )


def test_dreamerv2_sizes_follow_the_reference_domain_configs():
    """configs.yaml: atari (images) deter 600, gamma 0.999, KL scale 0.1; dmc_proprio (vectors)
    deter 200, gamma 0.99, KL scale 1 with 1 free nat; later presets and --set still win."""
    vec, _ = build_config("dreamerv2", [], {"run.obs": "vector"})
    img, _ = build_config("dreamerv2", [], {"run.obs": "pixels"})
    assert (vec.model.deter, vec.behavior.gamma, vec.model.kl_scale, vec.model.free_bits) == (
        200,
        0.99,
        1.0,
        1.0,
    )
    assert (img.model.deter, img.behavior.gamma, img.model.kl_scale, img.model.free_bits) == (
        600,
        0.999,
        0.1,
        0.0,
    )
    assert build_config("dreamerv2", [], {})[0].model.deter == 200  # run.obs defaults to vector
    assert build_config("dreamerv2", ["size12m"], {})[0].model.deter == 2048
    assert build_config("dreamerv2", [], {"model.deter": 300})[0].model.deter == 300


def _grads(kind, kl_fn, post, prior, **kw):
    post = post.clone().requires_grad_(True)
    prior = prior.clone().requires_grad_(True)
    loss, _, _ = kl_loss(kind, kl_fn, post, prior, **kw)
    g_post, g_prior = torch.autograd.grad(loss.mean(), (post, prior))
    return g_post, g_prior


def test_kl_balancing_sends_alpha_to_prior_and_rest_to_posterior():
    torch.manual_seed(0)
    post, prior = torch.randn(3, 5, 4, 6), torch.randn(3, 5, 4, 6)  # [B, T, S, K] logits
    alpha = 0.8
    g_post, g_prior = _grads("balanced", categorical_kl, post, prior, free=0.0, alpha=alpha)
    # independent: gradients of the plain KL(post || prior) mean
    p, q = post.clone().requires_grad_(True), prior.clone().requires_grad_(True)
    full_post, full_prior = torch.autograd.grad(categorical_kl(p, q).mean(), (p, q))
    torch.testing.assert_close(g_prior, alpha * full_prior)
    torch.testing.assert_close(g_post, (1 - alpha) * full_post)


def test_kl_balancing_free_nats_on_batch_mean():
    post, prior = torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, 4, 5)
    post[..., 0] = 1.0  # small KL
    value = categorical_kl(post, prior).mean()
    assert value < 1.0
    loss, _, _ = kl_loss("balanced", categorical_kl, post, prior, free=1.0, alpha=0.8, scale=0.1)
    torch.testing.assert_close(loss, torch.full((2, 3), 0.1))  # both terms clamped to 1 nat
    g_post, g_prior = _grads("balanced", categorical_kl, post, prior, free=1.0)
    assert g_post.abs().max() == 0 and g_prior.abs().max() == 0


def test_elbo_kl_gaussian_matches_closed_form_with_both_gradients():
    torch.manual_seed(1)
    mean_q, mean_p = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    std_q, std_p = torch.rand(2, 3, 4) + 0.5, torch.rand(2, 3, 4) + 0.5
    post, prior = torch.stack([mean_q, std_q], -1), torch.stack([mean_p, std_p], -1)
    loss, dyn, rep = kl_loss("elbo", RSSM_gauss().kl, post, prior, free=0.0, scale=2.0)
    closed = 0.5 * (
        (std_q / std_p) ** 2 + ((mean_p - mean_q) / std_p) ** 2 - 1 - 2 * torch.log(std_q / std_p)
    ).sum(-1)
    torch.testing.assert_close(loss, 2.0 * closed.mean().expand(2, 3))
    torch.testing.assert_close(dyn, closed)
    g_post, g_prior = _grads("elbo", gaussian_kl_stats, post, prior, free=0.0)
    assert g_post.abs().sum() > 0 and g_prior.abs().sum() > 0


def gaussian_kl_stats(lhs, rhs):
    return gaussian_kl(lhs[..., 0], lhs[..., 1], rhs[..., 0], rhs[..., 1])


def RSSM_gauss():  # noqa: N802
    return RSSM(3, 5, deter=16, hidden=8, stoch=4, latent="gaussian", core="gru", norm="layer")


def test_dyn_rep_is_v3_split():
    torch.manual_seed(2)
    post, prior = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    loss, dyn, rep = kl_loss(
        "dyn_rep", categorical_kl, post, prior, free=1.0, beta_dyn=0.5, beta_rep=0.1
    )
    kl = categorical_kl(post, prior)
    torch.testing.assert_close(loss, 0.5 * kl.clamp(min=1) + 0.1 * kl.clamp(min=1))


def test_gaussian_rssm_observe_matches_steps_and_resets():
    torch.manual_seed(0)
    rssm = RSSM_gauss()
    B, T = 2, 5
    embed, action = torch.randn(B, T, 5), torch.randn(B, T, 3)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[0, 2] = True
    torch.manual_seed(1)
    post, prior = rssm.observe(embed, action, is_first)
    assert post["stoch"].shape == (B, T, 4) and prior.shape == (B, T, 4, 2)
    assert torch.all(prior[..., 1] >= 0.1)  # std = softplus + min_std
    torch.manual_seed(1)
    state = rssm.initial(B)
    for t in range(T):
        state = rssm.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
        torch.testing.assert_close(state["stoch"], post["stoch"][:, t])
    img = rssm.img_step({k: v[:, -1] for k, v in post.items()}, action[:, -1])
    assert img["deter"].shape == (B, 16) and rssm.feat(img).shape == (B, rssm.feat_dim)


def test_tanh_normal_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    mean_raw, std_raw = torch.randn(6, 2), torch.randn(6, 2)
    dist = TanhNormal(mean_raw, std_raw)
    mean = 5 * torch.tanh(mean_raw / 5)
    std = torch.nn.functional.softplus(std_raw + math.log(math.expm1(5.0))) + 1e-4
    torch.testing.assert_close(dist.mean, mean)
    ref = TransformedDistribution(Normal(mean, std), [TanhTransform()])
    assert torch.all(dist.sample().abs() <= 1)  # init std 5: many samples saturate to +-1
    x = torch.rand(6, 2) * 1.8 - 0.9
    torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x).sum(-1), rtol=1e-4, atol=1e-4)
    # entropy: one-sample estimate, unbiased -> average over many draws = -E[log p]
    big = TanhNormal(mean_raw[:1].expand(20000, 2), std_raw[:1].expand(20000, 2) - 8)
    samples = big.sample()
    torch.testing.assert_close(
        big.entropy().mean(), -big.log_prob(samples).mean(), rtol=0.05, atol=0.05
    )


def test_nonsense_axis_combination_is_refused():
    env = make_env("toy:target")
    cfg, _ = build_config("dreamerv3", ["debug"], {"behavior.critic_target": "online"})
    with pytest.raises(UserError, match="slow_reg"):
        DreamerAgent(cfg, env.obs_space, env.act_space)


def test_hard_target_copies_every_n_updates():
    env = make_env("toy:target")
    cfg, _ = build_config("dreamerv2", ["debug"], {"behavior.slow_critic_every": 2})
    ag = DreamerAgent(cfg, env.obs_space, env.act_space)
    rb = random_replay(env, 100)
    ag.update(rb.sample(4, 8))  # update 1: no copy yet
    assert any(
        not torch.equal(a, b) for a, b in zip(ag.slow_critic.parameters(), ag.critic.parameters())
    )
    ag.update(rb.sample(4, 8))  # update 2: copy
    assert all(
        torch.equal(a, b) for a, b in zip(ag.slow_critic.parameters(), ag.critic.parameters())
    )


def test_free_nats_per_step_vs_batch_mean_by_hand():
    """Per-step KLs 1 and 4.6 nats with 3 free nats: PlaNet's code clamps each step (loss
    (3 + 4.6) / 2 = 3.8, gradient only through the 4.6-nat step); V1's clamps the mean 2.8 (loss
    3, no gradient at all)."""
    kl = torch.tensor([[1.0, 4.6]], requires_grad=True)  # [B=1, T=2]

    def kl_fn(lhs, rhs):  # the "stats" are the per-step KLs themselves
        return lhs * 1.0

    for per_step, value, grad in [(True, 3.8, [0.0, 0.5]), (False, 3.0, [0.0, 0.0])]:
        loss, _, _ = kl_loss("elbo", kl_fn, kl, kl.detach(), free=3.0, per_step=per_step)
        assert abs(float(loss.mean()) - value) < 1e-6
        (g,) = torch.autograd.grad(loss.mean(), kl)
        assert g.tolist() == [grad]
    # None keeps each kind's own placement: elbo and balanced on the mean, dyn_rep per step
    for kind, expect in [("elbo", 3.0), ("balanced", 3.0), ("dyn_rep", 3.8 * 1.1)]:
        loss, _, _ = kl_loss(kind, kl_fn, kl, kl.detach(), free=3.0, beta_rep=0.1)
        assert abs(float(loss.mean()) - expect) < 1e-5, kind
    loss, _, _ = kl_loss("balanced", kl_fn, kl, kl.detach(), free=3.0, per_step=True)
    assert abs(float(loss.mean()) - 3.8) < 1e-6


def test_gauss_head_is_half_the_squared_error():
    from worldmodels.nn.heads import Head

    torch.manual_seed(0)
    mse, gauss = (Head(4, (3,), o, units=8, layers=1, outscale=1.0) for o in ("mse", "gauss"))
    gauss.load_state_dict(mse.state_dict())
    feat, target = torch.randn(5, 4), torch.randn(5, 3)
    pred = mse(feat).pred()
    torch.testing.assert_close(gauss(feat).pred(), pred)
    torch.testing.assert_close(gauss(feat).loss(target), 0.5 * ((pred - target) ** 2).sum(-1))


def test_gauss_image_decoder_is_half_the_summed_squared_error():
    """model.image_decoder: ``mse`` is the squared error summed over pixels (worked here from the
    decoder's own prediction), ``gauss`` the unit-variance Gaussian NLL, 0.5 x that (PlaNet)."""
    from worldmodels.models.dreamer import WorldModel
    from worldmodels.nn.layers import image_to_float

    env = make_env("toy:target", obs="pixels", size=(16, 16))
    models = []
    for kind in ("mse", "gauss"):
        cfg, _ = build_config("dreamerv3", ["debug"], {"model.image_decoder": kind})
        torch.manual_seed(0)
        models.append(WorldModel(cfg.model, env.obs_space, env.act_space.n))
    models[1].load_state_dict(models[0].state_dict())
    img = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8)
    feat = torch.randn(2, 3, models[0].rssm.feat_dim)
    pred = models[0].img_dec(feat).float()
    want = ((pred.movedim(-1, -3) - image_to_float(img)) ** 2).flatten(2).sum(-1)
    mse, gauss = (m.recon_loss(feat, {"image": img})["recon_image"] for m in models)
    torch.testing.assert_close(mse, want)
    torch.testing.assert_close(gauss, 0.5 * want)
    assert build_config("planet")[0].model.image_decoder == "gauss"
    assert build_config("dreamerv3")[0].model.image_decoder == "mse"
