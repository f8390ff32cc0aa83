"""Atari 2600 games through the Arcade Learning Environment (``ale-py``, which ships the ROMs).

``atari:<game>`` with ALE's ROM id, e.g. ``atari:pong``, ``atari:ms_pacman``,
``atari:space_invaders`` (``atari:MsPacman`` and ``atari:space-invaders`` are read the same).
Pixels only: ``obs='pixels'`` (``--obs pixels``).

Settings are keyword arguments of ``make_env`` (e.g.
``make_env('atari:pong', obs='pixels', repeat_action_probability=0.0)``), except the frame skip,
which is ``make_env``'s ``action_repeat`` (``--set run.action_repeat=N``; 0 there means 4), and
the image size, which is ``make_env``'s ``size``. The defaults are DreamerV3's ``atari100k``
settings (64x64 RGB, minimal action set, 30 no-ops, lives unused) with the sticky actions of
its ``atari`` settings:

* ``action_repeat`` (default 4): each agent step plays the action for that many emulator
  frames, sums their rewards, and observes the pixel-wise maximum of the last two frames
  (which removes sprite flicker).
* ``size`` (default ``(64, 64)``) and ``grayscale`` (default False): ``'image'`` is uint8
  ``(H, W, 3)`` RGB, or ``(H, W, 1)`` luminance when ``grayscale=True``. ``size=(96, 96)``
  is EfficientZero's input (RGB), grey 96 x 96 DreamerV3's ``atari`` setting. Frames are
  resized from 210x160 with OpenCV's area interpolation.
* ``repeat_action_probability`` (default 0.25; sticky actions, Machado et al. 2018, as ALE v5
  and DreamerV3's ``atari`` setting): at every emulator frame the previous action is played
  instead of the chosen one with this probability. The Atari 100k protocol of EfficientZero
  (and SimPLe, CURL, DrQ, SPR, DreamerV3's ``atari100k``) uses 0.0: set it to compare with
  those numbers.
* ``noop_max`` (default 30): a new game starts with a uniform random number in
  ``1..noop_max`` of NOOP frames (Mnih et al. 2015, EfficientZero; DreamerV3 draws from
  ``0..30``); 0 turns it off.
* ``episodic_life`` (default False: lives are not used, as DreamerV3): an episode is a whole
  game. With True (EfficientZero's training envs) losing a life ends the episode as a
  termination (``is_last`` and ``is_terminal``), and the next ``reset()`` without a seed goes
  on with the same game (one NOOP frame) instead of starting a new one; only a game over or
  ``reset(seed=...)`` starts a new game. Evaluate with False: returns with True are per life.
  Games without lives (Pong) are unaffected.
* ``max_frames`` (default 108_000, 30 minutes at 60 Hz): the episode is truncated (``is_last``
  without ``is_terminal``) once the game has run this many emulator frames;
  ``episode_length`` is ``max_frames / action_repeat`` agent steps (27_000).
* ``full_action_space`` (default False): False gives the game's minimal action set (6 for
  Pong; Atari 100k, EfficientZero), True all 18 ALE actions (DreamerV3's ``atari`` setting).
* ``frame_stack`` (default 1: no stacking): with ``k > 1`` ``'image'`` is uint8
  ``(H, W, C*k)``, the last ``k`` observed frames (each max-pooled, resized and grey as
  above) concatenated along the channel axis, oldest first (channels ``[-C:]`` are the current
  frame). Every ``reset()``, the one that goes on after a lost life included, fills the stack
  with ``k`` copies of its first frame. ``frame_stack=4, size=(96, 96)`` (RGB) is
  EfficientZero's input (its ``stacked_observations=4``: 12 channels). The replay then stores
  ``k`` frames per step: ``k`` times the memory of the observations.
* ``clip_rewards`` (default False): True gives the sign of each agent step's reward (the sum
  over its ``action_repeat`` frames), in ``{-1, 0, +1}`` (Mnih et al. 2015; EfficientZero's
  ``clip_reward=True``). For training envs only: keep False in evaluation envs so that returns
  are game scores.

A game over is a termination. Rewards are the score differences, unclipped unless
``clip_rewards=True``. Seeding: the first ``reset()`` seeds the emulator (sticky
actions) and the no-op draws with ``seed``; later ``reset()`` calls without a seed continue
those generators. ``render()`` gives the last full 210x160 RGB screen.
"""

