"""Shared pieces of the sampling-based trajectory planners (CEM, MPPI): result type, warm start.

A planner knows nothing about networks. It takes an objective, a callable that scores P candidate
action sequences of horizon H for each of B independent problems (higher is better):

    objective(actions [B, P, H, A]) -> score [B, P]

Continuous actions live in [-1, 1]. Receding horizon: after each `plan` the planner remembers
its solution mean shifted by one step (the last step filled with zeros, or a uniform
distribution for discrete actions) and starts the next `plan` from it, as TD-MPC2 does.
Callers that keep this warm start in their own state pass `init_mean` instead and compute the
next one with `shift`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Objective = Callable[[Tensor], Tensor]
"""objective(actions [B, P, H, A]) -> score [B, P], higher is better."""

Mode = Literal["explore", "eval"]


@dataclass
class PlanResult:
    """What a continuous planner returns."""

    action: Tensor
    """[B, A] the first action to execute, in [-1, 1]."""
    mean: Tensor
    """[B, H, A] the final sampling mean (the planned action sequence)."""
    std: Tensor
    """[B, H, A] the final sampling standard deviation."""
    score: Tensor
    """[B] the best candidate's score in the last iteration."""
    best: Tensor
    """[B, H, A] the best candidate of the last iteration."""


def shift(x: Tensor, fill: float = 0.0) -> Tensor:
    """[B, H, ...] -> [B, H, ...] x shifted one step forward in time, the last step set to fill."""
    return torch.cat([x[:, 1:], torch.full_like(x[:, :1], fill)], dim=1)


def gather_candidates(x: Tensor, index: Tensor) -> Tensor:
    """[B, P, H, ...], [B, E] -> [B, E, H, ...] the candidates of x picked by index."""
    index = index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)


class RecedingHorizon:
    """Holds a planner's warm start `prev [B, H, ...]` between `plan` calls."""

    def __init__(self) -> None:
        self.prev: Tensor | None = None
        self.cleared: Tensor | None = None
        self.batch_size: int | None = None

    def reset(self, batch_size: int | None = None, mask: Tensor | None = None) -> None:
        """Forget the warm start: for all B problems, or only where mask [B] is True.

        A mask (e.g. the envs whose episode just ended) keeps the other rows' warm start.
        A batch_size makes the next `plan` check that it is called with that many problems.
        """
        if mask is None or self.prev is None:
            self.prev, self.cleared, self.batch_size = None, None, batch_size
        else:
            mask = mask.to(self.prev.device, torch.bool)
            self.cleared = mask if self.cleared is None else self.cleared | mask

    def initial(
        self, init: Tensor | None, shape: tuple[int, ...], device: torch.device | str, fill: float
    ) -> Tensor:
        """-> [B, H, ...] float32 starting mean: init if given, else the warm start, else fill."""
        if self.batch_size is not None and shape[0] != self.batch_size:
            raise ValueError(f"batch_size {shape[0]} != {self.batch_size} given to reset()")
        start = init if init is not None else self.prev
        if start is None:
            return torch.full(shape, fill, device=device)
        if tuple(start.shape) != shape:
            raise ValueError(f"warm start has shape {tuple(start.shape)}, expected {shape}")
        start = start.to(device=device, dtype=torch.float32)
        if init is None and self.cleared is not None:
            rows = self.cleared.view(-1, *([1] * (start.dim() - 1))).to(device)
            start = torch.where(rows, torch.full_like(start, fill), start)
        return start

    def remember(self, mean: Tensor, fill: float) -> None:
        """Store mean [B, H, ...] shifted by one step as the next warm start."""
        self.prev, self.cleared = shift(mean, fill), None


class WarmStartPlanner:
    """Base of CEM and MPPI: a config (``config_cls()`` by default) and a warm start."""

    config_cls: type

    def __init__(self, config=None) -> None:
        self.config = config or self.config_cls()
        self.warm = RecedingHorizon()

    def reset(self, batch_size: int | None = None, mask: Tensor | None = None) -> None:
        """Clear the warm start, for all problems or where mask [B] is True."""
        self.warm.reset(batch_size, mask)


def check_prior(prior: Tensor | None, batch_size: int, horizon: int, num_samples: int) -> int:
    """Validate prior_actions [B, N, H, ...] and return N (0 when there is none)."""
    if prior is None:
        return 0
    if prior.shape[0] != batch_size or prior.shape[2] != horizon:
        raise ValueError(
            f"prior_actions {tuple(prior.shape)} must be [B={batch_size}, N, H={horizon}, ...]"
        )
    if prior.shape[1] >= num_samples:
        raise ValueError(f"{prior.shape[1]} prior sequences leave no room in {num_samples} samples")
    return prior.shape[1]
