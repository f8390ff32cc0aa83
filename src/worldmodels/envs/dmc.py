"""DeepMind Control Suite behind the worldmodels :class:`~worldmodels.envs.base.Env` interface.

``dmc:<domain>-<task>``, e.g. ``dmc:cartpole-swingup``, ``dmc:walker-walk``, ``dmc:cup-catch``
(TD-MPC2's name for ``ball_in_cup``); dashes in the task name stand for underscores
(``dmc:cartpole-balance-sparse``).

* ``obs='vector'``: the observation dict flattened and concatenated (in the suite's key order)
  as float32 ``'vector'``.
* ``obs='pixels'``: ``'image'`` uint8 ``(H, W, 3)`` rendered from camera 0 with shadows and
  reflections off (6-7x faster at 64x64, measured); ``MUJOCO_GL`` defaults to ``egl``
  (headless) where libEGL exists.
* Actions in ``[-1, 1]`` are rescaled to the action spec's bounds and repeated
  ``action_repeat`` times (default 2, as TD-MPC2 and DreamerV3 for DMC); rewards are summed.
* Episodes are 1000 simulator steps (500 agent steps at repeat 2) and end by the time limit:
  ``is_last`` without ``is_terminal``. A step with discount 0 (no suite task has one) would be
  terminal.
"""

from __future__ import annotations

import ctypes.util
import difflib
import os
import sys
from typing import Any

import numpy as np

from worldmodels.envs.base import ActionSpace, Env, Spec, continuous_action, make_step
from worldmodels.envs.registry import check_action_repeat
from worldmodels.errors import UserError

ALIASES = {"cup": "ball_in_cup"}
"""Domain names used by TD-MPC2 -> dm_control's."""

NO_SHADOWS = {"shadow": False, "reflection": False}


def parse_name(name: str) -> tuple[str, str]:
    """``'cartpole-balance-sparse'`` -> ``('cartpole', 'balance_sparse')``; ``cup`` is
    ``ball_in_cup``."""
    if "-" not in name:
        raise UserError(
            f"malformed dmc id 'dmc:{name}'; fix: write dmc:<domain>-<task>, e.g. "
            "dmc:cartpole-swingup"
        )
    domain, task = name.split("-", 1)
    return ALIASES.get(domain, domain), task.replace("-", "_")


def headless_gl() -> None:
    """Default ``MUJOCO_GL`` to ``egl`` on Linux where libEGL exists (headless rendering); it is
    read once, when dm_control is first imported, so set it before that in every mode."""
    if "MUJOCO_GL" not in os.environ and sys.platform.startswith("linux"):
        if ctypes.util.find_library("EGL"):
            os.environ["MUJOCO_GL"] = "egl"


class DMCEnv(Env):
    """One dm_control suite task; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        obs: str = "vector",
        seed: int | None = 0,
        size: tuple[int, int] = (64, 64),
        action_repeat: int = 2,
        camera: int = 0,
    ):
        if obs not in ("vector", "pixels"):
            raise UserError(f"unknown obs {obs!r}; fix: use obs='vector' or obs='pixels'")
        repeat = check_action_repeat(action_repeat, f"dmc:{name}")
        headless_gl()
        from dm_control import suite

        domain, task = parse_name(name)
        if (domain, task) not in suite.ALL_TASKS:
            known = [f"{d}-{t}" for d, t in suite.ALL_TASKS]
            close = difflib.get_close_matches(f"{domain}-{task}", known, n=3, cutoff=0.6)
            hint = (
                "did you mean " + " or ".join(f"dmc:{c}" for c in close) + "?"
                if close
                else "fix: pick one of dm_control.suite.ALL_TASKS, e.g. dmc:cartpole-swingup"
            )
            raise UserError(f"unknown env 'dmc:{name}'; {hint}")
        self.name = f"dmc:{name}"
        self._pixels = obs == "pixels"
        self._size = (int(size[0]), int(size[1]))
        self._camera_id = int(camera)
        self._camera: Any = None
        self._frame: np.ndarray | None = None
        self._repeat = repeat
        self.episode_length = -(-1000 // self._repeat)  # suite tasks end after 1000 physics steps
        self._seed = seed
        self._seeded = False
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        if self._pixels:
            self.obs_space = {"image": Spec((*self._size, 3), np.uint8)}
        else:
            specs = self._env.observation_spec().values()
            dim = sum(int(np.prod(s.shape, dtype=np.int64)) for s in specs)
            self.obs_space = {"vector": Spec((dim,), np.float32)}
        spec = self._env.action_spec()
        self._low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64).reshape(-1)
        self._high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64).reshape(-1)
        self._act_shape, self._act_dtype = spec.shape, spec.dtype
        self.act_space = ActionSpace(discrete=False, n=int(np.prod(spec.shape, dtype=np.int64)))

    def _render(self) -> np.ndarray:
        from dm_control.mujoco.engine import Camera

        physics = self._env.physics
        if self._camera is None or self._camera._physics is not physics:
            h, w = self._size
            self._camera = Camera(physics, height=h, width=w, camera_id=self._camera_id)
        frame = self._camera.render(render_flag_overrides=dict(NO_SHADOWS))
        self._frame = np.array(frame, dtype=np.uint8)  # a copy: the camera reuses its buffer
        return self._frame

    def _observe(self, time_step: Any) -> dict[str, np.ndarray]:
        if self._pixels:
            return {"image": self._render()}
        parts = [
            np.asarray(v, dtype=np.float32).reshape(-1) for v in time_step.observation.values()
        ]
        return {"vector": np.concatenate(parts)}

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None and not self._seeded:
            seed = self._seed
        if seed is not None:
            self._env.task.random.seed(int(seed))
            self._seeded = True
        return make_step(self._observe(self._env.reset()), 0.0, is_first=True)

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        a = continuous_action(action, self.act_space.n)
        a = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        a = a.reshape(self._act_shape).astype(self._act_dtype)
        reward = 0.0
        for _ in range(self._repeat):
            time_step = self._env.step(a)
            reward += float(time_step.reward or 0.0)
            if time_step.last():
                break
        last = bool(time_step.last())
        terminal = last and time_step.discount is not None and float(time_step.discount) == 0.0
        return make_step(self._observe(time_step), reward, is_last=last, is_terminal=terminal)

    def render(self) -> np.ndarray | None:
        """The last observed frame (pixels), or a fresh one from camera 0 (None if no GL)."""
        if self._pixels and self._frame is not None:
            return self._frame
        try:
            return self._render()
        except (RuntimeError, ImportError, OSError):  # no OpenGL backend: videos are optional
            return None

    def close(self) -> None:
        if self._camera is not None:
            self._camera = None
        self._env.close()
