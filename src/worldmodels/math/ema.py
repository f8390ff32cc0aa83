"""Exponential moving averages of module weights (slow critics and target networks)."""

from __future__ import annotations

import torch
from torch import nn


def _matched(
    target: nn.Module, source: nn.Module, kind: str
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Lists of target and source tensors of `kind` ('parameters' or 'buffers'), checked by name."""
    tgt = dict(getattr(target, f"named_{kind}")())
    src = dict(getattr(source, f"named_{kind}")())
    if tgt.keys() != src.keys():
        raise ValueError(f"{kind} differ: {sorted(tgt.keys() ^ src.keys())}")
    names = list(tgt)
    return [tgt[k] for k in names], [src[k] for k in names]


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """In place: target params <- decay * target + (1 - decay) * source; buffers are copied."""
    tgt_params, src_params = _matched(target, source, "parameters")
    if tgt_params:
        if decay == 0.0:
            torch._foreach_copy_(tgt_params, src_params)
        else:
            torch._foreach_lerp_(tgt_params, src_params, 1.0 - decay)
    tgt_bufs, src_bufs = _matched(target, source, "buffers")
    for t, s in zip(tgt_bufs, src_bufs):
        t.copy_(s)


def hard_update(target: nn.Module, source: nn.Module) -> None:
    """In place: copy every parameter and buffer of source into target."""
    ema_update(target, source, 0.0)
