"""``make_env('suite:name')``: one id scheme for every environment suite.

Suites with a factory build envs; the others are registered with the optional extra they need,
so a missing package gives a one-line :class:`MissingExtraError` naming the ``pip install``.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from worldmodels.envs.base import Env
from worldmodels.errors import MissingExtraError, UserError

OBS_MODES = ("vector", "pixels")
REPEAT_SUITES = ("gym", "dmc", "atari", "doom")
"""Suites whose factory takes ``action_repeat`` (the others take only 1)."""

#: factory(name, *, obs, seed, size, **kwargs) -> Env, where name is the part after the colon.
Factory = Callable[..., Env]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    extra: str | None = None  # pip extra ``worldmodels[extra]``; None for core suites
    module: str | None = None  # module whose presence means the extra is installed
    factory: Factory | None = None  # None: registered but not implemented yet

    @property
    def installed(self) -> bool:
        return self.module is None or _module_available(self.module)


_SUITES: dict[str, Suite] = {}


def _module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _one_line(msg: Any) -> str:
    return " ".join(str(msg).split())


def register_suite(
    name: str,
    description: str,
    *,
    extra: str | None = None,
    module: str | None = None,
    factory: Factory | None = None,
) -> None:
    """Add or replace a suite. ``factory(name, *, obs, seed, size, **kwargs)`` builds an Env."""
    _SUITES[name] = Suite(name, description, extra, module, factory)


def list_suites() -> list[dict[str, Any]]:
    """Every suite as ``{'name', 'extra', 'installed', 'description'}`` (extra None: core)."""
    return [
        {"name": s.name, "extra": s.extra, "installed": s.installed, "description": s.description}
        for s in _SUITES.values()
    ]


def make_env(
    env_id: str,
    *,
    obs: str = "vector",
    seed: int = 0,
    size: tuple[int, int] = (64, 64),
    **kwargs: Any,
) -> Env:
    """Build an environment from ``'suite:name'``, e.g. ``make_env('gym:CartPole-v1')``.

    ``obs``: ``'vector'`` or ``'pixels'`` (``'image'`` uint8 of shape ``(*size, 3)``; grey
    Atari has 1 channel and MinAtar one per object kind).
    ``seed`` seeds the env's first reset. Extra keyword arguments go to the suite's factory
    (for ``gym:`` they go to ``gymnasium.make``, e.g. ``max_episode_steps=100``).
    ``action_repeat=R`` (``gym:``, ``dmc:``, ``atari:`` and ``doom:``, where it is the frame
    skip) repeats each action R simulator steps and sums the rewards; other suites accept only
    1. The other settings of ``atari:``, ``minatar:``, ``crafter:`` and ``doom:`` envs are
    listed in the docstrings of ``worldmodels.envs.atari``, ``.minatar_env``, ``.crafter_env``
    and ``.doom``.
    Bad input raises :class:`UserError` with a one-line message naming the fix.
    """
    suite_name, name = _split_id(env_id)
    if obs not in OBS_MODES:
        raise UserError(f"unknown obs {obs!r}; fix: use obs='vector' or obs='pixels'")
    size = _check_size(size)
    suite = _SUITES.get(suite_name)
    if suite is None:
        known = ", ".join(_SUITES)
        close = difflib.get_close_matches(suite_name, list(_SUITES), n=1)
        hint = f"did you mean '{close[0]}:{name}'? " if close else ""
        raise UserError(
            f"unknown env suite '{suite_name}' in '{env_id}'; {hint}known suites: {known}"
        )
    if suite.extra is not None and suite.module is not None and not suite.installed:
        raise MissingExtraError(f"env '{env_id}'", suite.extra, suite.module)
    if suite.factory is None:
        raise UserError(
            f"env suite '{suite_name}' is not implemented yet (issue pending); "
            "fix: use a 'gym:' or 'toy:' env for now, e.g. 'gym:CartPole-v1'"
        )
    if "action_repeat" in kwargs:
        repeat = check_action_repeat(kwargs["action_repeat"], env_id)
        if suite_name in REPEAT_SUITES:
            kwargs["action_repeat"] = repeat
        elif repeat == 1:
            del kwargs["action_repeat"]
        else:
            raise UserError(
                f"env '{env_id}' has no action repeat (only {', '.join(REPEAT_SUITES)} envs do), "
                f"got {repeat}; fix: set run.action_repeat to 0 (the suite's default)"
            )
    return suite.factory(name, obs=obs, seed=seed, size=size, **kwargs)


def check_action_repeat(value: Any, env_id: str = "") -> int:
    """``value`` as an int >= 1, else a one-line :class:`UserError`."""
    where = f"env '{env_id}': " if env_id else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(
            f"{where}action_repeat must be an integer >= 1, got {value!r}; "
            "fix: e.g. --set run.action_repeat=2"
        )
    return int(value)


def _split_id(env_id: Any) -> tuple[str, str]:
    if not isinstance(env_id, str) or ":" not in env_id:
        hint = "e.g. 'gym:CartPole-v1'"
        if isinstance(env_id, str) and env_id and _is_gym_id(env_id):
            hint = f"did you mean 'gym:{env_id}'?"
        raise UserError(f"malformed env id {env_id!r}; fix: write it as 'suite:name', {hint}")
    suite, name = env_id.split(":", 1)
    if not suite or not name:
        raise UserError(
            f"malformed env id {env_id!r}; fix: write it as 'suite:name', e.g. 'gym:CartPole-v1'"
        )
    return suite, name


def _check_size(size: Any) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        h = w = 0
    if h <= 0 or w <= 0:
        raise UserError(f"bad image size {size!r}; fix: give (height, width), e.g. (64, 64)")
    return h, w


# -- gym -------------------------------------------------------------------------------------


def _is_gym_id(name: str) -> bool:
    try:
        import gymnasium

        return name in gymnasium.registry
    except Exception:  # noqa: BLE001 - only used for a hint
        return False


def _gym_spec(name: str) -> Any:
    import gymnasium

    if name.startswith("ALE/") and name not in gymnasium.registry:
        if not _module_available("ale_py"):
            raise MissingExtraError(f"env 'gym:{name}'", "atari", "ale_py")
        import ale_py

        gymnasium.register_envs(ale_py)
    try:
        return gymnasium.spec(name)
    except gymnasium.error.Error as exc:
        close = difflib.get_close_matches(name, list(gymnasium.registry.keys()), n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(f"gym:{c}" for c in close) + "?"
        else:
            hint = (
                f"({_one_line(exc)}) fix: pick an id from gymnasium.pprint_registry(), "
                "e.g. gym:CartPole-v1"
            )
        raise UserError(f"unknown env 'gym:{name}'; {hint}") from None


def _supports_rgb_array(spec: Any) -> bool:
    try:
        from gymnasium.envs.registration import load_env_creator

        entry = spec.entry_point
        creator = entry if callable(entry) else load_env_creator(entry)
        metadata = getattr(creator, "metadata", None)
        return isinstance(metadata, dict) and "rgb_array" in metadata.get("render_modes", ())
    except Exception:  # noqa: BLE001 - rendering for videos is optional
        return False


def _make_gym(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    import gymnasium

    from worldmodels.envs.gym_env import GymEnv, headless_video

    repeat = kwargs.pop("action_repeat", 1)
    spec = _gym_spec(name)
    user_args = ", ".join(sorted(kwargs))
    if obs == "pixels":
        if kwargs.get("render_mode", "rgb_array") != "rgb_array":
            raise UserError(
                f"gym:{name}: obs='pixels' renders with render_mode='rgb_array', got "
                f"render_mode={kwargs['render_mode']!r}; fix: drop the render_mode argument"
            )
        kwargs["render_mode"] = "rgb_array"
        headless_video()
    elif "render_mode" not in kwargs and _supports_rgb_array(spec):
        kwargs["render_mode"] = "rgb_array"  # lets Env.render() give frames for videos
    try:
        env = gymnasium.make(name, **kwargs)
    except gymnasium.error.DependencyNotInstalled as exc:
        raise UserError(f"env 'gym:{name}' needs a missing package: {_one_line(exc)}") from None
    except TypeError as exc:
        raise UserError(
            f"env 'gym:{name}' rejected the arguments ({user_args}): {_one_line(exc)}; "
            "fix: drop or rename them"
        ) from None
    return GymEnv(env, obs=obs, size=size, seed=seed, name=f"gym:{name}", action_repeat=repeat)


# -- toy -------------------------------------------------------------------------------------


def _make_toy(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    from worldmodels.envs.toy import make_toy

    if kwargs:
        raise UserError(
            f"env 'toy:{name}' takes no extra arguments, got {', '.join(sorted(kwargs))}; "
            "fix: drop them"
        )
    return make_toy(name, obs=obs, seed=seed, size=size)


# -- dmc -------------------------------------------------------------------------------------


def _make_dmc(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    from worldmodels.envs.dmc import DMCEnv

    unknown = sorted(set(kwargs) - {"action_repeat", "camera"})
    if unknown:
        raise UserError(
            f"env 'dmc:{name}' takes action_repeat and camera, got {', '.join(unknown)}; "
            "fix: drop them"
        )
    return DMCEnv(name, obs=obs, seed=seed, size=size, **kwargs)


# -- board -----------------------------------------------------------------------------------


def _make_board(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    from worldmodels.envs.board import make_board

    return make_board(name, obs=obs, seed=seed, size=size, **kwargs)


# -- atari, minatar, crafter ----------------------------------------------------------------


def _check_options(env_id: str, kwargs: dict[str, Any], options: tuple[str, ...]) -> None:
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise UserError(
            f"env '{env_id}' takes {', '.join(options)}, got {', '.join(unknown)}; "
            "fix: drop or rename them"
        )


def _make_atari(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    from worldmodels.envs.atari import OPTIONS, AtariEnv

    _check_options(f"atari:{name}", kwargs, OPTIONS)
    return AtariEnv(name, obs=obs, seed=seed, size=size, **kwargs)


def _make_minatar(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    from worldmodels.envs.minatar_env import OPTIONS, MinAtarEnv

    _check_options(f"minatar:{name}", kwargs, OPTIONS)
    return MinAtarEnv(name, obs=obs, seed=seed, size=size, **kwargs)


def _make_crafter(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    from worldmodels.envs.crafter_env import OPTIONS, CrafterEnv

    _check_options(f"crafter:{name}", kwargs, OPTIONS)
    return CrafterEnv(name, obs=obs, seed=seed, size=size, **kwargs)


def _make_doom(name: str, *, obs: str, seed: int, size: tuple[int, int], **kwargs: Any) -> Env:
    from worldmodels.envs.doom import OPTIONS, DoomEnv

    _check_options(f"doom:{name}", kwargs, OPTIONS)
    return DoomEnv(name, obs=obs, seed=seed, size=size, **kwargs)


# -- suites ----------------------------------------------------------------------------------

register_suite("gym", "any Gymnasium id, e.g. gym:CartPole-v1", factory=_make_gym)
register_suite("toy", "tiny test envs: toy:target, toy:image_target, toy:reach", factory=_make_toy)
register_suite(
    "dmc",
    "DeepMind Control Suite from state or pixels, action repeat 2, e.g. dmc:cartpole-swingup",
    extra="dmc",
    module="dm_control",
    factory=_make_dmc,
)
register_suite(
    "atari",
    "Atari 2600 via ALE from pixels, frame skip 4, sticky actions 0.25, e.g. atari:pong",
    extra="atari",
    module="ale_py",
    factory=_make_atari,
)
register_suite(
    "minatar",
    "MinAtar 10x10 games from pixels or vector, sticky actions 0.1, e.g. minatar:breakout",
    extra="minatar",
    module="minatar",
    factory=_make_minatar,
)
register_suite(
    "crafter",
    "Crafter from pixels with achievement logs: crafter:reward, crafter:noreward",
    extra="crafter",
    module="crafter",
    factory=_make_crafter,
)
register_suite(
    "doom",
    "ViZDoom from pixels, World Models' frames and 2100-tic cap, e.g. doom:take_cover",
    extra="doom",
    module="vizdoom",
    factory=_make_doom,
)
register_suite(
    "board",
    "two-player board games in numpy: board:tic_tac_toe, board:connect_four",
    factory=_make_board,
)
