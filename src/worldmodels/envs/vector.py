"""Batches of environments stepped together, with DreamerV3-style autoreset.

``VectorEnv.step(actions)`` returns stacked dicts ``[N, ...]``. When env ``i``'s previously
returned step had ``is_last``, the next ``step`` ignores ``actions[i]`` and returns env ``i``'s
``reset()`` observation (``is_first`` True, ``reward`` 0), so each env's stream of steps is exactly
what replay stores (see docs/conventions.md). Before the first ``reset`` every env counts as
done, so a ``step`` without ``reset`` resets them all.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from worldmodels.envs.base import ActionSpace, Env, Spec, Symmetry
from worldmodels.errors import UserError

EnvFn = Callable[[], Env]


def stack_steps(steps: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack a list of step dicts (same keys) into one dict of arrays ``[N, ...]``."""
    return {k: np.stack([s[k] for s in steps]) for k in steps[0]}


class VectorEnv:
    """``num_envs`` environments stepped in lock-step.

    ``parallel=False`` (default) runs them in this process; ``parallel=True`` runs each in its
    own process (``multiprocessing`` context ``context``, default ``'spawn'``) talking over a
    pipe, so the constructors must be picklable (e.g. ``functools.partial(make_env, ...)``).
    ``obs_space`` and ``act_space`` are those of a single env (all must match).
    """

    def __init__(
        self, env_fns: Sequence[EnvFn], *, parallel: bool = False, context: str | None = "spawn"
    ):
        if len(env_fns) == 0:
            raise UserError("VectorEnv needs at least one env; fix: pass num_envs >= 1")
        self.num_envs = len(env_fns)
        self.parallel = parallel
        self._closed = False
        self._envs: list[Any] = []
        try:
            for fn in env_fns:
                self._envs.append(_RemoteEnv(fn, mp.get_context(context)) if parallel else fn())
        except BaseException:
            self.close()
            raise
        spaces = [
            env.spaces()
            if parallel
            else (env.obs_space, env.act_space, getattr(env, "symmetries", ()))
            for env in self._envs
        ]
        self.obs_space: dict[str, Spec] = spaces[0][0]
        self.act_space: ActionSpace = spaces[0][1]
        self.symmetries: tuple[Symmetry, ...] = tuple(spaces[0][2])
        """The first env's :attr:`Env.symmetries`."""
        for obs_space, act_space, _ in spaces[1:]:
            if obs_space != self.obs_space or act_space != self.act_space:
                self.close()
                raise UserError("VectorEnv envs differ in spaces; fix: use one env id for all")
        self._done = np.ones(self.num_envs, dtype=bool)

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Reset every env (env ``i`` with ``seed + i``) and return the stacked first steps."""
        seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        if self.parallel:
            for env, s in zip(self._envs, seeds):
                env.send("reset", s)
            steps = [env.recv() for env in self._envs]
        else:
            steps = [env.reset(s) for env, s in zip(self._envs, seeds)]
        self._done[:] = [bool(s["is_last"]) for s in steps]
        return stack_steps(steps)

    def step(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        """Step every env with ``actions[i]``; envs whose last step ended are reset instead."""
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(
                f"expected actions with leading dim {self.num_envs}, got shape {actions.shape}"
            )
        if self.parallel:
            for i, env in enumerate(self._envs):
                if self._done[i]:
                    env.send("reset", None)
                else:
                    env.send("step", actions[i])
            steps = [env.recv() for env in self._envs]
        else:
            steps = [
                env.reset() if self._done[i] else env.step(actions[i])
                for i, env in enumerate(self._envs)
            ]
        self._done[:] = [bool(s["is_last"]) for s in steps]
        return stack_steps(steps)

    def render(self, index: int = 0) -> np.ndarray | None:
        """Frame of env ``index`` (for videos), or None."""
        env = self._envs[index]
        if self.parallel:
            env.send("render", None)
            return env.recv()
        return env.render()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for env in getattr(self, "_envs", []):
            env.close()

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def make_vector_env(
    env_id: str,
    num_envs: int,
    *,
    obs: str = "vector",
    seed: int = 0,
    parallel: bool = False,
    **kwargs: Any,
) -> VectorEnv:
    """``num_envs`` copies of ``make_env(env_id, obs=obs, seed=seed + i, **kwargs)``."""
    from worldmodels.envs.registry import make_env

    if not isinstance(num_envs, int) or num_envs < 1:
        raise UserError(f"num_envs must be a positive integer, got {num_envs!r}; fix: e.g. 4")
    # Build one env up front in this process so bad ids fail fast with their own UserError.
    first = make_env(env_id, obs=obs, seed=seed, **kwargs)
    if parallel:
        first.close()
    fns: list[EnvFn] = [
        functools.partial(make_env, env_id, obs=obs, seed=seed + i, **kwargs)
        for i in range(num_envs)
    ]
    if not parallel:
        fns[0] = functools.partial(_given, first)
    return VectorEnv(fns, parallel=parallel)


def _given(env: Env) -> Env:
    return env


# -- subprocess workers ----------------------------------------------------------------------


def _worker(conn: Any, env_fn: EnvFn) -> None:
    env = None
    try:
        env = env_fn()
        conn.send(("ok", (env.obs_space, env.act_space, getattr(env, "symmetries", ()))))
        while True:
            cmd, arg = conn.recv()
            if cmd == "close":
                break
            try:
                if cmd == "reset":
                    result = env.reset(arg)
                elif cmd == "step":
                    result = env.step(arg)
                elif cmd == "render":
                    result = env.render()
                else:
                    raise ValueError(f"unknown command {cmd!r}")
                conn.send(("ok", result))
            except Exception as exc:  # noqa: BLE001 - forwarded to the parent
                conn.send(_error(exc))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception as exc:  # noqa: BLE001 - constructor failed
        try:
            conn.send(_error(exc))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if env is not None:
            env.close()
        conn.close()


def _error(exc: BaseException) -> tuple[str, tuple[bool, str, str]]:
    return ("error", (isinstance(exc, UserError), str(exc), traceback.format_exc()))


class _RemoteEnv:
    """Parent-side handle of one env living in a worker process."""

    def __init__(self, env_fn: EnvFn, ctx: Any):
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, env_fn), daemon=True)
        self._proc.start()
        child.close()
        self._spaces = self.recv()

    def spaces(self) -> tuple[dict[str, Spec], ActionSpace, tuple[Symmetry, ...]]:
        """The env's obs_space, act_space and symmetries (sent once at start)."""
        return self._spaces

    def send(self, cmd: str, arg: Any) -> None:
        self._conn.send((cmd, arg))

    def recv(self) -> Any:
        try:
            status, payload = self._conn.recv()
        except EOFError:
            raise RuntimeError("VectorEnv worker process died") from None
        if status == "error":
            is_user, msg, tb = payload
            if is_user:
                raise UserError(msg)
            raise RuntimeError(f"VectorEnv worker failed: {msg}\n{tb}")
        return payload

    def close(self) -> None:
        try:
            self._conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=1)
        self._conn.close()
