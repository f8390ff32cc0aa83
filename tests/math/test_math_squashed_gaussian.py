"""TD-MPC2's tanh-Gaussian policy prior against torch.distributions."""

import math

import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from worldmodels.math import bounded_log_std, squashed_gaussian


def test_squashed_gaussian_log_prob_matches_torch():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g, dtype=torch.float64) * 2
    log_std = torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.5
    eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
    action, log_prob = squashed_gaussian(mean, log_std, eps)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    torch.testing.assert_close(action, torch.tanh(mean + log_std.exp() * eps))
    torch.testing.assert_close(log_prob, dist.log_prob(action).sum(-1), rtol=1e-6, atol=1e-6)


def test_squashed_gaussian_stable_when_saturated():
    mean, log_std, eps = torch.tensor([[30.0, -30.0]]), torch.zeros(1, 2), torch.zeros(1, 2)
    action, log_prob = squashed_gaussian(mean, log_std, eps)
    assert torch.equal(action, torch.tensor([[1.0, -1.0]]))
    # log(1 - tanh(u)^2) ~ log 4 - 2|u| for large |u|
    expected = 2 * (-0.5 * math.log(2 * math.pi) - (math.log(4.0) - 60.0))
    torch.testing.assert_close(log_prob, torch.tensor([expected]))


def test_bounded_log_std_range():
    raw = torch.tensor([-100.0, 0.0, 100.0])
    torch.testing.assert_close(bounded_log_std(raw, -10.0, 2.0), torch.tensor([-10.0, -4.0, 2.0]))
