"""MPPI with a policy prior, as in TD-MPC2 (Hansen, Su & Wang, ICLR 2024; reference `_plan`).

Continuous (`MPPI`): a diagonal Gaussian over [H, A] starts at the warm start mean with std
`max_std`. Each iteration scores `num_samples` sequences: the caller's `num_pi_trajs` policy
rollouts (`prior_actions`, fixed across iterations) plus samples from the Gaussian clipped to
[-1, 1] (NaN scores count as 0). The `num_elites` best get weights
w_i = exp(temperature * (s_i - max_j s_j)) / Z and

    mean = sum_i w_i a_i,    std = clamp(sqrt(sum_i w_i (a_i - mean)^2), min_std, max_std).

(`temperature` multiplies the score, as in the reference code: larger is greedier.) After the
last iteration one elite is drawn with probabilities w and its first action is returned; in
explore mode N(0, std_0^2) noise is added (reference `tdmpc2.py` `_plan`). In eval mode the
reference returns the drawn elite's first action without noise (`eval_action="sample"`);
"mean" and "best" give deterministic alternatives.

Discrete (`DiscreteMPPI`, our extension for TD-MPC2 on discrete envs, cf. tdmpc2#42): the
Gaussian becomes independent categoricals probs [B, H, K] per step. Candidates are index
sequences drawn from them (the objective sees them one-hot, [B, P, H, K]), the same exponentiated
elite weights give probs = sum_i w_i onehot(a_i), mixed with a uniform floor `unimix` (the
categorical analogue of `min_std`). The warm start is the previous probs shifted by one step
(uniform last step) and mixed with `warm_start_mix` of uniform (the analogue of restarting at
`max_std`). The first action is a weighted elite draw (explore, eval_action="sample") or the
argmax of probs[:, 0] / the best elite's; no noise is added in explore mode (the draw is the
exploration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodels.planners.base import (
    Mode,
    Objective,
    PlanResult,
    WarmStartPlanner,
    check_prior,
    gather_candidates,
)


@dataclass
class MPPIConfig:
    """TD-MPC2's planner settings (reference `tdmpc2/config.yaml`)."""

    horizon: int = 3
    """Planning horizon H."""
    iterations: int = 6
    """MPPI iterations."""
    num_samples: int = 512
    """Sequences scored per iteration, policy-prior sequences included."""
    num_pi_trajs: int = 24
    """Policy-prior sequences N the caller samples and passes as prior_actions (or passes none)."""
    num_elites: int = 64
    """Best sequences the weighted update uses."""
    temperature: float = 0.5
    """Multiplies the elite scores in the exponent (an inverse temperature)."""
    min_std: float = 0.05
    max_std: float = 2.0
    """Std bounds; every plan starts at max_std."""
    eval_action: Literal["sample", "mean", "best"] = "sample"
    """Eval-mode first action: a weighted elite draw without noise (reference), the mean's, or
    the best elite's. For DiscreteMPPI, "mean" is the argmax of the step-0 probabilities."""
    unimix: float = 0.01
    """DiscreteMPPI: uniform mixed into the probabilities after every update."""
    warm_start_mix: float = 0.5
    """DiscreteMPPI: uniform mixed into the shifted previous probabilities at the start."""


@dataclass
class DiscretePlanResult:
    """What DiscreteMPPI returns."""

    action: Tensor
    """[B] int64 index of the first action to execute."""
    probs: Tensor
    """[B, H, K] the final per-step action probabilities."""
    score: Tensor
    """[B] the best candidate's score in the last iteration."""
    best: Tensor
    """[B, H] int64 the best candidate of the last iteration."""


def mppi_weights(elite_score: Tensor, temperature: float) -> Tensor:
    """[B, E] -> [B, E] w_i = exp(temperature * (s_i - max_j s_j)) / Z (TD-MPC2 MPPI update)."""
    w = torch.exp(temperature * (elite_score - elite_score.amax(dim=1, keepdim=True)))
    return w / w.sum(dim=1, keepdim=True)


def _pick(
    weights: Tensor,
    mode: Mode,
    eval_action: str,
    generator: torch.Generator | None,
) -> Tensor:
    """[B, E] -> [B] elite index: a draw with probabilities w, or 0 (the best) in eval "best"."""
    if mode == "eval" and eval_action == "best":
        return torch.zeros(weights.shape[0], dtype=torch.long, device=weights.device)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


