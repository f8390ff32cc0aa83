"""Tests for worldmodels.math.kl against torch.distributions and gradient routing."""

import torch
from torch.distributions import Independent, Normal, OneHotCategorical, kl_divergence

from worldmodels.math import balanced_kl, categorical_kl, dyn_rep_kl, gaussian_kl


def _logits(*shape: int, scale: float = 2.0) -> torch.Tensor:
    return (torch.randn(*shape) * scale).requires_grad_()


def test_categorical_kl_matches_torch():
    torch.manual_seed(0)
    lhs, rhs = torch.randn(3, 5, 4, 6), torch.randn(3, 5, 4, 6)
    ref = kl_divergence(OneHotCategorical(logits=lhs), OneHotCategorical(logits=rhs)).sum(-1)
    torch.testing.assert_close(categorical_kl(lhs, rhs), ref)
    # Unnormalised logits give the same result; KL of a distribution with itself is 0.
    torch.testing.assert_close(categorical_kl(lhs + 3.0, rhs - 1.0), ref)
    torch.testing.assert_close(categorical_kl(lhs, lhs), torch.zeros(3, 5))


def test_dyn_rep_kl_values_and_floor():
    torch.manual_seed(0)
    post, prior = torch.randn(6, 32, 32), torch.randn(6, 32, 32)
    kl = categorical_kl(post, prior)
    assert torch.all(kl > 1.0)
    dyn, rep = dyn_rep_kl(post, prior, free_bits=1.0)
    torch.testing.assert_close(dyn, kl)
    torch.testing.assert_close(rep, kl)
    dyn, rep = dyn_rep_kl(post, post + 1e-3 * torch.randn_like(post), free_bits=1.0)
    assert torch.all(dyn == 1.0) and torch.all(rep == 1.0)


def test_dyn_rep_kl_gradient_routing():
    torch.manual_seed(0)
    post, prior = _logits(4, 8, 8), _logits(4, 8, 8)
    dyn, rep = dyn_rep_kl(post, prior, free_bits=1.0)
    assert torch.all(dyn > 1.0)
    dyn.sum().backward(retain_graph=True)
    assert post.grad is None and prior.grad.abs().sum() > 0
    prior.grad = None
    rep.sum().backward()
    assert prior.grad is None and post.grad.abs().sum() > 0


def test_dyn_rep_kl_zero_gradient_below_floor():
    post = _logits(2, 4, 4)
    prior = (post.detach() + 0.01).requires_grad_()
    dyn, rep = dyn_rep_kl(post, prior, free_bits=1.0)
    (dyn + rep).sum().backward()
    assert torch.all(post.grad == 0) and torch.all(prior.grad == 0)


def test_balanced_kl_gradient_split():
    torch.manual_seed(0)
    post, prior = torch.randn(3, 8, 8), torch.randn(3, 8, 8)

    def grads(alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        p, q = post.clone().requires_grad_(), prior.clone().requires_grad_()
        balanced_kl(p, q, alpha=alpha).sum().backward()
        return p.grad, q.grad

    post_grad, prior_grad = grads(0.8)
    post_only_prior, prior_only_prior = grads(1.0)
    post_only_post, prior_only_post = grads(0.0)
    assert torch.all(post_only_prior == 0) and torch.all(prior_only_post == 0)
    torch.testing.assert_close(prior_grad, 0.8 * prior_only_prior)
    torch.testing.assert_close(post_grad, 0.2 * post_only_post)
    value = balanced_kl(post, prior, alpha=0.8)
    torch.testing.assert_close(value, categorical_kl(post, prior))


def test_balanced_kl_free_nats():
    post, prior = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    torch.testing.assert_close(balanced_kl(post, prior, free_nats=0.5), torch.full((2,), 0.5))


def test_gaussian_kl_matches_torch():
    torch.manual_seed(0)
    ml, mr = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    sl, sr = torch.rand(3, 4, 5) + 0.1, torch.rand(3, 4, 5) + 0.1
    ref = kl_divergence(Independent(Normal(ml, sl), 1), Independent(Normal(mr, sr), 1))
    torch.testing.assert_close(gaussian_kl(ml, sl, mr, sr), ref)
    torch.testing.assert_close(gaussian_kl(ml, sl, ml, sl), torch.zeros(3, 4))
