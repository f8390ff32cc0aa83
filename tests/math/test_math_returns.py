"""Tests for worldmodels.math.returns against closed-form values (docs/conventions.md)."""

import torch

from worldmodels.math import discount_weights, lambda_return


def test_lambda_return_hand_worked_t2():
    # r_1 = 1, r_2 = 2; c = 1; v(s_0..s_2) = 10, 20, 30; gamma = 0.5, lam = 0.5.
    reward = torch.tensor([[1.0, 2.0]])
    cont = torch.ones(1, 2)
    value = torch.tensor([[10.0, 20.0, 30.0]])
    # R_2 = 30; R_1 = 2 + 0.5 * (0.5 * 30 + 0.5 * 30) = 17; R_0 = 1 + 0.5 * (0.5 * 20 + 0.5 * 17)
    expected = torch.tensor([[1.0 + 0.5 * (10.0 + 8.5), 17.0]])
    torch.testing.assert_close(lambda_return(reward, cont, value, 0.5, 0.5), expected)


def test_lambda_return_lam0_is_td_target():
    torch.manual_seed(0)
    reward, cont, value = torch.randn(3, 6), (torch.rand(3, 6) > 0.3).float(), torch.randn(3, 7)
    expected = reward + 0.9 * cont * value[:, 1:]
    torch.testing.assert_close(lambda_return(reward, cont, value, 0.9, 0.0), expected)


def test_lambda_return_lam1_is_monte_carlo_plus_bootstrap():
    torch.manual_seed(0)
    B, T, gamma = 3, 5, 0.9
    reward, cont, value = torch.randn(B, T), torch.rand(B, T), torch.randn(B, T + 1)
    ret = lambda_return(reward, cont, value, gamma, 1.0)
    for t in range(T):
        expected = torch.zeros(B)
        disc = torch.ones(B)
        for k in range(t, T):
            expected = expected + disc * reward[:, k]
            disc = disc * gamma * cont[:, k]
        expected = expected + disc * value[:, T]
        torch.testing.assert_close(ret[:, t], expected)


def test_lambda_return_cont_zero_cuts_bootstrap():
    reward = torch.tensor([[1.0, 2.0, 3.0]])
    cont = torch.tensor([[1.0, 0.0, 1.0]])
    value = torch.full((1, 4), 100.0)
    ret = lambda_return(reward, cont, value, 0.9, 0.95)
    assert ret[0, 1] == 2.0
    torch.testing.assert_close(ret[0, 0], torch.tensor(1.0 + 0.9 * (0.05 * 100.0 + 0.95 * 2.0)))
    torch.testing.assert_close(ret[0, 2], torch.tensor(3.0 + 0.9 * 100.0))


def test_lambda_return_gradient_reaches_value():
    value = torch.randn(2, 4, requires_grad=True)
    lambda_return(torch.randn(2, 3), torch.ones(2, 3), value, 0.99, 0.95).sum().backward()
    assert value.grad is not None and torch.all(value.grad[:, 1:] != 0)


def test_discount_weights_hand_worked():
    cont = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    expected = torch.tensor([[1.0, 0.9, 0.405, 0.0], [1.0, 0.9, 0.81, 0.729]])
    torch.testing.assert_close(discount_weights(cont, 0.9), expected)
    torch.testing.assert_close(
        discount_weights(cont, 1.0), torch.tensor([[1.0, 1.0, 0.5, 0.0], [1.0, 1.0, 1.0, 1.0]])
    )
