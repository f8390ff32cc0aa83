"""The parts every training mode is composed of: a collector (vector envs -> store), a learner
(sampler -> ``agent.update`` at a ratio, priorities back to the sampler) and the return
evaluator. They know an agent only through :mod:`worldmodels.core.agent`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import Agent, Imaginer, check_stop
from ..errors import UserError
from ..replay import AGE_KEY, ReplayBuffer

MAX_NONFINITE = 100
"""Updates in a row with a non-finite loss or gradient after which a run saves and stops."""


@dataclass
class Counters:
    """Loop position saved with every checkpoint."""

    env_steps: int = 0
    updates: int = 0
    episodes: int = 0
    update_credit: float = 0.0
    """Updates owed at the train ratio but not yet run."""
    wall_time: float = 0.0
    last_eval: int = 0
    last_log: int = 0
    best_eval: float = -math.inf
    history: list = field(default_factory=list)
    nonfinite: int = 0
    """Updates skipped because a loss or gradient was not finite (over the whole run)."""
    stage: int = 0
    """Staged agents: index of the stage in progress (``len(stages)`` once all are done)."""
    stage_episodes: int = 0
    """Episodes the collect stage in progress has finished."""


@dataclass
class StageContext:
    """What a ``fit`` stage gets from the staged mode (:meth:`AgentBase.run_stage`)."""

    run_dir: Path
    """The run directory; a stage keeps its artefacts under ``run_dir / stage.name``."""
    replay: ReplayBuffer
    """The steps the collect stages stored."""
    make_env: Callable[[int], Any]
    """A fresh env of the run, seeded with the argument (for stages that evaluate or roll out)."""
    should_stop: Callable[[], bool]
    """True once a stop signal arrived: return early; the run saves and resumes this stage."""
    log: Callable[[dict[str, float]], None]
    """Write a metrics row (at the run's current position)."""
    save: Callable[[], None] = lambda: None
    """Checkpoint the run now (agent included): a long stage calls it now and then so that a
    run killed inside it resumes from its last checkpoint, not from the stage's start."""


class Collector:
    """Steps ``envs`` with the agent (or uniformly at random during a random prefill) and adds
    every step, with the agent's extras and its age, to ``store``."""

    def __init__(self, envs, store: ReplayBuffer, agent: Agent, rng: np.random.Generator):
        self.envs, self.store, self.agent, self.rng = envs, store, agent, rng
        n = envs.num_envs
        self.obs: dict[str, np.ndarray] | None = None
        self.state: Any = None
        self.ep_ret, self.ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)

    def reset(self, seed: int) -> None:
        self.obs = self.envs.reset(seed=seed)
        self.state = self.agent.init_state(self.envs.num_envs)
        self.ep_ret[:], self.ep_len[:] = 0.0, 0

    def step(self, env_step: int, random: bool) -> list[tuple[float, int]]:
        """One step of every env, stored at age ``env_step``; returns the (return, length) of
        the episodes that ended on it."""
        n = self.envs.num_envs
        extras: dict[str, np.ndarray] = {}
        if random:
            action = self.envs.act_space.sample(self.rng, n)
        else:
            self.state, action, extras = self.agent.act(self.state, self.obs, mode="explore")
        age = np.full(n, env_step, np.int64)
        self.store.add_batch({**self.obs, **extras, "action": action, AGE_KEY: age})
        self.obs = self.envs.step(action)
        self.ep_ret += self.obs["reward"]
        self.ep_len += ~np.asarray(self.obs["is_first"], dtype=bool)  # not the autoreset step
        ended = []
        for i in np.flatnonzero(self.obs["is_last"]):
            ended.append((float(self.ep_ret[i]), int(self.ep_len[i])))
            self.ep_ret[i], self.ep_len[i] = 0.0, 0
        return ended


class Learner:
    """Draws windows from ``store`` as the agent's traits ask and runs ``agent.update`` on them;
    an update whose metrics are not finite is counted and reported, not averaged in."""

    def __init__(self, store: ReplayBuffer, agent: Agent, batch_size: int, batch_length: int):
        self.store, self.agent = store, agent
        self.batch_size, self.batch_length = batch_size, batch_length
        self.sampling = agent.traits.sampling
        self.metrics: dict[str, list[float]] = {}
        self.nonfinite_in_a_row = 0

    def step(self) -> bool:
        """One update; False if its loss or gradient was not finite."""
        s = self.sampling  # priority_alpha 0: uniform windows
        batch = self.store.sample(
            self.batch_size, self.batch_length, s.priority_alpha, s.priority_beta
        )
        out = self.agent.update(batch)
        if not all(math.isfinite(v) for v in out.metrics.values()):
            self.nonfinite_in_a_row += 1
            return False
        self.nonfinite_in_a_row = 0
        if out.priorities is not None:
            self.store.update_priorities(batch["index"], out.priorities)
        for k, v in out.metrics.items():
            self.metrics.setdefault(k, []).append(v)
        return True

    def drain(self) -> dict[str, float]:
        """Mean of each metric since the last call."""
        row = {k: float(np.mean(v)) for k, v in self.metrics.items()}
        self.metrics.clear()
        return row


