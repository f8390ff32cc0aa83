"""MuZero's h(x) transform, its closed-form inverse, the two-hot support projection, the n-step
value targets and the gradient scale, against hand-worked values."""

import math

import pytest
import torch

from worldmodels.math import (
    h_inverse,
    h_transform,
    min_max_scale,
    n_step_value_targets,
    scalar_to_support,
    scale_gradient,
    support_loss,
    support_to_scalar,
)


def test_h_transform_closed_form():
    x = torch.tensor([0.0, 3.0, -8.0, 99.0], dtype=torch.float64)
    # sign(x)(sqrt(|x| + 1) - 1) + 0.001 x: sqrt(4) = 2, sqrt(9) = 3, sqrt(100) = 10
    expected = torch.tensor([0.0, 1.003, -2.008, 9.099], dtype=torch.float64)
    torch.testing.assert_close(h_transform(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        h_transform(x, eps=0.0), torch.tensor([0.0, 1.0, -2.0, 9.0]).double()
    )


def test_h_inverse_round_trip():
    x = torch.tensor([-1e5, -300.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 7.0, 1234.5, 1e5]).double()
    torch.testing.assert_close(h_inverse(h_transform(x)), x, rtol=1e-9, atol=1e-9)
    y = torch.linspace(-300, 300, 61, dtype=torch.float64)
    torch.testing.assert_close(h_transform(h_inverse(y)), y, rtol=1e-9, atol=1e-9)
    # The closed form, spelled out for one value: h^-1(1.003) = 3
    eps, yv = 0.001, 1.003
    root = (math.sqrt(1 + 4 * eps * (yv + 1 + eps)) - 1) / (2 * eps)
    assert root**2 - 1 == pytest.approx(3.0, abs=1e-9)


def test_support_projection_hand_worked():
    S = 3
    got = scalar_to_support(torch.tensor([3.0, -8.0, 0.0, 1e6]), S)
    assert got.shape == (4, 7)  # support -3..3
    expected = torch.zeros(4, 7)
    expected[0, 3 + 1], expected[0, 3 + 2] = 0.997, 0.003  # h(3) = 1.003
    expected[1, 3 - 3], expected[1, 3 - 2] = 0.008, 0.992  # h(-8) = -2.008
    expected[2, 3] = 1.0
    expected[3, 6] = 1.0  # clipped at +S
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # Decoding the two-hot (as logits) gives h^-1 of its mean back.
    logits = torch.log(got[:3].clamp(min=1e-12))
    torch.testing.assert_close(
        support_to_scalar(logits, S), torch.tensor([3.0, -8.0, 0.0]), atol=1e-3, rtol=1e-4
    )
    # The loss is the cross-entropy against that two-hot.
    raw = torch.randn(3, 7)
    ce = -(got[:3] * torch.log_softmax(raw, -1)).sum(-1)
    torch.testing.assert_close(support_loss(raw, torch.tensor([3.0, -8.0, 0.0]), S), ce)


def _flags(T, last=(), terminal=()):
    lst = torch.zeros(1, T, dtype=torch.bool)
    term = torch.zeros(1, T, dtype=torch.bool)
    for i in last:
        lst[0, i] = True
    for i in terminal:
        lst[0, i] = term[0, i] = True
    return lst, term


def test_n_step_targets_bootstrap_and_terminal():
    # u_t arrives with o_t; v_t is the search value at o_t. Episode: o_0..o_3, o_3 terminal;
    # o_4 starts the next one. gamma = 0.5, n = 2.
    reward = torch.tensor([[0.0, 1.0, 2.0, 4.0, 0.0, 8.0]])
    value = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0, 60.0]])
    last, term = _flags(6, terminal=(3,))
    z = n_step_value_targets(reward, value, last, term, gamma=0.5, n=2)
    expected = [
        1.0 + 0.5 * 2.0 + 0.25 * 30.0,  # z_0 = u_1 + g u_2 + g^2 v_2
        2.0 + 0.5 * 4.0 + 0.0,  # z_1 = u_2 + g u_3, o_3 terminal: no bootstrap
        4.0,  # z_2 = u_3
        0.0,  # z_3: terminal itself
        8.0 + 0.5 * 60.0,  # z_4 = u_5 + g v_5: the window ends at 5
        60.0,  # z_5: window end, bootstrap from itself
    ]
    torch.testing.assert_close(z, torch.tensor([expected]))


def test_n_step_targets_truncation_and_two_player_sign():
    reward = torch.tensor([[0.0, 1.0, 2.0, 4.0]])
    value = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    last, term = _flags(4, last=(2,))  # o_2 truncated: bootstrap from v_2
    z = n_step_value_targets(reward, value, last, term, gamma=0.5, n=3)
    torch.testing.assert_close(
        z, torch.tensor([[1.0 + 0.5 * 2.0 + 0.25 * 30.0, 2.0 + 0.5 * 30.0, 30.0, 40.0]])
    )
    # Tic-tac-toe, gamma 1: X moves at o_0, O at o_1, X wins with the move from o_2 (+1 to X
    # arriving with terminal o_3). Values are the mover's: +1 for X at o_0 and o_2, -1 for O.
    reward = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    value = torch.tensor([[0.3, -0.2, 0.9, 0.5]])
    last, term = _flags(4, terminal=(3,))
    z = n_step_value_targets(reward, value, last, term, gamma=1.0, n=9, sign=-1.0)
    torch.testing.assert_close(z, torch.tensor([[1.0, -1.0, 1.0, 0.0]]))
    # n = 1 bootstraps from the opponent's value, negated: z_0 = u_1 - v_1.
    z1 = n_step_value_targets(reward, value, last, term, gamma=1.0, n=1, sign=-1.0)
    torch.testing.assert_close(z1, torch.tensor([[0.0 + 0.2, 0.0 - 0.9, 1.0, 0.0]]))


def test_scale_gradient_and_min_max():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = scale_gradient(x, 0.5)
    assert torch.equal(y, x)
    (w * y).sum().backward()
    torch.testing.assert_close(x.grad, 0.5 * w)
    s = min_max_scale(torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]]))
    torch.testing.assert_close(s, torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]))


def test_n_step_targets_with_one_horizon_per_row():
    """A [B] tensor of horizons gives each row the targets of its own scalar n (hand-worked
    above), e.g. EfficientZero's off-policy correction."""
    g = torch.Generator().manual_seed(0)
    reward = torch.randn(4, 9, generator=g)
    value = torch.randn(4, 9, generator=g)
    last, term = torch.zeros(4, 9, dtype=torch.bool), torch.zeros(4, 9, dtype=torch.bool)
    last[1, 5] = term[1, 5] = True
    last[2, 3] = True
    n = torch.tensor([1, 5, 3, 2])
    z = n_step_value_targets(reward, value, last, term, gamma=0.9, n=n)
    for b in range(4):
        ref = n_step_value_targets(
            reward[b : b + 1], value[b : b + 1], last[b : b + 1], term[b : b + 1], 0.9, int(n[b])
        )
        torch.testing.assert_close(z[b : b + 1], ref)
