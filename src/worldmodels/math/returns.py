"""Lambda-returns and trajectory weights for imagined rollouts (Dreamer V1-V3).

Time alignment (docs/conventions.md): a trajectory of T transitions has `reward[:, t] = r_{t+1}`
and `cont[:, t] = c_{t+1}`, the reward and continue flag that arrive after acting in state s_t,
and `value[:, t] = v(s_t)` for t = 0..T (the last entry is the bootstrap).
"""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_return(reward: Tensor, cont: Tensor, value: Tensor, gamma: float, lam: float) -> Tensor:
    """[B, T], [B, T], [B, T+1] -> [B, T] TD(lambda) returns (Dreamer lambda-return).

    R_t = r_{t+1} + gamma * c_{t+1} * ((1 - lam) * v(s_{t+1}) + lam * R_{t+1}),  R_T = v(s_T),
    with reward[:, t] = r_{t+1}, cont[:, t] = c_{t+1} and value[:, t] = v(s_t).
    lam = 0 gives the one-step TD target, lam = 1 the discounted Monte-Carlo return plus the
    discounted bootstrap value.
    """
    assert reward.shape == cont.shape, (reward.shape, cont.shape)
    assert value.shape[:-1] == reward.shape[:-1], (value.shape, reward.shape)
    assert value.shape[-1] == reward.shape[-1] + 1, (value.shape, reward.shape)
    T = reward.shape[-1]
    ret = value[..., T]
    returns = []
    for t in reversed(range(T)):
        ret = reward[..., t] + gamma * cont[..., t] * ((1.0 - lam) * value[..., t + 1] + lam * ret)
        returns.append(ret)
    return torch.stack(returns[::-1], dim=-1)


def discount_weights(cont: Tensor, gamma: float) -> Tensor:
    """[B, T] -> [B, T+1] imagined-state loss weights: w_0 = 1, w_{t+1} = w_t * gamma * c_{t+1}.

    DreamerV3 weights the actor and critic losses at s_t by the discounted probability that the
    imagined trajectory is still alive there (reference: cumprod(disc * cont) / disc). With
    cont[:, t] = c_{t+1} as in `lambda_return`, w_t = gamma^t * prod_{i<t} cont[:, i]. Pass
    gamma = 1 for the plain survival probability (the reference's `contdisc` mode, where the
    discount is folded into the continue target instead).
    """
    ones = torch.ones_like(cont[..., :1])
    return torch.cumprod(torch.cat([ones, gamma * cont], dim=-1), dim=-1)
