"""CMA-ES for evolving a controller from returns (World Models, Ha & Schmidhuber 2018, Sec. 3.3).

World Models trains its linear controller with CMA-ES: population 64, each candidate scored by
the mean return of 16 rollouts, initial step size 0.1, full covariance, fitness maximised. The
reference code (hardmaru/WorldModelsExperiments, `es.py`) wraps the `cma` package and so does
this module: `CMAES` is a thin ask/tell interface over `cma.CMAEvolutionStrategy` that maximises,
and `evolve` runs the loop against any fitness callable (rollouts live outside this module).

Reproducibility: `cma` draws its samples from `np.random.randn` and reseeds numpy's global
generator in its constructor. Here it gets a private `np.random.RandomState` instead (option
`randn`), so the run depends only on `seed`, the caller's global numpy state is left alone, and
the generator travels inside the pickled strategy: `state_dict` / `load_state_dict` resume a run
so that it asks exactly the populations an uninterrupted run would.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

_STATE_VERSION = 1


class CMAES:
    """Maximising CMA-ES over R^dim; see the module docstring.

    The distribution starts at `x0` (zeros, as in the reference) with step size `sigma0`. `seed`
    (any integer in [0, 2**32)) seeds the strategy's private generator; equal seeds give equal
    runs. No bounds, no console output, no files written.
    """

    def __init__(
        self,
        dim: int,
        popsize: int = 64,
        sigma0: float = 0.1,
        seed: int = 0,
        x0: np.ndarray | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if popsize < 2:
            raise ValueError(f"popsize must be >= 2, got {popsize}")
        if not (math.isfinite(sigma0) and sigma0 > 0):
            raise ValueError(f"sigma0 must be a positive finite number, got {sigma0}")
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {seed}")
        start = np.zeros(dim) if x0 is None else np.asarray(x0, dtype=np.float64)
        if start.shape != (dim,):
            raise ValueError(f"x0 must have shape ({dim},), got {start.shape}")

        import cma  # imported here: it pulls in scipy.stats, about a second

        self.dim = dim
        self.popsize = popsize
        rng = np.random.RandomState(seed)
        options = {
            "popsize": popsize,
            "randn": rng.randn,  # private generator; cma's own `seed` would reseed np.random
            "seed": np.nan,  # nan: cma neither seeds nor warns
            "bounds": [None, None],
            "verbose": -9,
            "verb_disp": 0,
            "verb_log": 0,
        }
        self._es = cma.CMAEvolutionStrategy(start.copy(), sigma0, options)
        self._generation = 0
        self._best_x: np.ndarray | None = None
        self._best_f = -math.inf
        self._last_fitness: np.ndarray | None = None

    # ask / tell

    def ask(self) -> np.ndarray:
        """Sample a population, [popsize, dim] float64."""
        return np.asarray(self._es.ask(), dtype=np.float64)

    def tell(self, solutions: np.ndarray, fitness: np.ndarray) -> None:
        """Update the distribution with the asked `solutions` [P, dim] and their `fitness` [P]
        (higher is better)."""
        solutions = np.asarray(solutions, dtype=np.float64)
        if solutions.shape != (self.popsize, self.dim):
            raise ValueError(
                f"solutions must have shape ({self.popsize}, {self.dim}), got {solutions.shape}"
            )
        fitness = check_fitness(fitness, self.popsize)
        self._es.tell(list(solutions), (-fitness).tolist())  # cma minimises
        self._generation += 1
        self._last_fitness = fitness.copy()
        i = int(np.argmax(fitness))
        if fitness[i] > self._best_f:
            self._best_f = float(fitness[i])
            self._best_x = solutions[i].copy()

    # read-outs

    @property
    def generation(self) -> int:
        """Number of `tell` calls so far."""
        return self._generation

    @property
    def mean(self) -> np.ndarray:
        """Current distribution mean [dim] (the reference evaluates this as the controller)."""
        return np.array(self._es.mean, dtype=np.float64)

    @property
    def sigma(self) -> float:
        """Current overall step size."""
        return float(self._es.sigma)

    @property
    def best(self) -> tuple[np.ndarray, float]:
        """(x, fitness) of the best candidate told so far. With noisy fitness (sampled returns)
        this is an optimistic estimate; re-evaluate it, or the mean, before trusting it."""
        if self._best_x is None:
            raise RuntimeError("CMAES.best: no generation has been told yet")
        return self._best_x.copy(), self._best_f

    @property
    def last_fitness(self) -> np.ndarray | None:
        """Fitness [P] of the last told generation, None before the first."""
        return None if self._last_fitness is None else self._last_fitness.copy()

    # checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (the strategy, its generator included,
        is pickled to bytes); the dict itself pickles, e.g. through `torch.save`."""
        return {
            "version": _STATE_VERSION,
            "dim": self.dim,
            "popsize": self.popsize,
            "es": pickle.dumps(self._es),
            "generation": self._generation,
            "best_x": None if self._best_x is None else self._best_x.copy(),
            "best_f": self._best_f,
            "last_fitness": self.last_fitness,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` from a strategy of the same dim and popsize."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported CMAES state version {state.get('version')!r}")
        if (state["dim"], state["popsize"]) != (self.dim, self.popsize):
            raise ValueError(
                f"state is for dim={state['dim']}, popsize={state['popsize']}; "
                f"this CMAES has dim={self.dim}, popsize={self.popsize}"
            )
        self._es = pickle.loads(state["es"])
        self._generation = int(state["generation"])
        best_x = state["best_x"]
        self._best_x = None if best_x is None else np.array(best_x, dtype=np.float64)
        self._best_f = float(state["best_f"])
        last = state["last_fitness"]
        self._last_fitness = None if last is None else np.array(last, dtype=np.float64)


def check_fitness(fitness: Any, popsize: int) -> np.ndarray:
    """Fitness as a float64 [popsize] array; ValueError on a wrong shape or non-finite values."""
    values = np.asarray(fitness, dtype=np.float64)
    if values.shape != (popsize,):
        raise ValueError(f"fitness must have shape ({popsize},), got {values.shape}")
    if not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values)).tolist()
        raise ValueError(f"fitness of shape {values.shape} has non-finite values at {bad}")
    return values


def evolve(
    es: CMAES,
    fitness: Callable[[np.ndarray], np.ndarray],
    generations: int,
    callback: Callable[[int, np.ndarray], bool | None] | None = None,
) -> tuple[np.ndarray, float]:
    """Run up to `generations` more generations of ask -> fitness([P, dim]) -> [P] -> tell.

    After each tell, `callback(es.generation, fitness)` may save a checkpoint and returns True
    to stop early. Returns `es.best`, the best (x, fitness) told over the whole run.
    """
    if generations < 0:
        raise ValueError(f"generations must be >= 0, got {generations}")
    for _ in range(generations):
        solutions = es.ask()
        values = check_fitness(fitness(solutions), es.popsize)
        es.tell(solutions, values)
        if callback is not None and callback(es.generation, values.copy()):
            break
    return es.best
