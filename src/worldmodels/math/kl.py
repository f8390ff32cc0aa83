"""KL divergences between latent distributions, with the DreamerV2 and V3 balancing schemes."""

from __future__ import annotations

import torch
from torch import Tensor

from .dists import log_softmax


def categorical_kl(lhs_logits: Tensor, rhs_logits: Tensor) -> Tensor:
    """[..., G, K] x2 -> [...] KL(lhs || rhs) of G independent categoricals, summed over G and K."""
    lhs_log = log_softmax(lhs_logits)
    rhs_log = log_softmax(rhs_logits)
    lhs_probs = lhs_log.exp()
    terms = torch.where(lhs_probs > 0, lhs_probs * (lhs_log - rhs_log), torch.zeros_like(lhs_probs))
    return terms.sum((-2, -1))


def dyn_rep_kl(
    post_logits: Tensor, prior_logits: Tensor, free_bits: float = 1.0
) -> tuple[Tensor, Tensor]:
    """[..., G, K] x2 -> ([...], [...]) DreamerV3 dynamics and representation losses.

    dyn = max(free_bits, KL(sg(post) || prior)) trains only the prior, and
    rep = max(free_bits, KL(post || sg(prior))) trains only the posterior. The floor is a clamp,
    so an element below free_bits gets zero gradient, as in the paper.
    """
    dyn = categorical_kl(post_logits.detach(), prior_logits).clamp(min=free_bits)
    rep = categorical_kl(post_logits, prior_logits.detach()).clamp(min=free_bits)
    return dyn, rep


def balanced_kl(
    post_logits: Tensor, prior_logits: Tensor, alpha: float = 0.8, free_nats: float = 0.0
) -> Tensor:
    """[..., G, K] x2 -> [...] DreamerV2 KL balancing.

    alpha * max(free_nats, KL(sg(post) || prior))
    + (1 - alpha) * max(free_nats, KL(post || sg(prior))), with the free-nats floor clamped per
    element (the DreamerV2 code applies it to the batch mean of each term instead).
    """
    prior_term = categorical_kl(post_logits.detach(), prior_logits).clamp(min=free_nats)
    post_term = categorical_kl(post_logits, prior_logits.detach()).clamp(min=free_nats)
    return alpha * prior_term + (1.0 - alpha) * post_term


def gaussian_kl(mean_l: Tensor, std_l: Tensor, mean_r: Tensor, std_r: Tensor) -> Tensor:
    """[..., D] x4 -> [...] KL(N(mean_l, std_l) || N(mean_r, std_r)) of diagonal Gaussians."""
    var_ratio = (std_l / std_r) ** 2
    mean_term = ((mean_l - mean_r) / std_r) ** 2
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio)).sum(-1)
