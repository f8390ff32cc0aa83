import io
import pickle

import numpy as np
import pytest
import torch

from worldmodels.planners import CMAES, evolve


def neg_rastrigin(x: np.ndarray) -> np.ndarray:
    return -(10.0 * x.shape[1] + (x**2 - 10.0 * np.cos(2 * np.pi * x)).sum(axis=1))


def test_maximises_negated_quadratic():
    c = np.linspace(-1.0, 1.0, 10)
    es = CMAES(10, popsize=32, sigma0=0.5, seed=3)
    x, f = evolve(es, lambda xs: -((xs - c) ** 2).sum(axis=1), generations=100)
    assert es.generation == 100
    assert np.abs(x - c).max() < 1e-3 and f > -1e-5
    assert np.abs(es.mean - c).max() < 1e-3
    assert es.ask().shape == (32, 10) and es.ask().dtype == np.float64


def test_finds_rastrigin_global_optimum():
    es = CMAES(3, popsize=64, sigma0=2.0, seed=0, x0=np.full(3, 3.0))
    x, f = evolve(es, neg_rastrigin, generations=200, callback=lambda g, fit: fit.max() > -1e-8)
    assert es.generation < 200
    assert f > -1e-8 and np.abs(x).max() < 1e-3


def run(seed: int, generations: int) -> list[np.ndarray]:
    es = CMAES(4, popsize=8, sigma0=0.3, seed=seed)
    asked = []

    def fitness(xs):
        asked.append(xs.copy())
        return -(xs**2).sum(axis=1)

    evolve(es, fitness, generations)
    return asked


def test_deterministic_for_a_seed_and_leaves_global_rng_alone():
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    a = run(0, 6)
    assert np.array_equal(np.random.get_state()[1], before)
    np.random.seed(99)  # the caller's global generator has no influence
    b = run(0, 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = run(1, 6)
    assert not np.array_equal(a[0], c[0])


def roundtrip_torch(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize(
    "roundtrip", [lambda s: s, lambda s: pickle.loads(pickle.dumps(s)), roundtrip_torch]
)
def test_resume_matches_uninterrupted_run(roundtrip):
    def quad(xs):
        return -((xs - 0.5) ** 2).sum(axis=1)

    full = CMAES(5, popsize=8, sigma0=0.2, seed=11)
    full_asks = []
    for _ in range(8):
        xs = full.ask()
        full_asks.append(xs)
        full.tell(xs, quad(xs))

    first = CMAES(5, popsize=8, sigma0=0.2, seed=11)
    for _ in range(5):
        xs = first.ask()
        first.tell(xs, quad(xs))
    state = roundtrip(first.state_dict())
    for _ in range(4):
        first.ask()  # the saved state is a snapshot, unaffected by later use
    resumed = CMAES(5, popsize=8, sigma0=1.0, seed=12)  # other settings: the state replaces them
    resumed.load_state_dict(state)
    assert resumed.generation == 5
    for step in range(5, 8):
        xs = resumed.ask()
        np.testing.assert_array_equal(xs, full_asks[step])
        resumed.tell(xs, quad(xs))

    assert resumed.generation == full.generation == 8
    np.testing.assert_array_equal(resumed.mean, full.mean)
    assert resumed.sigma == full.sigma
    np.testing.assert_array_equal(resumed.best[0], full.best[0])
    assert resumed.best[1] == full.best[1]
    np.testing.assert_array_equal(resumed.last_fitness, full.last_fitness)


def test_callback_stops_early_and_best_is_the_maximum_told():
    es = CMAES(3, popsize=6, seed=0)
    seen = []

    def callback(gen, fit):
        seen.append((gen, fit))
        return gen == 3

    told = []

    def fitness(xs):
        told.append(-np.abs(xs).sum(axis=1))
        return told[-1]

    x, f = evolve(es, fitness, generations=50, callback=callback)
    assert es.generation == 3 and [g for g, _ in seen] == [1, 2, 3]
    assert all(fit.shape == (6,) for _, fit in seen)
    assert f == max(t.max() for t in told) and -np.abs(x).sum() == f
    np.testing.assert_array_equal(es.last_fitness, told[-1])


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda xs: np.zeros(len(xs) - 1), r"shape \(6,\), got \(5,\)"),
        (lambda xs: np.zeros((len(xs), 1)), r"shape \(6,\), got \(6, 1\)"),
        (lambda xs: np.full(len(xs), np.nan), "non-finite"),
        (lambda xs: np.where(np.arange(len(xs)) == 2, np.inf, 0.0), r"non-finite values at \[2\]"),
    ],
)
def test_rejects_bad_fitness(bad, match):
    es = CMAES(3, popsize=6, seed=0)
    with pytest.raises(ValueError, match=match):
        evolve(es, bad, generations=1)
    assert es.generation == 0


def test_argument_and_state_errors():
    es = CMAES(3, popsize=6, seed=0)
    with pytest.raises(RuntimeError, match="no generation"):
        _ = es.best
    assert es.last_fitness is None
    with pytest.raises(ValueError, match=r"solutions must have shape \(6, 3\)"):
        es.tell(np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="x0"):
        CMAES(3, x0=np.zeros(4))
    with pytest.raises(ValueError, match="seed"):
        CMAES(3, seed=-1)
    with pytest.raises(ValueError, match="dim=3, popsize=6"):
        CMAES(3, popsize=8).load_state_dict(es.state_dict())
