"""Cross-entropy method over action sequences (PlaNet, Hafner et al. 2019, Sec. 2, Algorithm 2).

Each iteration samples `candidates` sequences from a diagonal Gaussian over [H, A], clipped to
[-1, 1], scores them with the objective and refits the mean and std to the `top_k` best (the
elites): mean = mean(elites), std = sqrt(var(elites) + 1e-6) as in the PlaNet code. The first
step of the final mean is the action; PlaNet adds exploration noise outside the planner.

Deviation: PlaNet starts every plan from mean 0; here the previous solution shifted by one step
is the initial mean (receding-horizon warm start, `warm_start=False` restores PlaNet's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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
class CEMConfig:
    """PlaNet's planner settings (Hafner et al. 2019, Sec. 2: H=12, I=10, J=1000, K=100)."""

    horizon: int = 12
    """Planning horizon H."""
    candidates: int = 1000
    """Sequences sampled per iteration J (prior sequences included)."""
    top_k: int = 100
    """Elites K the belief is refit to."""
    iterations: int = 10
    """Optimisation iterations I."""
    init_std: float = 1.0
    """Standard deviation of the initial belief."""
    warm_start: bool = True
    """Start from the previous mean shifted by one step (PlaNet: False, always from 0)."""


class CEM(WarmStartPlanner):
    """Batched cross-entropy method planner; see the module docstring."""

    config_cls = CEMConfig
    config: CEMConfig

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
        """objective([B, P, H, A]) -> [B, P]; returns the mean's first action [B, A] in both modes.

        init_mean [B, H, A] overrides the warm start; prior_actions [B, N, H, A] are scored among
        the candidates in every iteration; mode is accepted for a planner-agnostic call.
        """
        cfg = self.config
        B, H, A = batch_size, cfg.horizon, action_dim
        num_prior = check_prior(prior_actions, B, H, cfg.candidates)
        start = init_mean if (init_mean is not None or cfg.warm_start) else torch.zeros(B, H, A)
        mean = self.warm.initial(start, (B, H, A), device, fill=0.0)
        std = torch.full_like(mean, cfg.init_std)
        prior = None if prior_actions is None else prior_actions.to(mean).clamp(-1, 1)

        for _ in range(cfg.iterations):
            # Sample candidates from the belief
            noise = torch.randn(
                B, cfg.candidates - num_prior, H, A, device=mean.device, generator=generator
            )
            actions = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1)
            if prior is not None:
                actions = torch.cat([prior, actions], dim=1)

            # Refit the belief to the elites
            score = objective(actions)
            assert score.shape == (B, actions.shape[1]), (score.shape, actions.shape)
            elite_score, elite_idx = torch.topk(score, cfg.top_k, dim=1)
            elites = gather_candidates(actions, elite_idx)
            mean = elites.mean(dim=1)
            std = (elites.var(dim=1, unbiased=False) + 1e-6).sqrt()

        self.warm.remember(mean, fill=0.0)
        return PlanResult(
            action=mean[:, 0], mean=mean, std=std, score=elite_score[:, 0], best=elites[:, 0]
        )
