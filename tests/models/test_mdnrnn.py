"""World Models' MDN-RNN: mixture likelihood and done loss against hand computations, the
restart reset, sequence/step agreement, and the statistics of temperature sampling."""

import math

import numpy as np
import pytest
import torch

from worldmodels.models.mdnrnn import MDNRNN, MDNOut, done_loss, done_prob, mdn_nll, sample_z


def _mixture_nll(y, weights, means, stds):
    """-log sum_k w_k N(y; m_k, s_k), written out with `math`."""
    density = sum(
        w * math.exp(-0.5 * ((y - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        for w, m, s in zip(weights, means, stds)
    )
    return -math.log(density)


def _out(weights, means, stds):
    """MDNOut from per-dimension lists ``[Z][K]`` (one batch entry)."""
    w = torch.tensor(weights, dtype=torch.float64)
    return MDNOut(
        logmix=torch.log(w / w.sum(-1, keepdim=True)).unsqueeze(0),
        mean=torch.tensor(means, dtype=torch.float64).unsqueeze(0),
        logstd=torch.log(torch.tensor(stds, dtype=torch.float64)).unsqueeze(0),
        done_logit=torch.zeros(1, dtype=torch.float64),
        reward=torch.zeros(1, dtype=torch.float64),
    )


def test_mdn_nll_is_a_per_dimension_mixture_density():
    weights = [[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]]
    means = [[-1.0, 0.0, 2.0], [3.0, -2.0, 0.5]]
    stds = [[0.5, 1.0, 2.0], [0.1, 1.5, 0.7]]
    y = [0.3, 2.8]
    target = torch.tensor([y], dtype=torch.float64)
    nll = mdn_nll(_out(weights, means, stds), target)
    assert nll.shape == (1, 2)
    for d in range(2):
        expected = _mixture_nll(y[d], weights[d], means[d], stds[d])
        assert math.isclose(nll[0, d].item(), expected, rel_tol=1e-10)
    # each dimension is scored only by its own mixture: swapping dim 1's mixture for dim 0's
    # changes dim 1's nll and leaves dim 0's alone
    same = mdn_nll(_out([weights[0]] * 2, [means[0]] * 2, [stds[0]] * 2), target)
    assert math.isclose(same[0, 0].item(), nll[0, 0].item(), rel_tol=1e-10)
    assert math.isclose(same[0, 1].item(), _mixture_nll(y[1], weights[0], means[0], stds[0]))
    assert abs(same[0, 1].item() - nll[0, 1].item()) > 1.0


def test_model_outputs_one_mixture_per_latent_dimension():
    torch.manual_seed(0)
    Z, A, K = 3, 2, 4
    rnn = MDNRNN(Z, A, hidden=8, mixtures=K)
    assert rnn.head.out_features == Z * K * 3 + 2
    out, _ = rnn(torch.randn(2, 5, Z), torch.randn(2, 5, A), torch.zeros(2, 5))
    assert out.logmix.shape == out.mean.shape == out.logstd.shape == (2, 5, Z, K)
    assert out.done_logit.shape == out.reward.shape == (2, 5)
    torch.testing.assert_close(out.logmix.exp().sum(-1), torch.ones(2, 5, Z))
    for p in (out.logmix, out.mean, out.logstd):
        assert not torch.allclose(p[..., 0, :], p[..., 1, :])  # not shared across dims
    assert mdn_nll(out, torch.randn(2, 5, Z)).shape == (2, 5, Z)
    torch.testing.assert_close(done_prob(out), 1 / (1 + torch.exp(-out.done_logit)))


def test_done_loss_weights_the_end():
    logits = [-2.0, 0.5, 3.0, -0.3]
    targets = [0.0, 1.0, 1.0, 0.0]
    got = done_loss(torch.tensor(logits), torch.tensor(targets), factor=10.0)
    for g, x, y in zip(got.tolist(), logits, targets):
        p = 1 / (1 + math.exp(-x))
        bce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
        assert math.isclose(g, bce * (10.0 if y == 1.0 else 1.0), rel_tol=1e-5)
    plain = done_loss(torch.tensor(logits), torch.tensor(targets), factor=1.0)
    torch.testing.assert_close(got, plain * torch.tensor([1.0, 10.0, 10.0, 1.0]))


def _rnn():
    torch.manual_seed(0)
    return MDNRNN(z_dim=3, act_dim=2, hidden=16, mixtures=3)


def test_restart_resets_the_state():
    rnn = _rnn()
    T, t0 = 7, 3
    z, a = torch.randn(1, T, 3), torch.randn(1, T, 2)
    restart = torch.zeros(1, T)
    restart[0, 0] = restart[0, t0] = 1.0
    with torch.no_grad():
        out, _ = rnn(z, a, restart)
        fresh, _ = rnn(z[:, t0:], a[:, t0:], restart[:, t0:])
        no_reset = restart.clone()
        no_reset[0, t0] = 0.0
        kept, _ = rnn(z, a, no_reset)
    for got, ref, other in zip(out, fresh, kept):
        torch.testing.assert_close(got[:, t0:], ref)
        assert not torch.allclose(other[:, t0:], ref, atol=1e-4)
    # a restart at t = 0 ignores a non-zero incoming state
    busy = (torch.randn(1, 16), torch.randn(1, 16))
    with torch.no_grad():
        from_busy, _ = rnn(z, a, restart, state=busy)
    torch.testing.assert_close(from_busy.mean, out.mean)


def test_forward_equals_step_loop():
    rnn = _rnn()
    B, T = 3, 6
    z, a = torch.randn(B, T, 3), torch.randn(B, T, 2)
    restart = torch.zeros(B, T)
    restart[0, 0] = restart[0, 4] = 1.0  # entries restart at different steps
    restart[1, 2] = 1.0
    state = (torch.randn(B, 16), torch.randn(B, 16))
    with torch.no_grad():
        seq, final = rnn(z, a, restart, state)
        s = state
        for t in range(T):
            one, s = rnn.step(z[:, t], a[:, t], restart[:, t], s)
            for got, ref in zip(one, seq):
                torch.testing.assert_close(got, ref[:, t])
    torch.testing.assert_close(s, final)
    h0, c0 = rnn.initial(B, "cpu")
    assert h0.shape == c0.shape == (B, 16) and not h0.any() and not c0.any()


def _single(means, stds, weights=None):
    """Leading shape [N] of independent copies of one per-dimension mixture set."""
    means = torch.tensor(means)
    K = means.shape[-1]
    w = torch.ones_like(means) / K if weights is None else torch.tensor(weights)
    return MDNOut(
        torch.log(w), means, torch.log(torch.tensor(stds)), torch.zeros(()), torch.zeros(())
    )


def _expand(out, n):
    return MDNOut(*(p.expand(n, *p.shape) for p in out[:3]), out.done_logit, out.reward)


def test_sample_low_temperature_returns_the_top_mean():
    # dim 0 prefers component 1, dim 1 component 2
    out = _single(
        means=[[5.0, -1.0, 3.0], [0.0, 4.0, -6.0]],
        stds=[[1.0, 0.5, 1.0], [1.0, 1.0, 0.5]],
        weights=[[0.3, 0.4, 0.3], [0.2, 0.2, 0.6]],
    )
    gen = torch.Generator().manual_seed(0)
    z = sample_z(_expand(out, 1000), temperature=1e-4, generator=gen)
    assert z.shape == (1000, 2)
    torch.testing.assert_close(z, torch.tensor([-1.0, -6.0]).expand(1000, 2), atol=0.05, rtol=0)
    torch.testing.assert_close(sample_z(out, temperature=0.0), torch.tensor([-1.0, -6.0]))


def test_sample_moments_and_temperature():
    n = 40_000
    out = _expand(_single(means=[[1.5], [-2.0]], stds=[[0.5], [2.0]]), n)
    gen = torch.Generator().manual_seed(1)
    z = sample_z(out, temperature=1.0, generator=gen).numpy()
    np.testing.assert_allclose(z.mean(0), [1.5, -2.0], atol=0.05)
    np.testing.assert_allclose(z.std(0), [0.5, 2.0], rtol=0.03)
    z = sample_z(out, temperature=0.25, generator=gen).numpy()
    np.testing.assert_allclose(z.mean(0), [1.5, -2.0], atol=0.03)
    np.testing.assert_allclose(z.std(0), [0.25, 1.0], rtol=0.03)


def test_sample_mixture_frequencies_follow_the_temperature():
    # two far-apart components with weights 0.8 / 0.2: tau = 1 keeps the weights,
    # tau = 2 flattens them to softmax(log w / 2) ~ 0.667 / 0.333
    n = 40_000
    out = _expand(_single(means=[[10.0, -10.0]], stds=[[0.1, 0.1]], weights=[[0.8, 0.2]]), n)
    gen = torch.Generator().manual_seed(2)
    for tau, p in ((1.0, 0.8), (2.0, 2 / 3)):
        share = (sample_z(out, tau, gen) > 0).float().mean().item()
        assert share == pytest.approx(p, abs=0.01)


def test_sample_is_reproducible_with_a_seed():
    torch.manual_seed(0)
    out, _ = _rnn()(torch.randn(2, 4, 3), torch.randn(2, 4, 2), torch.zeros(2, 4))
    out = MDNOut(*(p.detach() for p in out))
    a = sample_z(out, 1.2, torch.Generator().manual_seed(7))
    b = sample_z(out, 1.2, torch.Generator().manual_seed(7))
    c = sample_z(out, 1.2, torch.Generator().manual_seed(8))
    assert a.shape == (2, 4, 3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_sample_repeat_shares_the_draws_between_blocks():
    """repeat=R: the N rows are R blocks with one set of random numbers, so equal predictions
    in rows i and i + N/R give equal samples, and the first block equals a draw of N/R rows."""
    torch.manual_seed(0)
    out, _ = _rnn()(torch.randn(2, 4, 3), torch.randn(2, 4, 2), torch.zeros(2, 4))
    out = MDNOut(*(torch.cat([p.detach()] * 3) for p in out))  # rows 0-1 == 2-3 == 4-5
    z = sample_z(out, 1.2, torch.Generator().manual_seed(7), repeat=3)
    torch.testing.assert_close(z[:2], z[2:4], rtol=0, atol=0)
    torch.testing.assert_close(z[:2], z[4:], rtol=0, atol=0)
    first = MDNOut(*(p[:2] for p in out))
    torch.testing.assert_close(z[:2], sample_z(first, 1.2, torch.Generator().manual_seed(7)))
    with pytest.raises(ValueError, match="blocks"):
        sample_z(out, 1.2, torch.Generator().manual_seed(7), repeat=4)
