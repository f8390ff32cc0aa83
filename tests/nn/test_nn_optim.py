"""LaPropAGC against a hand-written scalar computation of the Nature 2025 optimiser chain."""

import math

import pytest
import torch

from worldmodels.nn.optim import LaPropAGC


def _reference(p, grads, lr, agc, pmin, b1, b2, eps, warmup):
    """AGC -> RMS scaling (debiased) -> momentum (debiased) -> linear warmup, in plain floats
    on a list of values (one tensor)."""
    nu = [0.0] * len(p)
    mu = [0.0] * len(p)
    p = list(p)
    for t, g in enumerate(grads, start=1):
        gnorm = math.sqrt(sum(x * x for x in g))
        pnorm = math.sqrt(sum(x * x for x in p))
        upper = agc * max(pmin, pnorm)
        g = [x / max(1.0, gnorm / upper) for x in g] if agc else g
        nu = [b2 * n + (1 - b2) * x * x for n, x in zip(nu, g)]
        u = [x / (math.sqrt(n / (1 - b2**t)) + eps) for x, n in zip(g, nu)]
        mu = [b1 * m + (1 - b1) * x for m, x in zip(mu, u)]
        rate = lr * (min(1.0, (t - 1) / warmup) if warmup else 1.0)
        p = [x - rate * m / (1 - b1**t) for x, m in zip(p, mu)]
    return p


@pytest.mark.parametrize("agc,warmup", [(0.3, 3), (0.0, 0), (0.01, 0)])
def test_laprop_agc_matches_hand_computation(agc, warmup):
    start = [0.5, -1.0, 2.0]
    grads = [[0.3, -0.2, 5.0], [0.1, 0.4, -3.0], [-0.2, 0.0, 1.0], [0.05, 0.1, 0.2]]
    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    opt = LaPropAGC([param], lr=0.1, agc=agc, pmin=1e-3, eps=1e-8, warmup=warmup)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    expected = _reference(start, grads, 0.1, agc, 1e-3, 0.9, 0.999, 1e-8, warmup)
    torch.testing.assert_close(param.detach(), torch.tensor(expected, dtype=torch.float64))


def test_laprop_agc_clips_relative_to_parameter_norm():
    # One step without warmup: the first LaProp step is +-lr per element whatever the size of
    # the gradient (RMS-normalised), so AGC shows only through the second moment it feeds.
    param = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # ||p|| = 5 -> clip at 1.5
    opt = LaPropAGC([param], lr=1.0, agc=0.3, warmup=0)
    param.grad = torch.tensor([30.0, 40.0])  # ||g|| = 50 -> scaled to 1.5
    opt.step()
    torch.testing.assert_close(opt.state[param]["nu"], 0.001 * torch.tensor([0.9, 1.2]) ** 2)
    torch.testing.assert_close(param.detach(), torch.tensor([2.0, 3.0]))


def test_laprop_rejects_bad_settings():
    with pytest.raises(ValueError, match="lr"):
        LaPropAGC([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
