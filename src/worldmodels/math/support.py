"""MuZero's value transform and categorical support (Schrittwieser et al. 2020, Appendix F).

Scalars (rewards, values) are squashed by the invertible h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x
(Pohlen et al. 2018) and encoded on the integer support {-S, ..., S} as a two-hot vector: a target
of 3.7 puts 0.3 on 3 and 0.7 on 4. A head predicts logits over the 2S + 1 support points; its
scalar prediction is h^-1 of the expectation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .transforms import two_hot, two_hot_index

H_EPS = 0.001


def h_transform(x: Tensor, eps: float = H_EPS) -> Tensor:
    """[...] -> [...]: h(x) = sign(x) * (sqrt(|x| + 1) - 1) + eps * x (MuZero Appendix F)."""
    return torch.sign(x) * (torch.sqrt(torch.abs(x) + 1.0) - 1.0) + eps * x


def h_inverse(y: Tensor, eps: float = H_EPS) -> Tensor:
    """[...] -> [...]: the closed-form inverse of `h_transform` (Pohlen et al. 2018, Prop. A.2).

    h^-1(y) = sign(y) * (((sqrt(1 + 4 eps (|y| + 1 + eps)) - 1) / (2 eps))^2 - 1).
    """
    a = torch.abs(y)
    root = (torch.sqrt(1.0 + 4.0 * eps * (a + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return torch.sign(y) * (root * root - 1.0)


def support_points(support_size: int, device: torch.device | str | None = None) -> Tensor:
    """[2S + 1] float32 integer support -S..S."""
    return torch.arange(-support_size, support_size + 1, dtype=torch.float32, device=device)


def scalar_to_support(x: Tensor, support_size: int, eps: float = H_EPS) -> Tensor:
    """[...] -> [..., 2S + 1] two-hot of h(x) on the integer support -S..S (clipped at +-S)."""
    return two_hot(h_transform(x.float(), eps), support_points(support_size, x.device))


def support_to_scalar(logits: Tensor, support_size: int, eps: float = H_EPS) -> Tensor:
    """[..., 2S + 1] logits -> [...] h^-1(sum_i softmax(logits)_i * i), the head's scalar."""
    probs = torch.softmax(logits.float(), dim=-1)
    expected = (probs * support_points(support_size, logits.device)).sum(-1)
    return h_inverse(expected, eps)


def support_loss(logits: Tensor, target: Tensor, support_size: int, eps: float = H_EPS) -> Tensor:
    """[..., 2S + 1] logits, [...] target x -> [...] cross-entropy with the two-hot of h(x)."""
    points = support_points(support_size, logits.device)
    below, w_hi = two_hot_index(h_transform(target.detach().float(), eps), points)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    pair = log_probs.gather(-1, torch.stack([below, below + 1], -1))
    return -(pair[..., 0] * (1.0 - w_hi) + pair[..., 1] * w_hi)


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """[...] -> [...] identity forward, gradient times ``scale`` backward (MuZero pseudocode)."""
    return _ScaleGradient.apply(x, scale)


def min_max_scale(x: Tensor, start_dim: int = 1, eps: float = 1e-5) -> Tensor:
    """[B, ...] -> [B, ...] hidden state rescaled to [0, 1] per sample over dims >= start_dim.

    s_scaled = (s - min(s)) / (max(s) - min(s)) (MuZero Appendix G, "Training"); a constant
    state maps to 0 (the denominator is floored at ``eps``).
    """
    flat = x.flatten(start_dim)
    lo = flat.amin(-1, keepdim=True)
    hi = flat.amax(-1, keepdim=True)
    scaled = (flat - lo) / (hi - lo).clamp(min=eps)
    return scaled.view_as(x)