from __future__ import annotations

import collections
import difflib
import re
from typing import Any

import numpy as np

from worldmodels.envs.base import ActionSpace, Env, Spec, discrete_index, make_step
from worldmodels.envs.registry import check_action_repeat
from worldmodels.errors import MissingExtraError, UserError

OPTIONS = (
    "action_repeat",
    "grayscale",
    "repeat_action_probability",
    "noop_max",
    "episodic_life",
    "max_frames",
    "full_action_space",
    "frame_stack",
    "clip_rewards",
)
"""Keyword arguments ``atari:`` envs take (besides ``obs``, ``seed`` and ``size``)."""


def rom_id(name: str) -> str:
    """``'MsPacman'``, ``'ms-pacman'`` or ``'ms_pacman'`` -> ALE's ROM id ``'ms_pacman'``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return snake.replace("-", "_").lower()


class AtariEnv(Env):
    """One Atari game; see the module docstring for the settings and their defaults."""

    def __init__(
        self,
        name: str,
        *,
        obs: str = "pixels",
        seed: int | None = 0,
        size: tuple[int, int] = (64, 64),
        action_repeat: int = 4,
        grayscale: bool = False,
        repeat_action_probability: float = 0.25,
        noop_max: int = 30,
        episodic_life: bool = False,
        max_frames: int = 108_000,
        full_action_space: bool = False,
        frame_stack: int = 1,
        clip_rewards: bool = False,
    ):
        self.name = f"atari:{name}"
        if obs != "pixels":
            raise UserError(
                f"env '{self.name}' observes pixels only, got obs={obs!r}; "
                "fix: use obs='pixels' (--obs pixels)"
            )
        self._repeat = check_action_repeat(action_repeat, self.name)
        prob = float(repeat_action_probability)
        if not 0.0 <= prob <= 1.0:
            raise UserError(
                f"env '{self.name}': repeat_action_probability must be in [0, 1], got "
                f"{repeat_action_probability!r}; fix: e.g. 0.25 (sticky) or 0.0 (Atari 100k)"
            )
        self._noop_max = _int_at_least(noop_max, "noop_max", self.name)
        self._max_frames = _int_at_least(max_frames, "max_frames", self.name, 1, "e.g. 108000")
        self._stack = _int_at_least(
            frame_stack, "frame_stack", self.name, 1, "e.g. 4 (EfficientZero) or 1 (no stacking)"
        )
        self._frames: collections.deque[np.ndarray] = collections.deque(maxlen=self._stack)
        self._clip_rewards = bool(clip_rewards)
        self._grayscale = bool(grayscale)
        self._episodic_life = bool(episodic_life)
        self._size = (int(size[0]), int(size[1]))
        try:
            import cv2
        except ImportError:
            raise MissingExtraError(f"env '{self.name}'", "atari", "cv2") from None
        import ale_py
        from ale_py import roms

        self._cv2 = cv2
        game = rom_id(name)
        known = list(roms.get_all_rom_ids())
        if game not in known:
            close = difflib.get_close_matches(game, known, n=3, cutoff=0.6)
            hint = (
                "did you mean " + " or ".join(f"atari:{c}" for c in close) + "?"
                if close
                else "fix: pick a ROM id of ale_py.roms.get_all_rom_ids(), e.g. atari:pong"
            )
            raise UserError(f"unknown env '{self.name}'; {hint}")
        self._rom = roms.get_rom_path(game)
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner per env
        self._ale = ale_py.ALEInterface()
        self._ale.setFloat("repeat_action_probability", prob)
        self._load(seed)
        actions = (
            self._ale.getLegalActionSet() if full_action_space else self._ale.getMinimalActionSet()
        )
        self._actions = list(actions)
        self._noop = ale_py.Action.NOOP
        self.act_space = ActionSpace(discrete=True, n=len(self._actions))
        self.action_names = tuple(a.name for a in self._actions)
        channels = 1 if self._grayscale else 3
        self.obs_space = {"image": Spec((*self._size, channels * self._stack), np.uint8)}
        self.episode_length = -(-self._max_frames // self._repeat)
        self._seed = seed
        self._seeded = False
        self._rng = np.random.default_rng(seed)
        self._game_over = True  # the next reset starts a new game
        self._lives = 0

    def _load(self, seed: int | None) -> None:
        """(Re)load the ROM with the emulator seeded from ``seed`` (ALE reads it at load)."""
        emu_seed = np.random.SeedSequence(seed).generate_state(1)[0] % (2**31 - 1)
        self._ale.setInt("random_seed", int(emu_seed))
        self._ale.loadROM(self._rom)

    @property
    def action_meanings(self) -> list[str]:
        """The ALE action names, in the order of the action indices (e.g. ``'NOOP'``)."""
        return [a.name for a in self._actions]

    def _screen(self) -> np.ndarray:
        """The current screen, grey ``(210, 160)`` or RGB ``(210, 160, 3)``."""
        return self._ale.getScreenGrayscale() if self._grayscale else self._ale.getScreenRGB()

    def _observe(self, frames: list[np.ndarray], first: bool = False) -> dict[str, np.ndarray]:
        """The observation after ``frames`` (the last one or two screens of a step); with
        ``first`` (a reset) the frame stack is filled with copies of it."""
        frame = self._process(frames)
        if self._stack == 1:
            return {"image": frame}
        if first:
            self._frames.extend([frame] * self._stack)
        else:
            self._frames.append(frame)
        return {"image": np.concatenate(self._frames, axis=-1)}

    def _process(self, frames: list[np.ndarray]) -> np.ndarray:
        """One ``(H, W, C)`` uint8 frame: max-pooled over the last two screens, resized."""
        frame = frames[-1] if len(frames) == 1 else np.maximum(frames[-2], frames[-1])
        h, w = self._size
        if frame.shape[:2] != (h, w):
            frame = self._cv2.resize(frame, (w, h), interpolation=self._cv2.INTER_AREA)
        if frame.ndim == 2:
            frame = frame[:, :, None]
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def _truncated(self) -> bool:
        return self._ale.getEpisodeFrameNumber() >= self._max_frames

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None and not self._seeded:
            seed = self._seed
        if seed is not None:
            self._load(seed)
            self._rng = np.random.default_rng(seed)
            self._seeded = True
            self._game_over = True
        if self._episodic_life and not self._game_over:
            # The previous episode ended with a lost life: go on with the same game.
            self._ale.act(self._noop)
        else:
            self._ale.reset_game()
            noops = int(self._rng.integers(1, self._noop_max + 1)) if self._noop_max else 0
            for _ in range(noops):
                self._ale.act(self._noop)
                if self._ale.game_over():
                    self._ale.reset_game()
        if self._ale.game_over() or self._truncated():
            self._ale.reset_game()
        self._game_over = False
        self._lives = self._ale.lives()
        return make_step(self._observe([self._screen()], first=True), 0.0, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        act = self._actions[discrete_index(action, self.act_space.n)]
        reward, frames, life_lost = 0.0, [], False
        for i in range(self._repeat):
            reward += float(self._ale.act(act))
            if i >= self._repeat - 2:
                frames.append(self._screen())
            if self._ale.game_over() or self._truncated():
                break
            if self._episodic_life:
                lives = self._ale.lives()
                if 0 < lives < self._lives:
                    life_lost = True
                    break
                self._lives = lives
        if not frames:  # the episode ended before the last two frames
            frames.append(self._screen())
        game_over = bool(self._ale.game_over(with_truncation=False))
        truncated = self._truncated()
        terminal = game_over or life_lost
        self._game_over = game_over or truncated
        if self._clip_rewards:
            reward = float(np.sign(reward))
        return make_step(
            self._observe(frames),
            reward,
            is_last=terminal or truncated,
            is_terminal=terminal,
        )

    def render(self) -> np.ndarray | None:
        return None if self._ale is None else self._ale.getScreenRGB()

    def close(self) -> None:
        self._ale = None  # type: ignore[assignment]


def _int_at_least(value: Any, what: str, env: str, least: int = 0, fix: str = "") -> int:
    """``value`` as an int, or a UserError when it is not an integer >= ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        hint = f"; fix: {fix}" if fix else ""
        raise UserError(f"env '{env}': {what} must be an integer >= {least}, got {value!r}{hint}")
    return int(value)
