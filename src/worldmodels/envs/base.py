"""The environment interface every agent and loop is written against.

An :class:`Env` returns plain dicts of numpy values. Each dict holds the observation keys named
in ``obs_space`` (``'vector'``: float32, ``'image'``: uint8 ``(H, W, C)``) plus

* ``reward``: ``np.float32`` scalar, the reward that arrived with this observation (0 on reset);
* ``is_first``: ``np.bool_``, the observation starts an episode (True exactly on reset);
* ``is_last``: ``np.bool_``, the observation ends an episode (terminated or truncated);
* ``is_terminal``: ``np.bool_``, true termination only; truncation is *not* termination.

See ``docs/conventions.md`` for how these line up with actions in replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STEP_KEYS = ("reward", "is_first", "is_last", "is_terminal")


@dataclass(frozen=True)
class Spec:
    """One observation entry: its shape and dtype (float32 for 'vector', uint8 for 'image')."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))


@dataclass(frozen=True)
class ActionSpace:
    """The actions an env accepts.

    Discrete: int64 indices in ``[0, n)`` (a one-hot vector of length ``n`` is also accepted by
    the built-in envs and read as its argmax). Continuous: float vectors of shape ``(n,)``,
    always normalised to ``[-1, 1]`` here; the env wrapper rescales to the real bounds.
    """

    discrete: bool
    n: int

    @property
    def shape(self) -> tuple[int, ...]:
        return () if self.discrete else (self.n,)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.discrete else np.dtype(np.float32)

    def sample(self, rng: np.random.Generator, batch: int | None = None) -> np.ndarray:
        """Uniform random actions; shape ``self.shape`` or ``(batch, *self.shape)``."""
        lead = () if batch is None else (batch,)
        if self.discrete:
            return np.asarray(rng.integers(0, self.n, size=lead), dtype=np.int64)
        return rng.uniform(-1.0, 1.0, size=lead + self.shape).astype(np.float32)


@dataclass(frozen=True)
class Symmetry:
    """One symmetry of an env as index permutations: the transformed flat ``'vector'``
    observation is ``vector[..., obs]`` and the transformed discrete action ``i`` is the original
    action ``action[i]`` (so per-action arrays such as legal masks and policies become
    ``x[..., action]``, and an action ``a`` becomes ``argsort(action)[a]``)."""

    obs: np.ndarray
    action: np.ndarray


class Env:
    """Base class (and protocol) of all environments.

    Subclasses set ``obs_space`` and ``act_space`` and implement ``reset`` and ``step``.
    """

    obs_space: dict[str, Spec]
    act_space: ActionSpace
    episode_length: int | None = None
    """Agent steps after which an episode is truncated (a time limit), or None if unknown.
    Agents may derive settings from it (TD-MPC2's discount heuristic)."""
    symmetries: tuple[Symmetry, ...] = ()
    """Transformations under which the env's rules, rewards and legal moves are invariant (the
    board's rotations and reflections), identity included; empty if none are known. Agents may
    train on transformed copies of their data (MuZero's ``train.augment_symmetries``)."""
    action_names: tuple[str, ...] | None = None
    """Names of the discrete actions in index order (Atari's ``'NOOP'``, ``'LEFT'``, ...), or None
    when the env gives none (Gymnasium's classic control, the toy envs, continuous actions)."""

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def render(self) -> np.ndarray | None:
        """An rgb frame (uint8 ``H, W, 3``) for videos, or None if the env cannot render."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_step(
    obs: dict[str, np.ndarray],
    reward: float = 0.0,
    *,
    is_first: bool = False,
    is_last: bool = False,
    is_terminal: bool = False,
) -> dict[str, np.ndarray]:
    """Build a step dict from observations plus the four step flags with the right dtypes."""
    out = dict(obs)
    out["reward"] = np.float32(reward)
    out["is_first"] = np.bool_(is_first)
    out["is_last"] = np.bool_(is_last or is_terminal)
    out["is_terminal"] = np.bool_(is_terminal)
    return out


def discrete_index(action: Any, n: int) -> int:
    """Read a discrete action given as an index (scalar / 0-d / 1-element) or a one-hot vector."""
    a = np.asarray(action)
    if a.ndim == 1 and a.shape[0] == n and n > 1:
        return int(np.argmax(a))
    if a.size != 1:
        raise ValueError(
            f"expected one discrete action index or a one-hot of size {n}, got {a.shape}"
        )
    idx = int(a.reshape(()))
    if not 0 <= idx < n:
        raise ValueError(f"discrete action {idx} out of range [0, {n})")
    return idx


def continuous_action(action: Any, dim: int) -> np.ndarray:
    """Read a continuous action of size ``dim`` and clip it to ``[-1, 1]`` (float64 copy)."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape[0] != dim:
        raise ValueError(
            f"expected a continuous action of size {dim}, got shape {np.shape(action)}"
        )
    return np.clip(a, -1.0, 1.0)
