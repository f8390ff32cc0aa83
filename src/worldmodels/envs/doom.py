"""ViZDoom scenarios (Kempka et al. 2016) from pixels, through the ``vizdoom`` package.

``doom:take_cover`` is ``VizdoomTakeCover-v1``, the DoomTakeCover task of World Models (Ha &
Schmidhuber 2018): monsters at the far wall throw fireballs and the agent survives by
strafing; the reward is +1 per game tic alive and death ends the episode. Any other Gymnasium
id that ``vizdoom`` registers with a discrete action space can be given as it is, e.g.
``doom:VizdoomBasic-v1``, or in snake case (``doom:basic``, ``doom:deadly_corridor``). Pixels
only: ``obs='pixels'`` (``--obs pixels``).

Frames follow the World Models reference (hardmaru/WorldModelsExperiments, ``doomrnn``): the
game renders its status bar, the bottom sixth of the screen (the status bar) is cropped away
(the reference's rows ``0:400`` of 480), and the rest, 200x320 of the 240x320 screen, is
resized to ``size`` (default ``(64, 64)``) uint8 RGB ``'image'``.

Actions are the scenario's button combinations in ``vizdoom``'s order; ``action_names`` names
them by their buttons (``MOVE_LEFT`` -> ``'left'``, combinations joined with ``+``, no button
pressed ``'none'``). ``doom:take_cover`` has three: ``('none', 'right', 'left')``.

Settings (keyword arguments of ``make_env``):

* ``action_repeat`` (default 1, the reference's): each agent step holds the action for that
  many game tics and sums their rewards (``make_env``'s ``action_repeat``,
  ``--set run.action_repeat=N``).
* ``max_frames`` (default 2100, the reference's ``MAX_FRAMES``): episodes are truncated
  (``is_last`` without ``is_terminal``) after this many game tics; ``episode_length`` is
  ``max_frames / action_repeat`` agent steps, rounded up. A scenario's own time limit
  (``VizdoomBasic-v1`` has one) is a truncation as well.
* ``skill`` (default None: the scenario's own, 4 for take_cover): the game's difficulty, 1 to
  5. A uniform random policy survives about 245 tics of take_cover at skill 4 and 60 at 5.

Death (the game's end of the episode) is a termination. ViZDoom has no screen after the last
tic, so the final observation of an episode repeats the frame before it. Seeding: the first
``reset()`` seeds the game with ``seed``; later ``reset()`` calls without a seed continue from
it. ``render()`` gives the last full screen (240x320 RGB, status bar included).
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
import weakref
from typing import Any

import numpy as np

from worldmodels.envs.atari import rom_id
from worldmodels.envs.base import ActionSpace, Env, Spec, discrete_index, make_step
from worldmodels.envs.image import resize
from worldmodels.envs.registry import check_action_repeat
from worldmodels.errors import MissingExtraError, UserError

OPTIONS = ("action_repeat", "max_frames", "skill")
"""Keyword arguments ``doom:`` envs take (besides ``obs``, ``seed`` and ``size``)."""

ALIASES = {"take_cover": "VizdoomTakeCover-v1"}
"""Short names of ``doom:`` envs and the ``vizdoom`` Gymnasium ids they stand for."""

MAX_FRAMES = 2100
"""The World Models reference's episode cap in game tics."""

KEEP_ROWS = 5 / 6
"""Fraction of the screen's rows kept, from the top: the rest is the status bar."""


def gym_id(name: str, known: Any = ()) -> str:
    """``'take_cover'`` (or ``'TakeCover'``, ``'take-cover'``) -> ``'VizdoomTakeCover-v1'``;
    a snake-case scenario name whose ``Vizdoom<Name>-v1`` is in ``known`` (e.g. ``'basic'``,
    ``'deadly_corridor'``) -> that id; other names are taken as ``vizdoom`` ids as they are."""
    key = rom_id(name)
    if key in ALIASES:
        return ALIASES[key]
    camel = "Vizdoom" + "".join(part.capitalize() for part in key.split("_")) + "-v1"
    return camel if name not in known and camel in known else name


def button_name(button: str) -> str:
    """``'MOVE_LEFT'`` -> ``'left'``, ``'TURN_LEFT'`` -> ``'turn_left'``, ``'ATTACK'`` ->
    ``'attack'``."""
    name = button.lower()
    return name[len("move_") :] if name.startswith("move_") else name


