"""Tests for worldmodels.math.ema."""

import torch
from torch import nn

from worldmodels.math import ema_update, hard_update


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _randomise_buffers(net: nn.Module) -> None:
    net.train()
    net(torch.randn(8, 3))


def test_decay_zero_copies_exactly():
    target, source = _net(0), _net(1)
    _randomise_buffers(source)
    ema_update(target, source, 0.0)
    for (name, t), s in zip(target.state_dict().items(), source.state_dict().values()):
        assert torch.equal(t, s), name


def test_decay_half_averages_and_copies_buffers():
    target, source = _net(0), _net(1)
    _randomise_buffers(source)
    before = {k: v.clone() for k, v in target.named_parameters()}
    ema_update(target, source, 0.5)
    for name, param in target.named_parameters():
        src = dict(source.named_parameters())[name]
        torch.testing.assert_close(param, 0.5 * before[name] + 0.5 * src)
    for (name, t), s in zip(target.named_buffers(), source.buffers()):
        assert torch.equal(t, s), name


def test_decay_one_keeps_target_and_no_grad_tracking():
    target, source = _net(0), _net(1)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, source, 1.0)
    for p, b in zip(target.parameters(), before):
        torch.testing.assert_close(p, b)
        assert p.grad_fn is None


def test_hard_update():
    target, source = _net(0), _net(1)
    _randomise_buffers(source)
    hard_update(target, source)
    for t, s in zip(target.state_dict().values(), source.state_dict().values()):
        assert torch.equal(t, s)
