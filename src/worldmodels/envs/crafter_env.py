"""Crafter (Hafner 2021): an open-world survival game with 22 achievements, from ``crafter``.

``crafter:reward`` gives Crafter's reward (+1 the first time each achievement is unlocked in an
episode, and +-0.1 per health point gained or lost); ``crafter:noreward`` gives reward 0 and is
meant for unsupervised agents, which are scored by their achievements alone.

* Pixels only (``obs='pixels'``): ``'image'`` uint8 ``(H, W, 3)``, Crafter's own rendering at
  ``size`` (default ``(64, 64)``, the benchmark's size): a 9x7 local view above the inventory.
* 17 discrete actions (``ACTIONS``: noop, the four moves, do, sleep, place and make actions).
* Episodes end when the player dies (``is_terminal``) or after ``length`` steps (default 10_000,
  the benchmark's; ``is_last`` without ``is_terminal``).
* Every step dict also carries, outside ``obs_space`` (agents do not see them; replay stores
  them), ``'log/reward'``: float32, Crafter's reward even for ``crafter:noreward``, and one
  ``'log/achievement_<name>'`` per name in :data:`ACHIEVEMENTS`: int32, how many times the
  achievement has been unlocked so far in this episode (0 on reset). An achievement is unlocked
  in an episode when its count on the episode's ``is_last`` step is > 0;
  :func:`crafter_success_rates` turns those last steps into the percentages that
  :func:`crafter_score` combines into Crafter's score.

Seeding: ``seed`` is Crafter's world seed; the k-th episode after a ``reset(seed=s)`` is world
``hash((s, k))`` as in Crafter, so ``reset()`` without a seed moves on to the next world.
``render()`` gives the last observed image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from worldmodels.envs.base import ActionSpace, Env, Spec, discrete_index, make_step
from worldmodels.errors import UserError

TASKS = ("reward", "noreward")
OPTIONS = ("length",)
"""Keyword arguments ``crafter:`` envs take (besides ``obs``, ``seed`` and ``size``)."""

ACHIEVEMENTS = (
    "collect_coal",
    "collect_diamond",
    "collect_drink",
    "collect_iron",
    "collect_sapling",
    "collect_stone",
    "collect_wood",
    "defeat_skeleton",
    "defeat_zombie",
    "eat_cow",
    "eat_plant",
    "make_iron_pickaxe",
    "make_iron_sword",
    "make_stone_pickaxe",
    "make_stone_sword",
    "make_wood_pickaxe",
    "make_wood_sword",
    "place_furnace",
    "place_plant",
    "place_stone",
    "place_table",
    "wake_up",
)
"""Crafter's 22 achievements (``crafter.constants.achievements``), in its order."""

ACTIONS = (
    "noop",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "do",
    "sleep",
    "place_stone",
    "place_table",
    "place_furnace",
    "place_plant",
    "make_wood_pickaxe",
    "make_stone_pickaxe",
    "make_iron_pickaxe",
    "make_wood_sword",
    "make_stone_sword",
    "make_iron_sword",
)
"""Crafter's 17 actions (``crafter.constants.actions``); action ``i`` is ``ACTIONS[i]``."""

LOG_KEYS = ("log/reward", *(f"log/achievement_{a}" for a in ACHIEVEMENTS))
"""The extra keys of every Crafter step dict (not in ``obs_space``)."""


def crafter_success_rates(last_steps: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Percent of episodes in which each achievement was unlocked, from each episode's last
    step dict (the one with ``is_last``); ``{name: percent}`` for every name in
    :data:`ACHIEVEMENTS`. A stacked dict (arrays ``[N]`` per key, e.g. the ``is_last`` rows of
    a replay) counts as N episodes."""
    counts = {a: [] for a in ACHIEVEMENTS}
    for step in last_steps:
        for a in ACHIEVEMENTS:
            counts[a].extend(np.atleast_1d(np.asarray(step[f"log/achievement_{a}"]) > 0))
    n = len(counts[ACHIEVEMENTS[0]])
    if n == 0:
        raise ValueError("crafter_success_rates needs at least one episode's last step")
    return {a: 100.0 * float(np.mean(c)) for a, c in counts.items()}


def crafter_score(rates: Mapping[str, float] | Sequence[float] | np.ndarray) -> float:
    """Crafter's score from per-achievement success rates in percent (Hafner 2021, eq. 1):
    ``S = exp(mean_i ln(1 + s_i)) - 1``, the geometric mean of ``1 + s_i`` minus 1, in percent.
    Pass all 22 rates (e.g. :func:`crafter_success_rates`'s result) for the benchmark's score."""
    values = np.asarray(
        list(rates.values()) if isinstance(rates, Mapping) else rates, dtype=np.float64
    )
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"crafter_score needs a non-empty list of rates, got shape {values.shape}")
    if np.any(values < 0) or np.any(values > 100):
        raise ValueError("crafter_score takes success rates in percent, in [0, 100]")
    return float(np.exp(np.mean(np.log1p(values))) - 1.0)


class CrafterEnv(Env):
    """``crafter:reward`` or ``crafter:noreward``; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        obs: str = "pixels",
        seed: int | None = 0,
        size: tuple[int, int] = (64, 64),
        length: int = 10_000,
    ):
        self.name = f"crafter:{name}"
        if name not in TASKS:
            raise UserError(
                f"unknown env '{self.name}'; fix: use crafter:reward or crafter:noreward"
            )
        if obs != "pixels":
            raise UserError(
                f"env '{self.name}' observes pixels only, got obs={obs!r}; "
                "fix: use obs='pixels' (--obs pixels)"
            )
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise UserError(
                f"env '{self.name}': length must be an integer >= 1, got {length!r}; "
                "fix: e.g. 10000 (Crafter's)"
            )
        import crafter

        h, w = int(size[0]), int(size[1])
        self._size = (h, w)
        self._seed = seed
        self._env = crafter.Env(size=(w, h), reward=name == "reward", length=int(length), seed=seed)
        self._seeded = False
        self.episode_length = int(length)
        self.obs_space = {"image": Spec((h, w, 3), np.uint8)}
        self.act_space = ActionSpace(discrete=True, n=int(self._env.action_space.n))
        self.action_names = ACTIONS[: self.act_space.n]
        self._frame: np.ndarray | None = None

    def _step_dict(
        self, image: np.ndarray, reward: float, info: dict | None, **flags: bool
    ) -> dict[str, np.ndarray]:
        self._frame = np.asarray(image, dtype=np.uint8)
        out = make_step({"image": self._frame}, reward, **flags)
        out["log/reward"] = np.float32(info["reward"] if info else 0.0)
        unlocked = info["achievements"] if info else {}
        for a in ACHIEVEMENTS:
            out[f"log/achievement_{a}"] = np.int32(unlocked.get(a, 0))
        return out

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None and not self._seeded:
            seed = self._seed
        if seed is not None:
            # Crafter draws world k of a seed as hash((seed, k)): restart the count at k = 1.
            self._env._seed = int(seed)
            self._env._episode = 0
            self._seeded = True
        return self._step_dict(self._env.reset(), 0.0, None, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        image, reward, done, info = self._env.step(discrete_index(action, self.act_space.n))
        dead = float(info["discount"]) == 0.0
        return self._step_dict(image, float(reward), info, is_last=bool(done), is_terminal=dead)

    def render(self) -> np.ndarray | None:
        return self._frame
