"""Wrap a Gymnasium env behind the worldmodels :class:`~worldmodels.envs.base.Env` interface."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from worldmodels.envs.base import (
    ActionSpace,
    Env,
    Spec,
    continuous_action,
    discrete_index,
    make_step,
)
from worldmodels.envs.image import resize
from worldmodels.envs.registry import check_action_repeat
from worldmodels.errors import UserError

OWN_FRAME_ROWS: dict[str, tuple[int, int]] = {"CarRacing": (0, 84)}
"""Gymnasium envs (ids without the version) whose ``obs='pixels'`` image is their own image
observation rather than ``render()``, and the rows of it kept: CarRacing observes a 96x96 frame
whose bottom 12 rows are the dashboard, cut off as World Models' carracing/env.py does."""


def headless_video() -> None:
    """Let pygame-based renderers run without a display (no-op if the user set a driver)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


class GymEnv(Env):
    """A Gymnasium env seen through the worldmodels interface.

    ``obs='vector'``: Box observations flattened to float32 ``'vector'``; Discrete ones as a
    one-hot; Dict/Tuple/MultiDiscrete/MultiBinary flattened with ``gymnasium.spaces.flatten``.
    ``obs='pixels'``: ``'image'`` is ``env.render()`` resized to ``size`` (``(H, W)``), so the
    gymnasium env must have been created with ``render_mode='rgb_array'``; envs listed in
    :data:`OWN_FRAME_ROWS` (CarRacing) give their own image observation instead, cropped to the
    listed rows and resized (``render()`` then returns that observation uncropped).

    Actions: Discrete -> int64 indices; Box -> float vectors in ``[-1, 1]`` rescaled to the
    space's bounds (unbounded dimensions are passed through after clipping to ``[-1, 1]``).

    ``action_repeat=R``: each ``step`` applies the action for up to R gymnasium steps (fewer if
    the episode ends), sums their rewards and observes the last; ``episode_length`` counts these
    agent steps (the time limit divided by R, rounded up).

    Seeding: the first ``reset()`` seeds gymnasium with ``seed`` (the constructor's if the call
    gives none); later ``reset()`` calls without a seed let gymnasium continue its own RNG.
    """

    def __init__(
        self,
        env: Any,
        *,
        obs: str = "vector",
        size: tuple[int, int] = (64, 64),
        seed: int | None = None,
        name: str | None = None,
        action_repeat: int = 1,
    ):
        import gymnasium

        self._env = env
        self._repeat = check_action_repeat(action_repeat, name or "")
        self._obs_mode = obs
        self._size = (int(size[0]), int(size[1]))
        self._seed = seed
        self._seeded = False
        self._frame: np.ndarray | None = None
        self.name = name or (env.spec.id if getattr(env, "spec", None) else type(env).__name__)
        spec = getattr(env, "spec", None)
        base = str(getattr(spec, "id", "") or "").split("-v")[0]
        self._rows = OWN_FRAME_ROWS.get(base) if obs == "pixels" else None
        limit = getattr(spec, "max_episode_steps", None)
        self.episode_length = None if limit is None else -(-int(limit) // self._repeat)
        spaces = gymnasium.spaces

        # Observations.
        space = env.observation_space
        self._obs_space_gym = space
        if obs == "pixels":
            if getattr(env, "render_mode", None) != "rgb_array":
                raise UserError(
                    f"{self.name}: obs='pixels' needs the env created with "
                    f"render_mode='rgb_array' (got {getattr(env, 'render_mode', None)!r}); "
                    "fix: create it with make_env(..., obs='pixels')"
                )
            headless_video()
            self.obs_space = {"image": Spec((*self._size, 3), np.uint8)}
        elif obs == "vector":
            if isinstance(space, spaces.Box):
                if space.dtype == np.uint8 and len(space.shape) == 3:
                    raise UserError(
                        f"{self.name} observes images of shape {space.shape}; "
                        "fix: use obs='pixels' (--obs pixels)"
                    )
                dim = int(np.prod(space.shape, dtype=np.int64))
            elif isinstance(space, spaces.Discrete):
                dim = int(space.n)
            else:
                try:
                    dim = int(spaces.flatdim(space))
                except (NotImplementedError, ValueError, TypeError) as exc:
                    raise UserError(
                        f"{self.name}: observation space {type(space).__name__} cannot be "
                        "flattened to a vector; fix: use obs='pixels' or wrap the env"
                    ) from exc
            self.obs_space = {"vector": Spec((dim,), np.float32)}
        else:
            raise UserError(f"unknown obs {obs!r}; fix: use obs='vector' or obs='pixels'")

        # Actions.
        aspace = env.action_space
        self._act_space_gym = aspace
        if isinstance(aspace, spaces.Discrete):
            self.act_space = ActionSpace(discrete=True, n=int(aspace.n))
            self._act_start = int(aspace.start)
            meanings = getattr(env.unwrapped, "get_action_meanings", None)  # ALE's envs
            if callable(meanings):
                names = tuple(str(m) for m in meanings())
                self.action_names = names if len(names) == self.act_space.n else None
        elif isinstance(aspace, spaces.Box):
            dim = int(np.prod(aspace.shape, dtype=np.int64))
            self.act_space = ActionSpace(discrete=False, n=dim)
            low = np.asarray(aspace.low, dtype=np.float64).reshape(-1)
            high = np.asarray(aspace.high, dtype=np.float64).reshape(-1)
            finite = np.isfinite(low) & np.isfinite(high)
            self._act_low = np.where(finite, low, -1.0)
            self._act_high = np.where(finite, high, 1.0)
        else:
            raise UserError(
                f"{self.name}: action space {type(aspace).__name__} is not supported; "
                "fix: use an env with a Discrete or Box action space"
            )

    # -- conversions -----------------------------------------------------------------------

    def scale_action(self, action: Any) -> Any:
        """Map an interface action to what the gymnasium env receives.

        Discrete: the index (plus the space's ``start``). Box: ``[-1, 1]`` rescaled linearly
        to ``[low, high]`` and reshaped to the space's shape and dtype.
        """
        if self.act_space.discrete:
            return discrete_index(action, self.act_space.n) + self._act_start
        a = continuous_action(action, self.act_space.n)
        a = self._act_low + (a + 1.0) * 0.5 * (self._act_high - self._act_low)
        space = self._act_space_gym
        return a.reshape(space.shape).astype(space.dtype)

    def _observe(self, raw: Any) -> dict[str, np.ndarray]:
        if self._rows is not None:
            self._frame = np.asarray(raw)
            return {"image": resize(self._frame[self._rows[0] : self._rows[1]], self._size)}
        if self._obs_mode == "pixels":
            frame = self._env.render()
            if frame is None:
                raise RuntimeError(f"{self.name}: render() returned None in rgb_array mode")
            self._frame = np.asarray(frame)
            return {"image": resize(self._frame, self._size)}
        import gymnasium

        space = self._obs_space_gym
        if isinstance(space, gymnasium.spaces.Box):
            vec = np.asarray(raw, dtype=np.float32).reshape(-1)
        elif isinstance(space, gymnasium.spaces.Discrete):
            vec = np.zeros(int(space.n), dtype=np.float32)
            vec[int(raw) - int(space.start)] = 1.0
        else:
            vec = np.asarray(gymnasium.spaces.flatten(space, raw), dtype=np.float32).reshape(-1)
        return {"vector": vec}

    # -- Env interface ---------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None and not self._seeded:
            seed = self._seed
        raw, _ = self._env.reset(seed=None if seed is None else int(seed))
        if seed is not None:
            self._seeded = True
        return make_step(self._observe(raw), 0.0, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        act, total = self.scale_action(action), 0.0
        for _ in range(self._repeat):
            raw, reward, terminated, truncated, _ = self._env.step(act)
            total += float(reward)
            if terminated or truncated:
                break
        return make_step(
            self._observe(raw),
            total,
            is_last=bool(terminated or truncated),
            is_terminal=bool(terminated),
        )

    def render(self) -> np.ndarray | None:
        if self._obs_mode == "pixels" and self._frame is not None:
            return self._frame
        if getattr(self._env, "render_mode", None) == "rgb_array":
            headless_video()
            frame = self._env.render()
            return None if frame is None else np.asarray(frame)
        return None

    def close(self) -> None:
        self._env.close()

    @property
    def unwrapped(self) -> Any:
        """The wrapped gymnasium env."""
        return self._env