class DoomEnv(Env):
    """One ViZDoom scenario; see the module docstring for the settings and their defaults."""

    def __init__(
        self,
        name: str,
        *,
        obs: str = "pixels",
        seed: int | None = 0,
        size: tuple[int, int] = (64, 64),
        action_repeat: int = 1,
        max_frames: int = MAX_FRAMES,
        skill: int | None = None,
    ):
        self.name = f"doom:{name}"
        self._env: Any = None
        self._cleanup: Any = None
        if obs != "pixels":
            raise UserError(
                f"env '{self.name}' observes pixels only, got obs={obs!r}; "
                "fix: use obs='pixels' (--obs pixels)"
            )
        self._repeat = check_action_repeat(action_repeat, self.name)
        if (
            isinstance(max_frames, bool)
            or not isinstance(max_frames, (int, np.integer))
            or max_frames < 1
        ):
            raise UserError(
                f"env '{self.name}': max_frames must be an integer >= 1, got {max_frames!r}; "
                f"fix: e.g. {MAX_FRAMES}"
            )
        if skill is not None and (
            isinstance(skill, bool)
            or not isinstance(skill, (int, np.integer))
            or not 1 <= skill <= 5
        ):
            raise UserError(
                f"env '{self.name}': skill must be an integer in 1..5 or None, got {skill!r}; "
                "fix: e.g. 4 (take_cover's own)"
            )
        try:
            import gymnasium
            from vizdoom import gymnasium_wrapper  # noqa: F401 - registers the Vizdoom* ids
        except ImportError as exc:
            raise MissingExtraError(f"env '{self.name}'", "doom", exc.name or "vizdoom") from None

        known = [k for k in gymnasium.registry if k.startswith("Vizdoom")]
        env_id = gym_id(name, known)
        if env_id not in known:
            close = difflib.get_close_matches(rom_id(name), list(ALIASES), n=1, cutoff=0.6)
            close += difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
            hint = (
                "did you mean " + " or ".join(f"doom:{c}" for c in close) + "?"
                if close
                else "fix: use doom:take_cover or a vizdoom id, e.g. doom:VizdoomBasic-v1"
            )
            raise UserError(f"unknown env '{self.name}'; {hint}")

        # ViZDoom writes its engine settings to ./_vizdoom.ini unless told otherwise.
        tmp = tempfile.mkdtemp(prefix="worldmodels-doom-")
        config: dict[str, Any] = {
            "frame_skip": self._repeat,
            "render_hud": True,  # the status bar is drawn and cropped, as in the reference
            "doom_config_path": os.path.join(tmp, "_vizdoom.ini"),
        }
        if skill is not None:
            config["doom_skill"] = int(skill)
        try:
            self._env = gymnasium.make(env_id, disable_env_checker=True, **config)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # Closes the game, then removes the ini it writes on closing; at close() or collection.
        self._cleanup = weakref.finalize(self, _release, self._env, tmp)
        game_env = self._env.unwrapped
        space = self._env.action_space
        if not isinstance(space, gymnasium.spaces.Discrete):
            self.close()
            raise UserError(
                f"env '{self.name}' has the action space {space}, not a discrete one; "
                "fix: use an id without -MultiBinary and without delta buttons"
            )
        self.act_space = ActionSpace(discrete=True, n=int(space.n))
        buttons = [b.name for b in game_env.game.get_available_buttons()]
        buttons = buttons[game_env.num_delta_buttons :]
        self.action_names = tuple(
            "+".join(button_name(b) for b, on in zip(buttons, combo) if on) or "none"
            for combo in game_env.button_map
        )
        self._size = (int(size[0]), int(size[1]))
        self.obs_space = {"image": Spec((*self._size, 3), np.uint8)}
        self.episode_length = -(-int(max_frames) // self._repeat)
        self._seed = seed
        self._seeded = False
        self._steps = 0
        self._screen: np.ndarray | None = None

    @property
    def unwrapped(self) -> Any:
        """The ``vizdoom`` Gymnasium env (its ``.game`` is the ``vizdoom.DoomGame``)."""
        return self._env.unwrapped

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._env.unwrapped.state is not None:  # None after the last tic: keep the frame
            self._screen = np.asarray(raw["screen"])
        screen = self._screen
        assert screen is not None
        rows = int(round(screen.shape[0] * KEEP_ROWS))
        return {"image": resize(screen[:rows], self._size)}

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None and not self._seeded:
            seed = self._seed
        raw, _ = self._env.reset(seed=None if seed is None else int(seed))
        if seed is not None:
            self._seeded = True
        self._steps = 0
        return make_step(self._observe(raw), 0.0, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        act = discrete_index(action, self.act_space.n)
        raw, reward, terminated, truncated, _ = self._env.step(act)
        self._steps += 1
        # vizdoom reports a scenario's time limit as terminated and truncated.
        terminal = bool(terminated) and not bool(truncated)
        return make_step(
            self._observe(raw),
            float(reward),
            is_last=terminal or bool(truncated) or self._steps >= self.episode_length,
            is_terminal=terminal,
        )

    def render(self) -> np.ndarray | None:
        return self._screen

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()


def _release(env: Any, tmp: str) -> None:
    try:
        env.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
