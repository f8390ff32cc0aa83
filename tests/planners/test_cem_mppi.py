"""CEM, MPPI and DiscreteMPPI on objectives with known optima (no networks involved)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from worldmodels.planners import CEM, MPPI, CEMConfig, DiscreteMPPI, MPPIConfig, shift


def quadratic(target: torch.Tensor, scale: float = 1.0):
    """target [B, H, A] -> objective(actions [B, P, H, A]) = -scale * ||actions - target||^2."""
    return lambda actions: -scale * ((actions - target.unsqueeze(1)) ** 2).sum((-1, -2))


def random_target(batch: int, horizon: int, dim: int, seed: int) -> torch.Tensor:
    """[B, H, A] uniform in (-0.8, 0.8)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, horizon, dim, generator=g) * 1.6 - 0.8


def test_cem_finds_quadratic_minimum():
    # Defaults (H=12, 1000 candidates, 100 elites, 10 iterations) with A=1; with A=2 the 24-dim
    # problem needs ~20 iterations to reach 1e-2 (measured).
    target = random_target(3, 12, 1, seed=0)
    result = CEM().plan(quadratic(target), 3, 1, generator=torch.Generator().manual_seed(1))
    assert result.mean.shape == result.std.shape == (3, 12, 1)
    assert result.action.shape == (3, 1) and result.score.shape == (3,)
    torch.testing.assert_close(result.mean, target, atol=1e-2, rtol=0)
    torch.testing.assert_close(result.action, target[:, 0], atol=1e-2, rtol=0)


def test_cem_warm_start():
    target = random_target(3, 12, 1, seed=0)
    objective = quadratic(target)
    seed = lambda n: torch.Generator().manual_seed(n)  # noqa: E731
    for warm_start in (True, False):
        config = CEMConfig(iterations=2, warm_start=warm_start)
        planner = CEM(config)
        first = planner.plan(objective, 3, 1, generator=seed(1))
        assert torch.equal(planner.warm.prev, shift(first.mean))
        second = planner.plan(objective, 3, 1, generator=seed(2))
        start = shift(first.mean) if warm_start else torch.zeros(3, 12, 1)
        fresh = CEM(config).plan(objective, 3, 1, init_mean=start, generator=seed(2))
        assert torch.equal(second.mean, fresh.mean)


def test_mppi_finds_quadratic_optimum():
    # Default settings, 6 iterations. The mean cannot beat ~min_std / sqrt(elites) noise: 0.03.
    target = random_target(3, 3, 2, seed=0)
    result = MPPI().plan(
        quadratic(target), 3, 2, generator=torch.Generator().manual_seed(1), mode="eval"
    )
    assert result.mean.shape == result.std.shape == (3, 3, 2) and result.action.shape == (3, 2)
    torch.testing.assert_close(result.mean, target, atol=3e-2, rtol=0)
    assert (result.score > -1e-2).all()
    assert (result.std >= 0.05).all() and (result.std <= 2.0).all()