class MPPI(WarmStartPlanner):
    """Batched MPPI planner with a policy prior (TD-MPC2); see the module docstring."""

    config_cls = MPPIConfig
    config: MPPIConfig

    @torch.no_grad()
    def plan(
        self,
        objective: Objective,
        batch_size: int,
        action_dim: int,
        device: torch.device | str = "cpu",
        *,
        init_mean: Tensor | None = None,
        prior_actions: Tensor | None = None,
        generator: torch.Generator | None = None,
        mode: Mode = "explore",
    ) -> PlanResult:
        """objective([B, P, H, A]) -> [B, P]; returns the first action [B, A] (see module doc).

        init_mean [B, H, A] overrides the warm start; prior_actions [B, N, H, A] (N is usually
        num_pi_trajs) take the first N of the num_samples slots in every iteration.
        """
        cfg = self.config
        B, H, A = batch_size, cfg.horizon, action_dim
        num_prior = check_prior(prior_actions, B, H, cfg.num_samples)
        assert num_prior in (0, cfg.num_pi_trajs), (num_prior, cfg.num_pi_trajs)
        assert mode in ("explore", "eval"), mode
        mean = self.warm.initial(init_mean, (B, H, A), device, fill=0.0)
        std = torch.full_like(mean, cfg.max_std)
        prior = None if prior_actions is None else prior_actions.to(mean).clamp(-1, 1)

        # Iterate MPPI
        for _ in range(cfg.iterations):
            # Sample actions around the mean, after the policy prior's
            noise = torch.randn(
                B, cfg.num_samples - num_prior, H, A, device=mean.device, generator=generator
            )
            actions = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1)
            if prior is not None:
                actions = torch.cat([prior, actions], dim=1)

            # Compute elite actions
            score = objective(actions)
            assert score.shape == (B, cfg.num_samples), (score.shape, cfg.num_samples)
            elite_score, elite_idx = torch.topk(score.nan_to_num(0.0), cfg.num_elites, dim=1)
            w = mppi_weights(elite_score, cfg.temperature)
            elites = gather_candidates(actions, elite_idx)

            # Update parameters
            w4 = w[:, :, None, None]
            mean = (w4 * elites).sum(dim=1)
            std = (w4 * (elites - mean.unsqueeze(1)) ** 2).sum(dim=1).sqrt()
            std = std.clamp(cfg.min_std, cfg.max_std)

        # Select action
        if mode == "eval" and cfg.eval_action == "mean":
            action = mean[:, 0]
        else:
            i = _pick(w, mode, cfg.eval_action, generator)
            action = elites[torch.arange(B, device=mean.device), i, 0]
        if mode == "explore":
            noise = torch.randn(B, A, device=mean.device, generator=generator)
            action = (action + std[:, 0] * noise).clamp(-1, 1)
        self.warm.remember(mean, fill=0.0)
        return PlanResult(
            action=action, mean=mean, std=std, score=elite_score[:, 0], best=elites[:, 0]
        )


class DiscreteMPPI(WarmStartPlanner):
    """MPPI over categorical action sequences; see the module docstring."""

    config_cls = MPPIConfig
    config: MPPIConfig

    @torch.no_grad()
    def plan(
        self,
        objective: Objective,
        batch_size: int,
        num_actions: int,
        device: torch.device | str = "cpu",
        *,
        init_probs: Tensor | None = None,
        prior_actions: Tensor | None = None,
        generator: torch.Generator | None = None,
        mode: Mode = "explore",
    ) -> DiscretePlanResult:
        """objective(one-hot [B, P, H, K]) -> [B, P]; returns the first action index [B].

        init_probs [B, H, K] overrides the warm start; prior_actions [B, N, H] int64 indices take
        the first N of the num_samples slots in every iteration.
        """
        cfg = self.config
        B, H, K = batch_size, cfg.horizon, num_actions
        num_prior = check_prior(prior_actions, B, H, cfg.num_samples)
        assert num_prior in (0, cfg.num_pi_trajs), (num_prior, cfg.num_pi_trajs)
        assert mode in ("explore", "eval"), mode
        uniform = 1.0 / K
        probs = self.warm.initial(init_probs, (B, H, K), device, fill=uniform)
        if init_probs is None and self.warm.prev is not None:
            probs = (1 - cfg.warm_start_mix) * probs + cfg.warm_start_mix * uniform
        arange = torch.arange(B, device=probs.device)

        # Iterate MPPI
        for _ in range(cfg.iterations):
            # Sample index sequences by inverse CDF, after the policy prior's
            u = torch.rand(
                B, cfg.num_samples - num_prior, H, 1, device=probs.device, generator=generator
            )
            index = (u > probs.cumsum(-1).unsqueeze(1)).sum(-1).clamp(max=K - 1)
            if prior_actions is not None:
                index = torch.cat([prior_actions.to(index), index], dim=1)
            actions = F.one_hot(index, K).float()

            # Compute elite actions
            score = objective(actions)
            assert score.shape == (B, cfg.num_samples), (score.shape, cfg.num_samples)
            elite_score, elite_idx = torch.topk(score.nan_to_num(0.0), cfg.num_elites, dim=1)
            w = mppi_weights(elite_score, cfg.temperature)
            elites = gather_candidates(index, elite_idx)

            # Update parameters
            probs = (w[:, :, None, None] * F.one_hot(elites, K)).sum(dim=1)
            probs = (1 - cfg.unimix) * probs + cfg.unimix * uniform

        # Select action
        if mode == "eval" and cfg.eval_action == "mean":
            action = probs[:, 0].argmax(-1)
        else:
            i = _pick(w, mode, cfg.eval_action, generator)
            action = elites[arange, i, 0]
        self.warm.remember(probs, fill=uniform)
        return DiscretePlanResult(
            action=action, probs=probs, score=elite_score[:, 0], best=elites[:, 0]
        )
