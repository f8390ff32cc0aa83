"""Tests for worldmodels.math.returns against closed-form values (docs/conventions.md)."""

import torch

from worldmodels.math import discount_weights, lambda_return, replay_lambda_return


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


def test_replay_lambda_return_hand_worked_with_episode_boundary():
    # Replay of 5 steps: episode A = steps 0..2 (truncated at 2: is_last, not terminal),
    # episode B starts at 3 and terminates at 4. reward[:, t] = r_t arrives with o_t.
    reward = torch.tensor([[0.0, 1.0, 2.0, 0.0, 4.0]])
    is_first = torch.tensor([[1, 0, 0, 1, 0]])
    is_last = torch.tensor([[0, 0, 1, 0, 1]])
    is_terminal = torch.tensor([[0, 0, 0, 0, 1]])
    boot = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0]])  # imagined returns at each posterior
    g, lam = 0.5, 0.5
    ret, weight = replay_lambda_return(reward, is_terminal, is_last, is_first, boot, g, lam)
    # Step 3 -> 4 ends in a terminal: R_3 = r_4 = 4 (no bootstrap).
    # Step 2 is the last of episode A: no transition, weight 0.
    # Step 1 -> 2: the episode ends at 2, so lambda is cut there: R_1 = r_2 + g * boot_2 = 17.
    # Step 0 -> 1: R_0 = r_1 + g * ((1 - lam) * boot_1 + lam * R_1) = 1 + 0.5 * (10 + 8.5).
    expected = torch.tensor([[1.0 + 0.5 * (10.0 + 8.5), 17.0, 0.0, 4.0]])
    torch.testing.assert_close(weight, torch.tensor([[1.0, 1.0, 0.0, 1.0]]))
    torch.testing.assert_close(ret * weight, expected)


def test_replay_lambda_return_cut_without_is_last():
    # A new episode at step 2 with no is_last before it (a run cut by a crash): no leak across.
    reward = torch.tensor([[0.0, 1.0, 7.0, 2.0]])
    is_first = torch.tensor([[1, 0, 1, 0]])
    zeros = torch.zeros(1, 4, dtype=torch.long)
    boot = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    ret, weight = replay_lambda_return(reward, zeros, zeros, is_first, boot, 0.5, 0.5)
    torch.testing.assert_close(weight, torch.tensor([[1.0, 0.0, 1.0]]))
    # R_0 = r_1 + g * boot_1 (lambda cut at step 1, the end of the first episode).
    torch.testing.assert_close(ret[:, 0], torch.tensor([1.0 + 0.5 * 20.0]))


def test_replay_lambda_return_lam0_is_td_on_boot():
    torch.manual_seed(0)
    reward, boot = torch.randn(2, 6), torch.randn(2, 6)
    zeros = torch.zeros(2, 6)
    ret, weight = replay_lambda_return(reward, zeros, zeros, zeros, boot, 0.9, 0.0)
    torch.testing.assert_close(ret, reward[:, 1:] + 0.9 * boot[:, 1:])
    assert bool((weight == 1).all())
