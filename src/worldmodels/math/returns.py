"""Lambda-returns and trajectory weights for imagined rollouts (Dreamer V1-V3).

Time alignment (docs/conventions.md): a trajectory of T transitions has `reward[:, t] = r_{t+1}`
and `cont[:, t] = c_{t+1}`, the reward and continue flag that arrive after acting in state s_t,
and `value[:, t] = v(s_t)` for t = 0..T (the last entry is the bootstrap).
"""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_return(
    reward: Tensor, cont: Tensor, value: Tensor, gamma: float, lam: float | Tensor
) -> Tensor:
    """[B, T], [B, T], [B, T+1] -> [B, T] TD(lambda) returns (Dreamer lambda-return).

    R_t = r_{t+1} + gamma * c_{t+1} * ((1 - lam) * v(s_{t+1}) + lam * R_{t+1}),  R_T = v(s_T),
    with reward[:, t] = r_{t+1}, cont[:, t] = c_{t+1} and value[:, t] = v(s_t).
    lam = 0 gives the one-step TD target, lam = 1 the discounted Monte-Carlo return plus the
    discounted bootstrap value. ``lam`` may be a ``[B, T]`` tensor (``lam[:, t]`` mixes at
    s_{t+1}); 0 there cuts the return at an episode boundary.
    """
    assert reward.shape == cont.shape, (reward.shape, cont.shape)
    assert value.shape[:-1] == reward.shape[:-1], (value.shape, reward.shape)
    assert value.shape[-1] == reward.shape[-1] + 1, (value.shape, reward.shape)
    T = reward.shape[-1]
    ret = value[..., T]
    if not isinstance(lam, Tensor):
        lam = torch.full_like(reward, float(lam))
    returns = []
    for t in reversed(range(T)):
        lt = lam[..., t]
        ret = reward[..., t] + gamma * cont[..., t] * ((1.0 - lt) * value[..., t + 1] + lt * ret)
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


def replay_lambda_return(
    reward: Tensor,
    is_terminal: Tensor,
    is_last: Tensor,
    is_first: Tensor,
    boot: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Replayed ``[B, T]`` steps -> (returns ``[B, T-1]``, loss weights ``[B, T-1]``).

    DreamerV3 (Nature 2025) ``repval``: lambda-returns over the replayed rewards whose bootstrap at
    each step is ``boot[:, t]``, the imagined lambda-return from that step's posterior. Replay
    keys follow docs/conventions.md (``reward[:, t] = r_t`` arrives with o_t), so
    R_t = r_{t+1} + gamma * c_{t+1} * ((1 - lam_t) * boot_{t+1} + lam_t * R_{t+1}), R_{T-1} =
    boot_{T-1}, where lam_t = 0 when the episode ends at t+1 (``is_last``) or a new one starts
    at t+2 (``is_first``). The weight is 0 for t at the end of an episode (no transition to learn).
    """
    first_next = torch.cat([is_first[:, 1:], torch.zeros_like(is_first[:, :1])], 1).float()
    cut = torch.maximum(is_last.float(), first_next)  # [B, T]: no transition t -> t+1
    cont = 1.0 - is_terminal[:, 1:].float()
    ret = lambda_return(reward[:, 1:].float(), cont, boot, gamma, lam * (1.0 - cut[:, 1:]))
    return ret, 1.0 - cut[:, :-1]


def n_step_value_targets(
    reward: Tensor,
    value: Tensor,
    is_last: Tensor,
    is_terminal: Tensor,
    gamma: float,
    n: int | Tensor,
    sign: float = 1.0,
) -> Tensor:
    """Replayed ``[B, T]`` steps -> ``[B, T]`` n-step bootstrapped value targets (MuZero Eq. 3).

    z_t = u_{t+1} + (s gamma) u_{t+2} + ... + (s gamma)^{m-1} u_{t+m} + (s gamma)^m v_{t+m},
    with replay keys as in docs/conventions.md (``reward[:, t] = u_t`` arrives with o_t,
    ``value[:, t]`` the search value at o_t) and s = ``sign`` (-1 in alternating two-player
    games: values are from the perspective of the player to move, rewards from the player who
    acted). m = n, shortened to end at the episode's last step e (``is_last``) and at the window
    end T - 1; at a true terminal (``is_terminal[e]``) the bootstrap v_e is 0 (a truncated last
    step bootstraps from its own value). Each z_t stays within o_t's own episode. ``n`` is one
    horizon for every row, or a ``[B]`` long tensor of one horizon per row (EfficientZero's
    off-policy correction).
    """
    assert reward.shape == value.shape == is_last.shape == is_terminal.shape, (
        reward.shape,
        value.shape,
        is_last.shape,
        is_terminal.shape,
    )
    B, T = reward.shape
    reward, value = reward.float(), value.float()
    last, term = is_last.bool(), is_terminal.bool()
    factor = sign * gamma
    target = torch.zeros_like(value)
    scale = torch.ones_like(value)
    open_ = ~last  # [B, T]: o_{t+j-1} is not the last of o_t's episode, keep adding rewards
    boot = torch.zeros(B, T, dtype=torch.long, device=value.device)  # m for each t
    rows = torch.as_tensor(n, device=value.device).long().expand(B)  # n of each row
    for j in range(1, min(int(rows.max()), T - 1) + 1):
        # u_{t+j} counts where o_t .. o_{t+j-1} are not last and t + j is inside the window.
        take = open_ & (rows >= j)[:, None]
        take[:, T - j :] = False
        r = torch.zeros_like(reward)
        r[:, : T - j] = reward[:, j:]
        target = target + take * scale * r
        boot = boot + take.long()
        scale = torch.where(take, scale * factor, scale)
        nxt = torch.zeros_like(last)
        nxt[:, : T - j] = last[:, j:]
        open_ = take & ~nxt
    pos = (torch.arange(T, device=value.device)[None, :] + boot).clamp(max=T - 1)
    v_boot = value.gather(1, pos)
    cut = term.gather(1, pos) & last.gather(1, pos)
    return target + scale * torch.where(cut, 0.0, v_boot)
