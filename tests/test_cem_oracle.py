"""worldmodels.diagnostics.pendulum (tools/cem_pendulum_oracle.py's model): its batched
Pendulum copy is gymnasium's Pendulum-v1 step for step, and the oracle objective sums the rewards
of R repeated simulator steps."""

import gymnasium as gym
import numpy as np
import torch

from worldmodels.diagnostics import pendulum as mod


def test_pendulum_copy_matches_gymnasium():
    env = gym.make("Pendulum-v1")
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    th, thdot = (torch.tensor(float(x), dtype=torch.float64) for x in env.unwrapped.state)
    for _ in range(150):  # includes torques beyond the limit (clipped) and fast spins
        u = rng.uniform(-3.0, 3.0)
        _, reward, *_ = env.step(np.array([u], dtype=np.float32))
        th, thdot, r = mod.pendulum_step(
            th, thdot, torch.tensor(float(np.float32(u)), dtype=torch.float64)
        )
        np.testing.assert_allclose(
            [float(th), float(thdot)], env.unwrapped.state, rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(float(r), reward, rtol=0, atol=1e-5)
        th, thdot = (torch.tensor(float(x), dtype=torch.float64) for x in env.unwrapped.state)
    env.close()


def test_oracle_objective_sums_repeated_steps():
    th0, thdot0, repeat = 2.0, -0.5, 3
    actions = torch.tensor([[0.5, -1.0], [0.0, 1.0]]).reshape(1, 2, 2, 1)  # [B=1, P=2, H=2, A=1]
    score = mod.oracle_objective(th0, thdot0, repeat)(actions)
    for p in range(2):  # by hand: one scalar step at a time
        th, thdot, total = th0, thdot0, 0.0
        for t in range(2):
            u = 2.0 * float(actions[0, p, t, 0])
            for _ in range(repeat):
                norm = ((th + np.pi) % (2 * np.pi)) - np.pi
                total -= norm**2 + 0.1 * thdot**2 + 0.001 * u**2
                thdot = float(np.clip(thdot + (15.0 * np.sin(th) + 3.0 * u) * 0.05, -8, 8))
                th = th + thdot * 0.05
        assert abs(float(score[0, p]) - total) < 1e-4
