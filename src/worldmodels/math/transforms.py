"""Symlog / symexp squashing and the two-hot encoding of scalars (DreamerV3, Hafner et al. 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def symlog(x: Tensor) -> Tensor:
    """[...] -> [...]: symlog(x) = sign(x) * ln(1 + |x|) (DreamerV3 "symlog predictions")."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """[...] -> [...]: symexp(x) = sign(x) * (exp(|x|) - 1), the inverse of `symlog` (DreamerV3)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def symexp_bins(
    n: int = 255,
    low: float = -20.0,
    high: float = 20.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """[n] float32 bins B = symexp(linspace(low, high, n)) in value space (DreamerV3 twohot loss).

    When low == -high the bins are built as an exact mirror image (B[i] == -B[n-1-i]), so an odd
    n has exactly 0 in the middle and the symmetric sum of `two_hot_decode` cancels exactly.
    """
    if n < 2:
        raise ValueError(f"need at least 2 bins, got {n}")
    if low == -high:
        if n % 2 == 1:
            half = torch.linspace(0.0, high, (n + 1) // 2, dtype=torch.float64)
            grid = torch.cat([-half[1:].flip(0), half])
        else:
            half = torch.linspace(high / (n - 1), high, n // 2, dtype=torch.float64)
            grid = torch.cat([-half.flip(0), half])
    else:
        grid = torch.linspace(low, high, n, dtype=torch.float64)
    return symexp(grid).to(device=device, dtype=torch.float32)


@torch.no_grad()
def two_hot_index(x: Tensor, bins: Tensor) -> tuple[Tensor, Tensor]:
    """[...] -> ([...] index of the bin below x, [...] weight of the bin above) (see two_hot).

    The pair is the sparse form of the two-hot target: weight ``1 - w`` on ``bins[i]`` and ``w``
    on ``bins[i + 1]``; losses gather with it instead of building the dense ``[..., n]`` target.
    """
    x = x.detach()
    dtype = torch.promote_types(x.dtype, bins.dtype) if x.is_floating_point() else bins.dtype
    x = x.to(dtype)
    bins = bins.to(device=x.device, dtype=dtype)
    n = bins.shape[-1]
    x = x.clamp(bins[0], bins[-1])
    # Index of the bin at or below x, kept in [0, n-2] so that `above` is always a valid bin.
    below = (torch.bucketize(x, bins, right=True) - 1).clamp(0, n - 2)
    b_lo, b_hi = bins[below], bins[below + 1]
    return below, (x - b_lo) / (b_hi - b_lo)


@torch.no_grad()
def two_hot(x: Tensor, bins: Tensor) -> Tensor:
    """[...] -> [..., n] weights on the two bins around x with sum(w * bins) = x (DreamerV3 twohot).

    `bins` is an ascending [n] tensor in the space of x. DreamerV3 usage, as in the paper:
    bins = symexp_bins(255, -20, 20) and x the raw reward or return, both in value space. (The
    reference code instead two-hots symlog(x) over linspace(-20, 20) and decodes symexp(E[b]);
    that interpolates between the same two bins in symlog space, so the weights differ slightly.)
    x outside [bins[0], bins[-1]] puts weight 1 on the edge bin. The result is a target: it is
    computed on detached x and carries no gradient.
    """
    below, w_hi = two_hot_index(x, bins)
    n = bins.shape[-1]
    w_hi = w_hi.unsqueeze(-1)
    onehot_lo = F.one_hot(below, n).to(w_hi.dtype)
    onehot_hi = F.one_hot(below + 1, n).to(w_hi.dtype)
    return onehot_lo * (1.0 - w_hi) + onehot_hi * w_hi


def two_hot_decode(logits: Tensor, bins: Tensor) -> Tensor:
    """[..., n] logits -> [...] expected value sum(softmax(logits) * bins) (DreamerV3).

    The sum pairs bin i with its mirror bin n-1-i before summing (and adds a lone middle bin on
    its own), as the reference implementation does, so that symmetric bins with equal probability
    cancel exactly: uniform logits over `symexp_bins()` decode to exactly 0.
    """
    probs = torch.softmax(logits, dim=-1)
    weighted = probs * bins.to(device=probs.device, dtype=probs.dtype)
    n = weighted.shape[-1]
    m = n // 2
    lower = weighted[..., :m]
    upper = weighted[..., n - m :]
    total = (lower.flip(-1) + upper).sum(-1)
    if n % 2 == 1:
        total = total + weighted[..., m]
    return total


def twohot_loss(logits: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """[..., n] logits, [...] target -> [...] CE -sum(two_hot(target) * log_softmax(logits))."""
    return twohot_nll(torch.log_softmax(logits, dim=-1), target, bins)


def twohot_nll(log_probs: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """[..., n] log-probs, [...] target -> [...] two-hot cross-entropy (sparse gather)."""
    below, w_hi = two_hot_index(target.detach(), bins)
    pair = log_probs.gather(-1, torch.stack([below, below + 1], -1))
    w_hi = w_hi.to(log_probs.dtype)
    return -(pair[..., 0] * (1.0 - w_hi) + pair[..., 1] * w_hi)
