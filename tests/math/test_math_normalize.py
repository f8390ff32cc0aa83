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
    norm = PercentileNormalizer()
    assert norm.offset() == 0.0 and norm.scale() == 1.0
    norm.update(torch.full((4, 8), 3.0))
    torch.testing.assert_close(norm.offset(), torch.tensor(3.0))
    torch.testing.assert_close(norm.scale(), torch.tensor(1.0))


def test_ema_debiasing():
    decay = 0.9
    norm = PercentileNormalizer(decay=decay)
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
