"""Prediction heads whose output type is a config string; each output knows ``pred()`` and
``loss(target)`` (the DreamerV3 ``outs`` pattern), so switching V1 -> V3 heads is one value."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..math import symexp, symexp_bins, symlog, two_hot_decode, twohot_nll
from .layers import MLP

OUTPUTS = ("mse", "gauss", "symlog_mse", "symexp_twohot", "binary")


class MSEOutput:
    """Gaussian with unit variance: ``pred = mean``, ``loss = sum of squared errors``."""

    def __init__(self, mean: Tensor, event_dims: int):
        self.mean, self.event_dims = mean, event_dims

    def pred(self) -> Tensor:
        return self.mean

    def loss(self, target: Tensor) -> Tensor:
        err = (self.mean - target.detach()) ** 2
        return err.sum(tuple(range(-self.event_dims, 0))) if self.event_dims else err


class GaussOutput(MSEOutput):
    """Unit-variance Gaussian log-likelihood without its constant: ``loss = 0.5 * sum of squared
    errors`` (PlaNet's and Dreamer V1's ``Normal(mean, 1)`` heads)."""

    def loss(self, target: Tensor) -> Tensor:
        return 0.5 * super().loss(target)


class SymlogMSEOutput(MSEOutput):
    """Regression in symlog space (DreamerV3, vector observations): ``pred = symexp(raw)``."""

    def pred(self) -> Tensor:
        return symexp(self.mean)

    def loss(self, target: Tensor) -> Tensor:
        return super().loss(symlog(target))


class TwoHotOutput:
    """Categorical over ``bins`` trained with two-hot cross-entropy; ``pred`` is its expectation."""

    def __init__(self, logits: Tensor, bins: Tensor):
        self.logits, self.bins = logits, bins
        self._log_probs: Tensor | None = None

    def pred(self) -> Tensor:
        return two_hot_decode(self.logits, self.bins)

    def loss(self, target: Tensor) -> Tensor:
        if self._log_probs is None:  # shared by several targets (critic: return + slow critic)
            self._log_probs = torch.log_softmax(self.logits, -1)
        return twohot_nll(self._log_probs, target, self.bins)


class BinaryOutput:
    """Bernoulli from logits: ``pred`` is the probability, ``loss`` the binary cross-entropy."""

    def __init__(self, logits: Tensor):
        self.logits = logits

    def pred(self) -> Tensor:
        return torch.sigmoid(self.logits)

    def mode(self) -> Tensor:
        return (self.logits > 0).to(self.logits.dtype)

    def loss(self, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.logits, target.detach(), reduction="none")


class Head(nn.Module):
    """MLP + output layer giving an output object of type ``output``; scalar heads: shape ()."""

    def __init__(
        self,
        inp: int,
        shape: tuple[int, ...],
        output: str,
        units: int,
        layers: int,
        norm: str = "rms",
        act: str = "silu",
        bins: int = 255,
        outscale: float = 1.0,
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"unknown head output {output!r}; use one of {OUTPUTS}")
        if output == "symexp_twohot" and shape != ():
            raise ValueError("symexp_twohot heads are scalar (shape ())")
        self.shape, self.output = shape, output
        self.mlp = MLP(inp, units, layers, norm, act)
        size = int(torch.tensor(shape).prod().item()) if shape else 1
        out = bins if output == "symexp_twohot" else size
        self.out = nn.Linear(self.mlp.out_dim, out)
        if outscale == 0.0:
            nn.init.zeros_(self.out.weight)
        else:
            nn.init.trunc_normal_(self.out.weight, std=outscale / self.mlp.out_dim**0.5)
        nn.init.zeros_(self.out.bias)
        if output == "symexp_twohot":
            self.register_buffer("bins", symexp_bins(bins), persistent=False)

    def forward(self, feat: Tensor):
        x = self.out(self.mlp(feat)).float()  # float32 distributions under bf16 autocast
        if self.output == "symexp_twohot":
            return TwoHotOutput(x, self.bins)
        x = x.reshape(*x.shape[:-1], *self.shape) if self.shape else x.squeeze(-1)
        if self.output == "binary":
            return BinaryOutput(x)
        cls = {"symlog_mse": SymlogMSEOutput, "gauss": GaussOutput}.get(self.output, MSEOutput)
        return cls(x, len(self.shape))
