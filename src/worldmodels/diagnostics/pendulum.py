"""gymnasium's Pendulum-v1 (gymnasium/envs/classic_control/pendulum.py) on tensors.

:func:`pendulum_step` is one simulator step, batched over any shape; :func:`oracle_objective`
turns it into a planner objective (``worldmodels.planners.CEM``'s ``objective``) that scores
candidate action sequences with the true dynamics, each action repeated ``repeat`` times.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

G, M, L, DT, MAX_SPEED, MAX_TORQUE = 10.0, 1.0, 1.0, 0.05, 8.0, 2.0


def pendulum_step(th: torch.Tensor, thdot: torch.Tensor, u: torch.Tensor):
    """Pendulum-v1's step on tensors: (angle, velocity, reward) after torque ``u`` in N m."""
    u = u.clamp(-MAX_TORQUE, MAX_TORQUE)
    norm = torch.remainder(th + torch.pi, 2 * torch.pi) - torch.pi
    reward = -(norm**2 + 0.1 * thdot**2 + 0.001 * u**2)
    thdot = (thdot + (3 * G / (2 * L) * torch.sin(th) + 3.0 / (M * L**2) * u) * DT).clamp(
        -MAX_SPEED, MAX_SPEED
    )
    return th + thdot * DT, thdot, reward


def oracle_objective(
    th0: float, thdot0: float, repeat: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Sum of true rewards of candidate sequences [B, P, H, 1] (actions in [-1, 1], scaled to
    the torque limit) from angle ``th0`` and velocity ``thdot0``: [B, P]."""

    def objective(actions: torch.Tensor) -> torch.Tensor:
        B, P, H, _ = actions.shape
        th = torch.full((B, P), th0, dtype=torch.float64)
        thdot = torch.full((B, P), thdot0, dtype=torch.float64)
        total = torch.zeros(B, P, dtype=torch.float64)
        for t in range(H):
            u = MAX_TORQUE * actions[:, :, t, 0].double()
            for _ in range(repeat):
                th, thdot, r = pendulum_step(th, thdot, u)
                total = total + r
        return total.float()

    return objective
