"""The training loop: collect with vector envs -> replay -> update at a train ratio -> eval ->
log -> checkpoint. It knows an agent only through the Agent protocol of shared/DESIGN.md."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from .. import __version__
from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import UserError
from ..logging import MetricsLogger, Progress, truncate_after
from ..replay import ReplayBuffer
from .games import board_evaluation, board_summary, plays_board
from .run import (
    RunInfo,
    build_agent,
    eval_envs,
    load_agent,
    lock_run_dir,
    make_envs,
    resolve_device,
    set_threads,
    unlock_run_dir,
)


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


def evaluate_run(
    run_dir: str | Path,
    episodes: int,
    seed: int = 12345,
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, float]]:
    """Load a run's latest checkpoint and play ``episodes`` greedy episodes on its env, with the
    run's thread count (1 is fastest at small batch): (agent, :func:`evaluate`'s result)."""
    agent = load_agent(run_dir, device=device, overrides=overrides)
    info = agent.run_info
    set_threads(info.config.run.threads)
    env = eval_envs(info, episodes)
    try:
        return agent, evaluate(agent, env, episodes, seed=seed)
    finally:
        env.close()


class EvalInterrupted(Exception):
    """An evaluation stopped part-way because ``should_stop`` said so (a signal arrived)."""


def evaluate(
    agent, env, episodes: int, seed: int, should_stop: Callable[[], bool] | None = None
) -> dict[str, float]:
    """Run ``episodes`` greedy episodes on the ``n`` envs of ``env``, acting for all of them in
    one batch. Env ``i`` (reset with ``seed + i``) plays episodes ``i, i + n, i + 2n, ...``: each
    env's share is fixed before the first step, so short episodes are not over-counted, and the
    result does not depend on which env finishes first. Agents reset their per-env state on
    ``is_first``, as in training. ``should_stop`` is asked before every step; when it answers
    True the evaluation raises :class:`EvalInterrupted` (a long eval, e.g. PlaNet's 10 episodes
    of CEM plans, must not outlast the few seconds a stop signal leaves to save)."""
    n = env.num_envs
    if episodes < 1:
        raise UserError(f"evaluation needs at least 1 episode, got {episodes}; fix: --episodes 1")
    share = [len(range(i, episodes, n)) for i in range(n)]
    done: list[list[tuple[float, int]]] = [[] for _ in range(n)]
    obs = env.reset(seed=seed)
    state = agent.init_state(n)
    ret, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    while any(len(d) < s for d, s in zip(done, share)):
        if should_stop is not None and should_stop():
            raise EvalInterrupted
        state, action, _ = agent.act(state, obs, mode="eval")
        obs = env.step(action)  # an env whose episode ended resets on this step (autoreset)
        ret += obs["reward"]  # 0 on a reset step
        length += ~np.asarray(obs["is_first"], dtype=bool)
        for i in np.flatnonzero(obs["is_last"]):
            if len(done[i]) < share[i]:
                done[i].append((float(ret[i]), int(length[i])))
            ret[i], length[i] = 0.0, 0
    # Episode order: i, i + n, ... as assigned above
    episodes_done = [done[k % n][k // n] for k in range(episodes)]
    r = np.asarray([e[0] for e in episodes_done])
    return {
        "return_mean": float(r.mean()),
        "return_std": float(r.std()),
        "return_min": float(r.min()),
        "return_max": float(r.max()),
        "length_mean": float(np.mean([e[1] for e in episodes_done])),
        "episodes": episodes,
    }


class Trainer:
    """Trains one agent in one run directory; ``resume`` continues from its latest checkpoint."""

    def __init__(self, info: RunInfo, *, resume: bool = False, progress: bool = True):
        self.info = info
        self.cfg = info.config
        run = self.cfg.run
        self.run_dir = Path(info.run_dir)
        lock_run_dir(self.run_dir)  # before anything in it is read or written
        try:
            self._setup(info, run, resume, progress)
        except BaseException:
            unlock_run_dir(self.run_dir)
            raise

    def _setup(self, info: RunInfo, run, resume: bool, progress: bool) -> None:
        set_threads(run.threads)
        self.device = resolve_device(run.device)
        torch.manual_seed(info.seed)
        self.rng = np.random.default_rng(info.seed)
        self.envs, self.eval_env = make_envs(info, run.num_envs)
        self.agent = build_agent(info, self.envs.obs_space, self.envs.act_space, self.device)
        if hasattr(self.agent, "set_symmetries"):
            self.agent.set_symmetries(self.envs.symmetries)
        self.c = Counters()
        self.replay = ReplayBuffer(
            run.replay_capacity, self.run_dir / "replay", run.replay_chunk, seed=info.seed
        )
        if resume:
            self._restore()
        self.logger = MetricsLogger(
            self.run_dir,
            tensorboard=None if run.tensorboard else False,
            time_offset=self.c.wall_time,
        )
        self.progress = Progress(run.steps, self.c.env_steps, disable=None if progress else True)
        self._stop_signal: int | None = None

    # Persistence
    def _meta(self) -> dict:
        return {
            "library": "worldmodels",
            "version": __version__,
            "agent": self.info.agent,
            "config_hash": self.info.config_hash,
        }

    def save(self) -> None:
        """Atomic checkpoint of agent, counters, RNG states and the replay's sampling position."""
        self.c.wall_time = self.logger.elapsed if hasattr(self, "logger") else self.c.wall_time
        state = {
            "agent": self.agent.state_dict(),
            "counters": {k: v for k, v in vars(self.c).items()},
            "replay": self.replay.state_dict(),
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()},
        }
        save_checkpoint(
            self.run_dir / "checkpoints", state, step=self.c.env_steps, meta=self._meta()
        )

    def _restore(self) -> None:
        from ..checkpoint import check_meta

        state, meta = load_checkpoint(self.run_dir / "checkpoints", map_location=self.device)
        check_meta(meta, version=__version__, agent=self.info.agent)
        try:
            self.agent.load_state_dict(state["agent"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise UserError(
                f"checkpoint in {self.run_dir} does not match this agent's config ({str(e)[:80]}); "
                "fix: resume with the config.json it was written with, or start a new run"
            ) from None
        counters = dict(state["counters"])
        counters["best_eval"] = float(counters.get("best_eval") or -math.inf)
        self.c = Counters(**counters)
        self.replay.load_state_dict(state["replay"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"].cpu())
        truncate_after(self.run_dir, self.c.env_steps)

    # Signals
    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    # Loop
    def train(self) -> dict[str, Any]:
        """Run until ``run.steps`` env steps; returns the final evaluation."""
        run = self.cfg.run
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._train(run)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            try:
                self.progress.close()
                self.logger.close()
                self.envs.close()
                self.eval_env.close()
            finally:
                unlock_run_dir(self.run_dir)

    def _train(self, run) -> dict[str, Any]:
        n = self.envs.num_envs
        per_update = run.batch_size * run.batch_length
        sampling = getattr(self.agent, "replay_sampling", None) or {}
        obs = self.envs.reset(seed=self.info.seed + 1000 * (self.c.episodes + 1))
        state = self.agent.init_state(n)
        ep_ret, ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)
        train_returns: list[float] = []
        agg: dict[str, list[float]] = {}
        t_last, steps_last, updates_last = time.perf_counter(), self.c.env_steps, self.c.updates
        last_save = time.perf_counter()
        final_eval: dict[str, Any] | None = None
        while self.c.env_steps < run.steps:
            if self._stop_signal is not None:
                self._save_and_exit()
            # Act; an agent may store per-step extras with the step (info["replay"], e.g. the
            # search policy of MuZero), and may collect with its own policy during prefill.
            extra: dict[str, Any] = {}
            if self.c.env_steps < run.prefill and not getattr(
                self.agent, "prefill_with_policy", False
            ):
                action = self.envs.act_space.sample(self.rng, n)
            else:
                state, action, info = self.agent.act(state, obs, mode="explore")
                extra = info.get("replay", {})
            self.replay.add_batch({**obs, **extra, "action": action})
            obs = self.envs.step(action)
            self.c.env_steps += n
            ep_ret += obs["reward"]
            ep_len += ~np.asarray(obs["is_first"], dtype=bool)  # not the autoreset step
            for i in np.flatnonzero(obs["is_last"]):
                train_returns.append(float(ep_ret[i]))
                self.logger.write(
                    self.c.env_steps, {"train/return": ep_ret[i], "train/length": ep_len[i]}
                )
                ep_ret[i], ep_len[i] = 0.0, 0
                self.c.episodes += 1
            # Update at the train ratio
            if self.c.env_steps >= run.prefill:
                self.c.update_credit += n * run.train_ratio / per_update
                while self.c.update_credit >= 1.0:
                    # Prioritised agents name their exponents and write batch["priority"] back.
                    batch = self.replay.sample(run.batch_size, run.batch_length, **sampling)
                    metrics = self.agent.update(batch)
                    if "priority" in batch:
                        self.replay.update_priorities(batch["index"], batch["priority"])
                    for k, v in metrics.items():
                        agg.setdefault(k, []).append(v)
                    self.c.updates += 1
                    self.c.update_credit -= 1.0
            # Log
            if self.c.env_steps - self.c.last_log >= run.log_every:
                now = time.perf_counter()
                dt = max(now - t_last, 1e-9)
                fps = (self.c.env_steps - steps_last) / dt
                ups = (self.c.updates - updates_last) / dt
                row = {k: float(np.mean(v)) for k, v in agg.items()}
                row.update(
                    {
                        "env_steps_per_s": fps,
                        "updates_per_s": ups,
                        "updates": self.c.updates,
                        "episodes": self.c.episodes,
                    }
                )
                if train_returns:
                    row["train/return_mean"] = float(np.mean(train_returns))
                self.logger.write(self.c.env_steps, row)
                self.progress.update(
                    self.c.env_steps,
                    ret=row.get("train/return_mean"),
                    eval=None if self.c.best_eval == -math.inf else self.c.history[-1][1],
                    fps=fps,
                    ups=ups,
                )
                agg.clear()
                train_returns.clear()
                t_last, steps_last, updates_last = now, self.c.env_steps, self.c.updates
                self.c.last_log = self.c.env_steps
            # Evaluate and checkpoint
            if run.eval_every and self.c.env_steps - self.c.last_eval >= run.eval_every:
                final_eval = self._evaluate()
                last_save = time.perf_counter()
                target = run.stop_at_return
                if target is not None and final_eval["return_mean"] >= target:
                    self.progress.write(f"eval return reached {target}: stopping early")
                    break
            elif time.perf_counter() - last_save >= run.save_every_s:
                self.save()
                last_save = time.perf_counter()
        if final_eval is None or self.c.last_eval != self.c.env_steps:
            final_eval = self._evaluate()
        self.replay.flush()
        return final_eval

    def _save_and_exit(self) -> NoReturn:
        """A stop signal arrived: checkpoint, flush the replay and leave via KeyboardInterrupt."""
        self.progress.write(f"signal {self._stop_signal}: saving and exiting")
        self.save()
        self.replay.flush()
        raise KeyboardInterrupt

    def _evaluate(self) -> dict[str, Any]:
        """Greedy eval, logged and checkpointed. A stop signal during it abandons the eval and
        saves at once; the eval is not counted (``last_eval`` unchanged), so a resumed run starts
        by evaluating again."""
        run = self.cfg.run
        try:
            result = evaluate(
                self.agent,
                self.eval_env,
                run.eval_episodes,
                seed=self.info.seed + 10_000 + self.c.env_steps,
                should_stop=lambda: self._stop_signal is not None,
            )
        except EvalInterrupted:
            self._save_and_exit()
        self.c.last_eval = self.c.env_steps
        self.c.history.append([self.c.env_steps, result["return_mean"]])
        self.c.best_eval = max(self.c.best_eval, result["return_mean"])
        board = ""
        if run.board_eval_games > 0 and plays_board(self.agent, self.info.env):
            games = board_evaluation(
                self.agent, self.info.env, run.board_eval_games, seed=self.info.seed + 20_000
            )
            result.update(games)
            board = "; " + board_summary(games)
        self.logger.write(self.c.env_steps, {f"eval/{k}": v for k, v in result.items()})
        self.progress.write(
            f"step {self.c.env_steps}: eval return {result['return_mean']:.1f} "
            f"± {result['return_std']:.1f} over {result['episodes']} episodes{board}"
        )
        self.save()
        return result