def evaluate(
    agent: Agent,
    env,
    episodes: int,
    seed: int,
    should_stop: Callable[[], bool] | None = None,
    gap_horizon: int = 0,
    gap_episodes: int = 1,
) -> dict[str, float]:
    """Run ``episodes`` greedy episodes on the ``n`` envs of ``env``, acting for all of them in
    one batch. Env ``i`` (reset with ``seed + i``) plays episodes ``i, i + n, i + 2n, ...``: each
    env's share is fixed before the first step, so short episodes are not over-counted, and the
    result does not depend on which env finishes first. Agents reset their per-env state on
    ``is_first``, as in training. ``should_stop`` is asked before every step; when it answers
    True the evaluation raises :class:`~worldmodels.core.EvalInterrupted` (a long eval, e.g.
    PlaNet's 10 episodes of CEM plans, must not outlast the few seconds a stop signal leaves to
    save).

    Model exploitation: for an :class:`~worldmodels.core.Imaginer` and ``gap_horizon > 0``, the
    first ``gap_episodes`` episodes start with ``agent.imagine_return(init_state, obs,
    gap_horizon, should_stop)`` (under a forked torch RNG, so the returns are those of an eval
    without it; ``should_stop`` is asked at every imagined step too), and their real return
    over the same first ``gap_horizon`` steps (the whole episode if shorter) is kept: the
    result adds the means ``imagined_return``, ``real_return`` and ``return_gap`` (imagined -
    real)."""
    n = env.num_envs
    if episodes < 1:
        raise UserError(f"evaluation needs at least 1 episode, got {episodes}; fix: --episodes 1")
    share = [len(range(i, episodes, n)) for i in range(n)]
    done: list[list[tuple[float, int]]] = [[] for _ in range(n)]
    gap = gap_horizon > 0 and isinstance(agent, Imaginer)
    imagined, real = {}, {}  # episode k -> imagined return; real return over gap_horizon steps
    measuring = np.full(n, -1)  # the episode whose real return env i adds up, else -1
    obs = env.reset(seed=seed)
    state = agent.init_state(n)
    ret, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    while any(len(d) < s for d, s in zip(done, share)):
        check_stop(should_stop)
        if gap:  # envs starting one of the first gap_episodes episodes
            first = np.asarray(obs["is_first"], dtype=bool)
            k = np.asarray([i + n * len(done[i]) for i in range(n)])
            rows = np.flatnonzero(first & (k < min(gap_episodes, episodes)))
            if len(rows):
                with torch.random.fork_rng():
                    sub = {key: np.asarray(v)[rows] for key, v in obs.items()}
                    init = agent.init_state(len(rows))
                    pred = agent.imagine_return(init, sub, gap_horizon, should_stop)
                for i, p in zip(rows, pred):
                    imagined[k[i]], real[k[i]], measuring[i] = float(p), 0.0, k[i]
        state, action, _ = agent.act(state, obs, mode="eval")
        obs = env.step(action)  # an env whose episode ended resets on this step (autoreset)
        ret += obs["reward"]  # 0 on a reset step
        length += ~np.asarray(obs["is_first"], dtype=bool)
        for i in np.flatnonzero(measuring >= 0):
            real[measuring[i]] += float(obs["reward"][i])
            if length[i] >= gap_horizon or obs["is_last"][i]:
                measuring[i] = -1
        for i in np.flatnonzero(obs["is_last"]):
            if len(done[i]) < share[i]:
                done[i].append((float(ret[i]), int(length[i])))
            ret[i], length[i] = 0.0, 0
    # Episode order: i, i + n, ... as assigned above
    episodes_done = [done[k % n][k // n] for k in range(episodes)]
    r = np.asarray([e[0] for e in episodes_done])
    out = {
        "return_mean": float(r.mean()),
        "return_std": float(r.std()),
        "return_min": float(r.min()),
        "return_max": float(r.max()),
        "length_mean": float(np.mean([e[1] for e in episodes_done])),
        "episodes": episodes,
    }
    if imagined:
        out["imagined_return"] = float(np.mean(list(imagined.values())))
        out["real_return"] = float(np.mean([real[k] for k in imagined]))
        out["return_gap"] = out["imagined_return"] - out["real_return"]
    return out


def gap_summary(result: dict[str, float], horizon: int) -> str:
    """:func:`evaluate`'s model-exploitation keys in words; empty without them."""
    if "return_gap" not in result:
        return ""
    return (
        f"first {horizon} steps: the model predicted {result['imagined_return']:.1f}, the env gave "
        f"{result['real_return']:.1f} (gap {result['return_gap']:+.1f})"
    )
