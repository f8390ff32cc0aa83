"""MinAtar (Young & Tian 2019): five miniature Atari games on a 10x10 grid, from ``minatar``.

``minatar:<game>`` for ``asterix``, ``breakout``, ``freeway``, ``seaquest``, ``space_invaders``
(``minatar:SpaceInvaders`` and ``minatar:space-invaders`` are read the same).

MinAtar's state is a ``(10, 10, C)`` grid of binary channels, one per kind of object (C is 4
for asterix and breakout, 7 freeway, 10 seaquest, 6 space_invaders):

* ``obs='pixels'``: ``'image'`` uint8 ``(H, W, C)``, the channels as 0 / 255, upscaled to
  ``size`` (default ``(64, 64)``) by nearest neighbour. The C channels are kept as they are
  (no colour map, so overlapping objects stay apart); the conv encoders take any channel
  count and need a square size divisible by 16. 64 is not a multiple of 10, so grid cells
  are 6 or 7 pixels wide; ``size=(80, 80)`` makes them all 8.
* ``obs='vector'``: ``'vector'`` float32 of the ``10 * 10 * C`` channel values in {0, 1}.

Actions are the game's minimal action set (3 for breakout, up to 6), in MinAtar's order of
its six actions (no-op, left, up, right, down, fire). Settings (keyword arguments of
``make_env``):

* ``repeat_action_probability`` (default 0.1, MinAtar's ``sticky_action_prob``): each step
  plays the previous action instead of the chosen one with this probability.
* ``difficulty_ramping`` (default True, MinAtar's default): games speed up over time.
* ``max_episode_steps`` (default 10_000): MinAtar has no time limit; episodes are truncated
  (``is_last`` without ``is_terminal``) after this many steps so that an agent that never
  loses still finishes its evaluation episodes. ``None`` turns it off.

One step is one MinAtar frame (no frame skip; ``action_repeat`` must stay 1). Rewards are
MinAtar's (0 or 1 per step in most games). Seeding: the first ``reset()`` seeds the game's
generator (spawns and sticky actions) with ``seed``; later ``reset()`` calls without a seed
continue it. ``render()`` gives an RGB picture of the last state (one colour per channel).
"""

from __future__ import annotations

import colorsys
import difflib

import numpy as np

from worldmodels.envs.atari import rom_id
from worldmodels.envs.base import ActionSpace, Env, Spec, discrete_index, make_step
from worldmodels.errors import UserError

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
OPTIONS = ("repeat_action_probability", "difficulty_ramping", "max_episode_steps")
"""Keyword arguments ``minatar:`` envs take (besides ``obs``, ``seed`` and ``size``)."""

GRID = 10
ACTIONS = ("no-op", "left", "up", "right", "down", "fire")
"""MinAtar's six actions in its order; a game's minimal set indexes into it."""


def upscale_nearest(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w, C)`` -> ``(size[0], size[1], C)`` by nearest neighbour (output pixel ``y`` reads
    row ``floor(y * h / size[0])``)."""
    h, w = grid.shape[:2]
    rows = np.arange(size[0]) * h // size[0]
    cols = np.arange(size[1]) * w // size[1]
    return grid[rows[:, None], cols[None, :]]


def palette(channels: int) -> np.ndarray:
    """uint8 ``(channels + 1, 3)``: black for empty cells, then one bright hue per channel."""
    hues = [colorsys.hsv_to_rgb(i / channels, 0.8, 1.0) for i in range(channels)]
    return np.round(np.array([(0.0, 0.0, 0.0), *hues]) * 255).astype(np.uint8)


class MinAtarEnv(Env):
    """One MinAtar game; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        obs: str = "pixels",
        seed: int | None = 0,
        size: tuple[int, int] = (64, 64),
        repeat_action_probability: float = 0.1,
        difficulty_ramping: bool = True,
        max_episode_steps: int | None = 10_000,
    ):
        self.name = f"minatar:{name}"
        if obs not in ("vector", "pixels"):
            raise UserError(f"unknown obs {obs!r}; fix: use obs='vector' or obs='pixels'")
        game = rom_id(name)
        if game not in GAMES:
            close = difflib.get_close_matches(game, GAMES, n=2, cutoff=0.5)
            hint = (
                "did you mean " + " or ".join(f"minatar:{c}" for c in close) + "?"
                if close
                else "fix: use one of " + ", ".join(f"minatar:{g}" for g in GAMES)
            )
            raise UserError(f"unknown env '{self.name}'; {hint}")
        prob = float(repeat_action_probability)
        if not 0.0 <= prob <= 1.0:
            raise UserError(
                f"env '{self.name}': repeat_action_probability must be in [0, 1], got "
                f"{repeat_action_probability!r}; fix: e.g. 0.1 (MinAtar's default)"
            )
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps < 1
        ):
            raise UserError(
                f"env '{self.name}': max_episode_steps must be an integer >= 1 or None, got "
                f"{max_episode_steps!r}"
            )
        import minatar

        self._game = minatar.Environment(
            game, sticky_action_prob=prob, difficulty_ramping=bool(difficulty_ramping)
        )
        self._actions = list(self._game.minimal_action_set())
        self.act_space = ActionSpace(discrete=True, n=len(self._actions))
        self.action_names = tuple(ACTIONS[int(a)] for a in self._actions)
        self._channels = int(self._game.state_shape()[2])
        self._pixels = obs == "pixels"
        self._size = (int(size[0]), int(size[1]))
        if self._pixels:
            self.obs_space = {"image": Spec((*self._size, self._channels), np.uint8)}
        else:
            self.obs_space = {"vector": Spec((GRID * GRID * self._channels,), np.float32)}
        self._limit = None if max_episode_steps is None else int(max_episode_steps)
        self.episode_length = self._limit
        self._palette = palette(self._channels)
        self._seed = seed
        self._seeded = False
        self._steps = 0
        self._state = np.zeros((GRID, GRID, self._channels), bool)

    def _observe(self) -> dict[str, np.ndarray]:
        self._state = np.asarray(self._game.state(), dtype=bool)
        if self._pixels:
            planes = self._state.astype(np.uint8) * np.uint8(255)
            return {"image": np.ascontiguousarray(upscale_nearest(planes, self._size))}
        return {"vector": self._state.astype(np.float32).reshape(-1)}

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None and not self._seeded:
            seed = self._seed
        if seed is not None:
            self._game.seed(int(seed))
            self._seeded = True
        self._game.reset()
        self._steps = 0
        return make_step(self._observe(), 0.0, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        act = self._actions[discrete_index(action, self.act_space.n)]
        reward, terminal = self._game.act(act)
        self._steps += 1
        truncated = self._limit is not None and self._steps >= self._limit
        return make_step(
            self._observe(),
            float(reward),
            is_last=bool(terminal) or truncated,
            is_terminal=bool(terminal),
        )

    def render(self) -> np.ndarray | None:
        """RGB ``(*size, 3)``: each cell coloured by its highest set channel (black if none)."""
        index = np.where(
            self._state.any(-1), self._state.shape[-1] - np.argmax(self._state[..., ::-1], -1), 0
        )
        return np.ascontiguousarray(upscale_nearest(self._palette[index], self._size))