def test_mppi_warm_start_shift_and_reset():
    # A target constant in time, so that the shifted solution is a good start.
    B, A = 64, 4
    target = random_target(B, 1, A, seed=2).expand(B, 3, A)
    objective = quadratic(target)
    planner = MPPI()
    first = planner.plan(objective, B, A, generator=torch.Generator().manual_seed(0))
    expected = torch.cat([first.mean[:, 1:], torch.zeros(B, 1, A)], dim=1)
    assert torch.equal(planner.warm.prev, expected)
    assert torch.equal(shift(first.mean), expected)

    # One iteration from the warm start beats one from a cold start (same noise), on average
    # over 64 problems: the std restarts at max_std, so single problems can go either way.
    one = replace(planner.config, iterations=1)
    planner.config = one
    warm = planner.plan(objective, B, A, generator=torch.Generator().manual_seed(3))
    cold = MPPI(one).plan(objective, B, A, generator=torch.Generator().manual_seed(3))
    assert warm.score.mean() > cold.score.mean() + 0.1
    # init_mean gives the same as the internal warm start.
    planner.warm.prev = expected
    again = planner.plan(objective, B, A, generator=torch.Generator().manual_seed(3))
    given = MPPI(one).plan(
        objective, B, A, init_mean=expected, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(again.mean, given.mean)

    # reset clears it: all of it, or the masked rows only.
    planner.reset(B)
    assert planner.warm.prev is None
    planner.warm.prev = expected
    mask = torch.zeros(B, dtype=torch.bool)
    mask[:5] = True
    planner.reset(mask=mask)
    start = planner.warm.initial(None, (B, 3, A), "cpu", fill=0.0)
    assert (start[:5] == 0).all() and torch.equal(start[5:], expected[5:])
    planner.reset(B + 1)
    with pytest.raises(ValueError):
        planner.plan(objective, B, A)


@pytest.mark.parametrize("planner", [CEM(), MPPI(MPPIConfig(eval_action="best"))])
def test_prior_actions_are_candidates(planner):
    # The objective is maximised exactly at the prior sequence, which random samples never hit.
    B, N, H, A = 2, 24, planner.config.horizon, 3
    g = torch.Generator().manual_seed(0)
    prior = torch.rand(B, N, H, A, generator=g) * 2 - 1
    seen = []

    def objective(actions):
        seen.append(actions[:, :N])
        return quadratic(prior[:, 0], scale=100.0)(actions)

    result = planner.plan(objective, B, A, prior_actions=prior, generator=g, mode="eval")
    assert all(torch.equal(s, prior) for s in seen)
    assert torch.equal(result.best, prior[:, 0]) and (result.score == 0).all()
    if isinstance(planner, MPPI):
        assert torch.equal(result.action, prior[:, 0, 0])


@pytest.mark.parametrize("mode", ["explore", "eval"])
@pytest.mark.parametrize("make", [CEM, MPPI])
def test_deterministic_and_bounded(make, mode):
    # An optimum outside the box: the answers must stay in [-1, 1].
    def objective(actions):
        return (3.0 * actions).sum((-1, -2))

    runs = [
        make().plan(objective, 2, 5, generator=torch.Generator().manual_seed(7), mode=mode)
        for _ in range(2)
    ]
    for a, b in zip(runs[0].__dict__.values(), runs[1].__dict__.values()):
        assert torch.equal(a, b)
    result = runs[0]
    assert result.action.shape == (2, 5)
    assert result.action.abs().max() <= 1 and result.mean.abs().max() <= 1
    assert result.best.abs().max() <= 1
    assert (result.action > 0.5).all()  # pushed towards the bound


def test_mppi_eval_actions():
    target = random_target(3, 3, 2, seed=4)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    base = MPPIConfig()
    mean = MPPI(replace(base, eval_action="mean")).plan(
        quadratic(target), 3, 2, generator=g(), mode="eval"
    )
    best = MPPI(replace(base, eval_action="best")).plan(
        quadratic(target), 3, 2, generator=g(), mode="eval"
    )
    assert torch.equal(mean.action, mean.mean[:, 0]) and torch.equal(best.action, best.best[:, 0])
    sample = MPPI(base).plan(quadratic(target), 3, 2, generator=g(), mode="eval")
    explore = MPPI(base).plan(quadratic(target), 3, 2, generator=g(), mode="explore")
    torch.testing.assert_close(sample.action, target[:, 0], atol=0.15, rtol=0)
    assert not torch.equal(sample.action, explore.action)


def tabulated(table: torch.Tensor, H: int, num_actions: int):
    """objective(one-hot [B, P, H, K]) = table[b, sequence index], table [B, K^H]; and K^(H-1-t)."""
    codes = num_actions ** torch.arange(H - 1, -1, -1)

    def objective(onehot):
        assert onehot.shape[2:] == (H, num_actions)
        index = (onehot.argmax(-1) * codes).sum(-1)
        return torch.gather(table, 1, index)

    return objective, codes


@pytest.mark.parametrize("eval_action", ["sample", "mean", "best"])
def test_discrete_mppi_finds_best_sequence(eval_action):
    B, H, K = 4, 3, 3
    table = torch.randn(B, K**H, generator=torch.Generator().manual_seed(0)) * 3
    objective, codes = tabulated(table, H, K)
    best = table.argmax(1)
    best_seq = torch.stack([best // 9, (best // 3) % 3, best % 3], dim=1)
    planner = DiscreteMPPI(MPPIConfig(eval_action=eval_action))
    result = planner.plan(objective, B, K, generator=torch.Generator().manual_seed(1), mode="eval")
    assert result.action.shape == (B,) and result.action.dtype == torch.int64
    assert result.probs.shape == (B, H, K) and result.best.shape == (B, H)
    torch.testing.assert_close(result.probs.sum(-1), torch.ones(B, H))
    assert torch.equal(result.best, best_seq) and torch.equal(result.action, best_seq[:, 0])
    assert torch.equal(result.score, table.max(1).values)
    assert (result.probs >= 0.01 / K).all()

    # Warm start: the shifted probabilities, uniform at the last step.
    expected = torch.cat([result.probs[:, 1:], torch.full((B, 1, K), 1 / K)], dim=1)
    assert torch.equal(planner.warm.prev, expected)


def test_discrete_mppi_prior_and_determinism():
    B, H, K, N = 2, 3, 4, 24
    table = torch.zeros(B, K**H)
    prior = torch.randint(0, K, (B, N, H), generator=torch.Generator().manual_seed(0))
    scored, codes = tabulated(table, H, K)
    table[torch.arange(B), (prior[:, 0] * codes).sum(-1)] = 10.0  # only the prior scores
    seen = []

    def objective(onehot):
        seen.append(onehot[:, :N].argmax(-1))
        return scored(onehot)

    runs = [
        DiscreteMPPI(MPPIConfig(eval_action="best")).plan(
            objective, B, K, prior_actions=prior, generator=torch.Generator().manual_seed(2)
        )
        for _ in range(2)
    ]
    assert all(torch.equal(s, prior) for s in seen)
    for a, b in zip(runs[0].__dict__.values(), runs[1].__dict__.values()):
        assert torch.equal(a, b)
    assert torch.equal(runs[0].best, prior[:, 0])
