"""Tests for worldmodels.math.transforms against hand-worked values."""

import math

import torch

from worldmodels.math import symexp, symexp_bins, symlog, two_hot, two_hot_decode, twohot_loss


def test_symlog_hand_values():
    x = torch.tensor([math.e - 1, -(math.e - 1), 0.0, math.e**2 - 1])
    torch.testing.assert_close(symlog(x), torch.tensor([1.0, -1.0, 0.0, 2.0]))


def test_symexp_inverts_symlog():
    x = torch.tensor([-1e6, -123.4, -1.0, -1e-4, 0.0, 1e-4, 0.5, 3.0, 1e6], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-12, atol=1e-12)
    y = torch.linspace(-15, 15, 31, dtype=torch.float64)
    torch.testing.assert_close(symlog(symexp(y)), y, rtol=1e-12, atol=1e-12)


def test_symexp_bins():
    bins = symexp_bins()
    assert bins.shape == (255,) and bins.dtype == torch.float32
    assert bins[127].item() == 0.0
    assert torch.equal(bins, -bins.flip(0))
    assert torch.all(bins[1:] > bins[:-1])
    expected = symexp(torch.linspace(-20.0, 20.0, 255, dtype=torch.float64)).float()
    torch.testing.assert_close(bins, expected, rtol=1e-6, atol=1e-12)
    even = symexp_bins(6, -2.0, 2.0)
    torch.testing.assert_close(even, symexp(torch.linspace(-2.0, 2.0, 6)))
    skew = symexp_bins(5, -1.0, 3.0)
    torch.testing.assert_close(skew, symexp(torch.tensor([-1.0, 0.0, 1.0, 2.0, 3.0])))


def test_two_hot_hand_worked():
    bins = torch.tensor([0.0, 1.0, 2.0, 3.0])
    x = torch.tensor([1.25, 2.0, 0.0, 3.0, -5.0, 7.0])
    expected = torch.tensor(
        [
            [0.0, 0.75, 0.25, 0.0],  # between bins 1 and 2
            [0.0, 0.0, 1.0, 0.0],  # exactly on a bin
            [1.0, 0.0, 0.0, 0.0],  # lowest bin
            [0.0, 0.0, 0.0, 1.0],  # highest bin
            [1.0, 0.0, 0.0, 0.0],  # below range
            [0.0, 0.0, 0.0, 1.0],  # above range
        ]
    )
    torch.testing.assert_close(two_hot(x, bins), expected)


def test_two_hot_shape_and_reconstruction():
    bins = symexp_bins()
    x = torch.randn(4, 5, dtype=torch.float64) * torch.logspace(-3, 6, 5, dtype=torch.float64)
    w = two_hot(x, bins)
    assert w.shape == (4, 5, 255)
    assert torch.all(w >= 0) and torch.all((w > 0).sum(-1) <= 2)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, 5, dtype=torch.float64))
    torch.testing.assert_close((w * bins.double()).sum(-1), x, rtol=1e-9, atol=1e-9)


def test_two_hot_is_a_target():
    x = torch.tensor([0.3, 1.7], requires_grad=True)
    assert not two_hot(x, torch.tensor([0.0, 1.0, 2.0])).requires_grad


def test_two_hot_decode_uniform_is_exactly_zero():
    assert torch.all(two_hot_decode(torch.zeros(3, 255), symexp_bins()) == 0.0)


def test_two_hot_decode_matches_expectation():
    bins = torch.tensor([-2.0, 0.0, 1.0, 5.0])
    logits = torch.randn(7, 4)
    expected = (torch.softmax(logits, -1) * bins).sum(-1)
    torch.testing.assert_close(two_hot_decode(logits, bins), expected)
    bins_even = torch.tensor([-2.0, 1.0, 5.0, 6.0])
    torch.testing.assert_close(
        two_hot_decode(logits, bins_even), (torch.softmax(logits, -1) * bins_even).sum(-1)
    )


def test_two_hot_decode_round_trip_large_values():
    bins = symexp_bins()
    x = torch.tensor([1e5, -1e5, 3.7e6, -42.0, 0.5, 0.0])
    logits = torch.log(two_hot(x, bins) + 1e-8)
    decoded = two_hot_decode(logits, bins)
    torch.testing.assert_close(decoded, x, rtol=1e-3, atol=1e-4)


def test_twohot_loss_is_cross_entropy():
    bins = torch.tensor([0.0, 1.0, 2.0, 3.0])
    logits = torch.randn(2, 3, 4, requires_grad=True)
    target = torch.tensor([[1.25, 0.0, 9.0], [2.5, -1.0, 3.0]], requires_grad=True)
    loss = twohot_loss(logits, target, bins)
    assert loss.shape == (2, 3)
    # Explicit: -0.75 log p_1 - 0.25 log p_2 for target 1.25.
    log_p = torch.log_softmax(logits, -1)
    torch.testing.assert_close(loss[0, 0], -(0.75 * log_p[0, 0, 1] + 0.25 * log_p[0, 0, 2]))
    torch.testing.assert_close(loss[0, 2], -log_p[0, 2, 3])
    soft = two_hot(target, bins)
    expected = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 4), soft.reshape(-1, 4), reduction="none"
    ).reshape(2, 3)
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    assert target.grad is None and logits.grad is not None
