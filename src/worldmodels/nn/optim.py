"""Optimisers the papers use that PyTorch does not ship: LaProp with adaptive gradient clipping
(DreamerV3, Nature 2025: ``agc(0.3) -> scale_by_rms -> momentum -> lr`` with linear warmup)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class LaPropAGC(torch.optim.Optimizer):
    """LaProp (Ziyin et al. 2020) after adaptive gradient clipping (Brock et al. 2021).

    Per parameter tensor p with gradient g, at step t (1-based):

        g <- g * min(1, agc * max(pmin, ||p||) / ||g||)          (AGC, per tensor)
        nu <- beta2 nu + (1 - beta2) g^2;   u = g / (sqrt(nu / (1 - beta2^t)) + eps)
        mu <- beta1 mu + (1 - beta1) u;     p <- p - lr_t * mu / (1 - beta1^t)

    with lr_t = lr * min(1, (t - 1) / warmup) (optax's linear ramp from 0, as the reference).
    ``agc=0`` turns clipping off. Unlike Adam the momentum averages already-normalised steps, so
    one outlier gradient cannot dominate a later update.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 4e-5,
        agc: float = 0.3,
        pmin: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        warmup: int = 1000,
    ):
        if lr <= 0 or agc < 0 or eps < 0 or warmup < 0:
            raise ValueError(f"bad LaPropAGC settings: lr={lr} agc={agc} eps={eps} warmup={warmup}")
        defaults = dict(lr=lr, agc=agc, pmin=pmin, betas=betas, eps=eps, warmup=warmup)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim.Optimizer API
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["agc"] > 0:
                    upper = group["agc"] * torch.clamp(p.norm(), min=group["pmin"])
                    g = g * (upper / torch.clamp(g.norm(), min=upper))
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["nu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["mu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] = state["step"] + 1  # not in place: loaded states may share it
                t = float(state["step"])
                nu, mu = state["nu"], state["mu"]
                nu.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                u = g / ((nu / (1 - beta2**t)).sqrt_().add_(group["eps"]))
                mu.mul_(beta1).add_(u, alpha=1 - beta1)
                warm = min(1.0, (t - 1) / group["warmup"]) if group["warmup"] else 1.0
                p.add_(mu, alpha=-group["lr"] * warm / (1 - beta1**t))
        return loss


def step_if_finite(optimizer: torch.optim.Optimizer, grad_norm: torch.Tensor) -> None:
    """``optimizer.step()`` unless the gradient norm is NaN or inf: a non-finite loss or
    gradient skips the update (the caller's metrics carry the norm; the learner counts it)."""
    if torch.isfinite(grad_norm):
        optimizer.step()
