"""``worldmodels collect``: episodes from a random policy or a trained run, written as a dataset
(:mod:`worldmodels.replay.dataset`)."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..checkpoint import atomic_write_text
from ..envs import make_env
from ..envs.vector import VectorEnv
from ..errors import UserError
from ..logging import Progress
from ..replay import ReplayBuffer
from ..replay.dataset import CHUNKS, FORMAT, SCHEMA, VERSION, spaces_to_json
from .parts import AGE_KEY


def noisy(action: np.ndarray, act_space, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Exploration noise on a batch of actions: continuous a + noise * N(0, 1) clipped to
    [-1, 1]; discrete: each action replaced by a uniform one with probability ``noise``."""
    if noise <= 0:
        return action
    if act_space.discrete:
        swap = rng.random(action.shape[0]) < noise
        return np.where(swap, act_space.sample(rng, action.shape[0]), action)
    return np.clip(action + noise * rng.standard_normal(action.shape), -1.0, 1.0).astype(np.float32)


def collect(
    env: str | None,
    out: str | Path,
    *,
    episodes: int,
    policy: str = "random",
    noise: float = 0.0,
    seed: int = 0,
    obs: str | None = None,
    num_envs: int = 1,
    action_repeat: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Play ``episodes`` whole episodes with ``policy`` (``random`` or a run directory, acting
    greedily) plus ``noise`` and write them to the dataset directory ``out``; returns its
    schema. ``env`` defaults to the run's env; ``obs`` to the run's (else ``vector``)."""
    from .run import env_kwargs, load_agent

    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if not (math.isfinite(noise) and noise >= 0.0):
        raise UserError(f"--noise must be a number >= 0, got {noise}")
    if num_envs < 1:
        raise UserError(f"--envs must be >= 1, got {num_envs}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty directory; fix: another --out")
    agent = None
    kwargs: dict[str, Any] = {"action_repeat": action_repeat} if action_repeat else {}
    if policy != "random":
        agent = load_agent(policy)
        info = agent.run_info
        if info.env is None:
            raise UserError(f"run {policy} has no env; fix: collect with --env and --policy random")
        if env is not None and env != info.env:
            raise UserError(f"--env {env} differs from the run's env {info.env}; fix: drop --env")
        if obs is not None and obs != info.config.run.obs:
            raise UserError(f"--obs {obs} differs from the run's {info.config.run.obs}")
        env, obs, kwargs = info.env, info.config.run.obs, env_kwargs(info.config.run)
    if env is None:
        raise UserError("missing --env; e.g. --env gym:Pendulum-v1")
    obs = obs or "vector"
    make = [
        functools.partial(make_env, env, obs=obs, seed=seed + i, **kwargs) for i in range(num_envs)
    ]
    envs = VectorEnv(make)
    if envs.act_space.discrete and noise > 1.0:
        envs.close()
        raise UserError(
            f"--noise is the probability of a uniform action on discrete actions; got {noise}"
        )
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    store = ReplayBuffer(1 << 40, out / CHUNKS, chunk_size=1024, seed=seed)
    bar = Progress(episodes, 0, disable=None if progress else True)
    # Env i plays episodes i, i + n, ... (a share fixed before the first step, as evaluation
    # does), so the count never depends on which env finishes first.
    share = np.asarray([len(range(i, episodes, num_envs)) for i in range(num_envs)])
    completed = np.zeros(num_envs, np.int64)
    active = share > 0
    try:
        o = envs.reset(seed=seed)
        state = agent.init_state(num_envs) if agent is not None else None
        steps = 0
        while True:
            if agent is None:
                action = envs.act_space.sample(rng, num_envs)
            else:
                state, action, _ = agent.act(state, o, mode="eval")
            action = noisy(np.asarray(action), envs.act_space, noise, rng)
            rows = {**o, "action": action, AGE_KEY: np.full(num_envs, steps, np.int64)}
            streams = np.flatnonzero(active)
            store.add_batch({k: np.asarray(v)[streams] for k, v in rows.items()}, streams.tolist())
            steps += len(streams)
            # The row of an episode's last observation carries an action the env ignores (it
            # resets on the next step, docs/conventions.md).
            for i in streams[np.asarray(o["is_last"], bool)[streams]]:
                completed[i] += 1
                bar.update(int(completed.sum()))
                active[i] = completed[i] < share[i]
            if not active.any():
                break
            o = envs.step(action)
        store.flush()
    finally:
        bar.close()
        envs.close()
    chunks = {p.name: int(p.stem.rsplit("-", 1)[1]) for p in sorted((out / CHUNKS).glob("*.npz"))}
    first = make[0]()
    try:
        episode_length = first.episode_length
    finally:
        first.close()
    keys = {
        k: {"shape": list(shape), "dtype": dtype.name}
        for k, (shape, dtype) in store._schema.items()
    }
    schema = {
        "format": FORMAT,
        "version": VERSION,
        "library_version": __version__,
        "env": env,
        "obs": obs,
        "action_repeat": action_repeat,
        "policy": str(policy),
        "noise": noise,
        "seed": seed,
        "episodes": int(completed.sum()),
        "steps": sum(chunks.values()),
        "episode_length": episode_length,
        **spaces_to_json(envs.obs_space, envs.act_space),
        "keys": keys,
        "chunks": chunks,
    }
    atomic_write_text(out / SCHEMA, json.dumps(schema, indent=2))
    return schema
