"""Tests for worldmodels.math.dists: unimix, straight-through categoricals, bounded normal."""

import math

import torch

from worldmodels.math import (
    BoundedNormal,
    MultiOneHotST,
    OneHotCategoricalST,
    clip_action,
    unimix_logits,
)


def test_unimix_logits():
    logits = torch.randn(5, 8) * 10
    assert unimix_logits(logits, 0.0) is logits
    probs = torch.softmax(unimix_logits(logits, 0.01), -1)
    assert torch.all(probs >= 0.01 / 8 - 1e-7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5))
    expected = 0.99 * torch.softmax(logits, -1) + 0.01 / 8
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(unimix_logits(logits, 0.01).exp(), expected)


def test_one_hot_st_sample_is_one_hot_with_probs_gradient():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, 6, requires_grad=True)
    w = torch.randn(4, 3, 6)
    dist = OneHotCategoricalST(logits)
    sample = dist.sample()
    assert sample.shape == (4, 3, 6)
    assert torch.all((sample == 0) | (sample == 1)) and torch.all(sample.sum(-1) == 1)
    (grad_st,) = torch.autograd.grad((sample * w).sum(), logits)
    (grad_probs,) = torch.autograd.grad((torch.softmax(logits, -1) * w).sum(), logits)
    torch.testing.assert_close(grad_st, grad_probs)


def test_one_hot_st_sample_frequencies():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.6, 0.3])
    dist = OneHotCategoricalST(probs.log().expand(20000, 3))
    torch.testing.assert_close(dist.sample().mean(0), probs, atol=0.02, rtol=0.0)


def test_one_hot_st_mode_log_prob_entropy():
    logits = torch.randn(5, 7, requires_grad=True)
    dist = OneHotCategoricalST(logits)
    mode = dist.mode()
    assert torch.equal(mode.detach(), torch.nn.functional.one_hot(logits.argmax(-1), 7).float())
    ref = torch.distributions.OneHotCategorical(logits=logits)
    torch.testing.assert_close(dist.log_prob(mode.detach()), ref.log_prob(mode.detach()))
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    torch.testing.assert_close(dist.probs, ref.probs)
    torch.testing.assert_close(dist.logits.exp().sum(-1), torch.ones(5))


def test_one_hot_st_entropy_with_zero_probability():
    dist = OneHotCategoricalST(torch.tensor([0.0, -float("inf"), 0.0]))
    torch.testing.assert_close(dist.entropy(), torch.log(torch.tensor(2.0)))


def test_multi_one_hot_st():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 32, 32, requires_grad=True)
    dist = MultiOneHotST(logits)
    sample = dist.sample()
    assert sample.shape == (2, 3, 32, 32) and torch.all(sample.sum(-1) == 1)
    ref = torch.distributions.Independent(torch.distributions.OneHotCategorical(logits=logits), 1)
    torch.testing.assert_close(dist.log_prob(sample.detach()), ref.log_prob(sample.detach()))
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    assert dist.mode().shape == (2, 3, 32, 32)
    assert dist.log_prob(sample).shape == (2, 3)


def test_bounded_normal():
    torch.manual_seed(0)
    mean_raw = torch.randn(64, 3).requires_grad_()
    std_raw = (torch.randn(64, 3) * 5).requires_grad_()
    dist = BoundedNormal(mean_raw, std_raw, min_std=0.1, max_std=1.0)
    torch.testing.assert_close(dist.mode(), torch.tanh(mean_raw))
    expected_std = 0.9 * torch.sigmoid(std_raw + 2.0) + 0.1
    torch.testing.assert_close(dist.std, expected_std)
    assert torch.all(dist.std >= 0.1) and torch.all(dist.std <= 1.0)
    sample = dist.sample()
    assert sample.shape == (64, 3)
    sample.sum().backward()
    assert mean_raw.grad is not None and torch.all(mean_raw.grad != 0)
    assert std_raw.grad is not None and std_raw.grad.abs().sum() > 0


def test_clip_action_is_the_reference_rescaling():
    """DreamerV3 rssm.py: ``action /= sg(max(1, |action|))``: the value is the clipped action,
    the gradient 1 / max(1, |a|) (hand-worked at a = -3, -0.5, 0, 0.7, 2)."""
    a = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0], requires_grad=True)
    out = clip_action(a)
    torch.testing.assert_close(out, torch.tensor([-1.0, -0.5, 0.0, 0.7, 1.0]))
    (grad,) = torch.autograd.grad(out.sum(), a)
    torch.testing.assert_close(grad, torch.tensor([1 / 3, 1.0, 1.0, 1.0, 0.5]))


def test_bounded_normal_score_function_is_unbiased_for_a_clipping_env():
    """REINFORCE on the raw sample: for a ~ N(m, s) and a reward clip(a) (what the env
    receives), d/dm E[clip(a)] = P(-1 < a < 1) = Phi((1 - m) / s) - Phi((-1 - m) / s) in closed
    form (0.655 at m = 0.8, s = 0.5). The score function at the raw sample matches it; scoring
    the clipped sample instead is biased low (0.19 here)."""
    m, s = 0.8, 0.5
    mean_raw = torch.tensor([math.atanh(m)], dtype=torch.float64, requires_grad=True)
    std_raw = torch.tensor([math.log((s - 0.1) / (1.0 - s)) - 2.0], dtype=torch.float64)
    dist = BoundedNormal(mean_raw.expand(400_000, 1), std_raw.expand(400_000, 1))
    torch.testing.assert_close(dist.std[0, 0].item(), s)
    torch.manual_seed(0)
    raw = dist.sample().detach()
    reward = raw.clamp(-1.0, 1.0)[:, 0]
    phi = torch.distributions.Normal(0.0, 1.0).cdf
    exact = (phi(torch.tensor((1 - m) / s)) - phi(torch.tensor((-1 - m) / s))).item()
    dtanh = 1.0 - m**2  # d mean / d mean_raw

    def score_grad(action):
        obj = (dist.log_prob(action) * reward).mean()
        (g,) = torch.autograd.grad(obj, mean_raw, retain_graph=True)
        return g.item() / dtanh

    assert abs(score_grad(raw) - exact) < 0.02
    assert score_grad(raw.clamp(-1.0, 1.0)) < 0.9 * exact


def test_bounded_normal_log_prob_entropy():
    mean_raw, std_raw = torch.randn(4, 2), torch.randn(4, 2)
    dist = BoundedNormal(mean_raw, std_raw)
    ref = torch.distributions.Normal(dist.mean, dist.std)
    x = torch.rand(4, 2) * 2 - 1
    torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x).sum(-1))
    torch.testing.assert_close(dist.entropy(), ref.entropy().sum(-1))
