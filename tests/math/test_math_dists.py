"""Tests for worldmodels.math.dists: unimix, straight-through categoricals, bounded normal."""

import torch

from worldmodels.math import BoundedNormal, MultiOneHotST, OneHotCategoricalST, unimix_logits


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
    assert torch.all(sample >= -1.0) and torch.all(sample <= 1.0)
    sample.sum().backward()
    assert mean_raw.grad is not None and torch.all(mean_raw.grad != 0)
    assert std_raw.grad is not None and std_raw.grad.abs().sum() > 0


def test_bounded_normal_straight_through_clip():
    dist = BoundedNormal(torch.full((1000, 1), 5.0, requires_grad=True), torch.zeros(1000, 1))
    sample = dist.sample()
    assert sample.max() == 1.0  # mean tanh(5) ~ 0.9999 with std ~0.89: many samples clip
    (grad,) = torch.autograd.grad(sample.sum(), dist.mean)
    torch.testing.assert_close(grad, torch.ones_like(grad))


def test_bounded_normal_log_prob_entropy():
    mean_raw, std_raw = torch.randn(4, 2), torch.randn(4, 2)
    dist = BoundedNormal(mean_raw, std_raw)
    ref = torch.distributions.Normal(dist.mean, dist.std)
    x = torch.rand(4, 2) * 2 - 1
    torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x).sum(-1))
    torch.testing.assert_close(dist.entropy(), ref.entropy().sum(-1))
