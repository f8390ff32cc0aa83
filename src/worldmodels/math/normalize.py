"""Return normalisation by an EMA of batch percentiles (DreamerV3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PercentileNormalizer(nn.Module):
    """DreamerV3 return scale S = max(floor, Per(R, high) - Per(R, low)), with EMA'd percentiles.

    The buffers `lo` and `hi` hold the EMA of the batch `low` and `high` quantiles, started at
    zero: lo <- decay * lo + (1 - decay) * q. As in the reference (`retnorm: {impl: perc, rate:
    0.01, limit: 1.0, debias: False}`), the EMA is not debiased by default, so the scale starts
    at `floor` and grows over the first few hundred updates. With ``debias=True`` the EMA is
    divided by (1 - decay^n) after n updates, folded into the update itself (w_n = (1 - decay) /
    (1 - decay^n)), and the first update sets `lo` and `hi` to that batch's quantiles. Before any
    update, offset() = 0, scale() = floor.
    """

    lo: Tensor
    hi: Tensor
    count: Tensor
    levels: Tensor

    def __init__(
        self,
        low: float = 0.05,
        high: float = 0.95,
        decay: float = 0.99,
        floor: float = 1.0,
        debias: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"need 0 <= low <= high <= 1, got {low}, {high}")
        self.low = low
        self.high = high
        self.decay = decay
        self.floor = floor
        self.debias = debias
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("levels", torch.tensor([low, high]), persistent=False)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold the `low` and `high` quantiles of x (any shape, detached) into the EMA."""
        flat = x.detach().reshape(-1).to(self.lo.dtype)
        q = torch.quantile(flat, self.levels.to(flat.dtype))  # no host copy (CUDA graphs)
        self.count.add_(1.0)
        weight = 1.0 - self.decay
        if self.debias:
            weight = weight / (1.0 - self.decay**self.count)
        self.lo.lerp_(q[0], weight)
        self.hi.lerp_(q[1], weight)

    def scale(self) -> Tensor:
        """[] max(floor, hi - lo), the divisor of returns (DreamerV3 return normalisation)."""
        return torch.clamp(self.hi - self.lo, min=self.floor)

    def offset(self) -> Tensor:
        """[] lo, the low percentile (subtracted from returns and baselines alike)."""
        return self.lo

    def extra_repr(self) -> str:
        """Hyperparameters for print(module)."""
        return (
            f"low={self.low}, high={self.high}, decay={self.decay}, floor={self.floor}, "
            f"debias={self.debias}"
        )
