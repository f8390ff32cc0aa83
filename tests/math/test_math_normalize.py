"""Tests for worldmodels.math.normalize.PercentileNormalizer."""

import torch

from worldmodels.math import PercentileNormalizer


def test_single_update_no_decay_sets_percentiles():
    norm = PercentileNormalizer(decay=0.0)
    norm.update(torch.arange(101.0).reshape(1, 101))
    torch.testing.assert_close(norm.offset(), torch.tensor(5.0))
    torch.testing.assert_close(norm.lo, torch.tensor(5.0))
    torch.testing.assert_close(norm.hi, torch.tensor(95.0))
    torch.testing.assert_close(norm.scale(), torch.tensor(90.0))


def test_initial_and_floor():
    norm = PercentileNormalizer(debias=True)
    assert norm.offset() == 0.0 and norm.scale() == 1.0
    norm.update(torch.full((4, 8), 3.0))
    torch.testing.assert_close(norm.offset(), torch.tensor(3.0))
    torch.testing.assert_close(norm.scale(), torch.tensor(1.0))


def test_ema_debiasing():
    decay = 0.9
    norm = PercentileNormalizer(decay=decay, debias=True)
    batches = [torch.arange(101.0) * k for k in (1.0, 2.0, 4.0)]
    norm.update(batches[0])
    # Debiased: the first update gives the first batch's percentiles despite zero init.
    torch.testing.assert_close(norm.lo, torch.tensor(5.0))
    torch.testing.assert_close(norm.hi, torch.tensor(95.0))
    ema_lo = ema_hi = 0.0
    for n, batch in enumerate(batches, start=1):
        if n > 1:
            norm.update(batch)
        ema_lo = decay * ema_lo + (1 - decay) * torch.quantile(batch, 0.05).item()
        ema_hi = decay * ema_hi + (1 - decay) * torch.quantile(batch, 0.95).item()
        torch.testing.assert_close(norm.lo, torch.tensor(ema_lo / (1 - decay**n)))
        torch.testing.assert_close(norm.hi, torch.tensor(ema_hi / (1 - decay**n)))
    torch.testing.assert_close(norm.scale(), norm.hi - norm.lo)


def test_default_is_the_reference_undebiased_ema():
    """dreamerv3 configs.yaml ``retnorm: {impl: perc, rate: 0.01, limit: 1.0, debias: False}``:
    lo and hi start at 0 and move 1 % of the way per update, so a batch ranging over 49 still
    gives the floor scale 1 at first; after n updates on the same batch the EMA has reached
    (1 - 0.99^n) of its percentiles (hand-worked)."""
    norm = PercentileNormalizer()
    batch = torch.linspace(0.0, 49.0 / 0.9, 1001)  # 5th..95th percentile range: 49
    q5, q95 = torch.quantile(batch, torch.tensor([0.05, 0.95]))
    torch.testing.assert_close(q95 - q5, torch.tensor(49.0))
    norm.update(batch)
    torch.testing.assert_close(norm.lo, 0.01 * q5)
    torch.testing.assert_close(norm.hi, 0.01 * q95)
    torch.testing.assert_close(norm.scale(), torch.tensor(1.0))  # max(1, 0.49)
    for _ in range(199):
        norm.update(batch)
    reached = 1.0 - 0.99**200
    torch.testing.assert_close(norm.lo, reached * q5)
    torch.testing.assert_close(norm.scale(), reached * torch.tensor(49.0))


def test_update_ignores_gradients():
    norm = PercentileNormalizer()
    x = torch.randn(16, requires_grad=True)
    norm.update(x * 10)
    assert not norm.lo.requires_grad and not norm.scale().requires_grad


def test_state_dict_round_trip():
    norm = PercentileNormalizer(decay=0.5)
    for k in range(3):
        norm.update(torch.randn(50) * (k + 1))
    assert set(norm.state_dict()) == {"lo", "hi", "count"}
    fresh = PercentileNormalizer(decay=0.5)
    fresh.load_state_dict(norm.state_dict())
    torch.testing.assert_close(fresh.offset(), norm.offset())
    torch.testing.assert_close(fresh.scale(), norm.scale())
    batch = torch.randn(50)
    norm.update(batch)
    fresh.update(batch)
    torch.testing.assert_close(fresh.lo, norm.lo)
    torch.testing.assert_close(fresh.hi, norm.hi)
    assert norm.to(torch.float64).lo.dtype == torch.float64
