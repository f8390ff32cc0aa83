"""Training modes over the parts of :mod:`worldmodels.train.parts`: ``online`` (collect with
vector envs -> replay -> update at a train ratio -> eval -> log -> checkpoint) and ``offline``
(updates from a dataset; no env is built for training, the real env only evaluates). Agents are
known only through the contract of :mod:`worldmodels.core.agent`."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from .. import __version__
from ..checkpoint import load_checkpoint, save_checkpoint
from ..core import EvalInterrupted, ProgressAware, Stage
from ..errors import UserError
from ..logging import MetricsLogger, Progress, truncate_after
from ..replay import ReplayBuffer
from .games import board_evaluation, board_summary, plays_board
from .parts import (
    MAX_NONFINITE,
    Collector,
    Counters,
    Learner,
    StageContext,
    evaluate,
    gap_summary,
)
from .run import (
    RunInfo,
    build_agent,
    eval_envs,
    load_agent,
    lock_run_dir,
    make_envs,
    resolve_device,
    run_env,
    set_threads,
    unlock_run_dir,
)

__all__ = ["Counters", "EvalInterrupted", "Trainer", "evaluate", "evaluate_run"]


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
    run = info.config.run
    set_threads(run.threads)
    env = eval_envs(info, episodes)
    try:
        gap = dict(gap_horizon=run.gap_horizon, gap_episodes=run.gap_episodes)
        return agent, evaluate(agent, env, episodes, seed=seed, **gap)
    finally:
        env.close()


RunReporter = Callable[[Path, Any, ReplayBuffer, str], str | None]
"""Writes a run's report from its agent and replay in memory: (run directory, agent, replay,
what the plots show) -> None once written, else why nothing was written
(``viz.report.write_run_report``)."""


class Trainer:
    """Trains one agent in one run directory, online or (``info.dataset``) offline; ``resume``
    continues from the latest checkpoint, or starts over in place (keeping the replay) when the
    run was stopped before its first one. ``reporter`` writes the run's report every
    ``run.report_every`` steps (the CLI passes ``viz.report.write_run_report``; a run with
    ``run.report_every`` and no reporter is refused)."""

    def __init__(
        self,
        info: RunInfo,
        *,
        resume: bool = False,
        progress: bool = True,
        reporter: RunReporter | None = None,
    ):
        self.info = info
        self.cfg = info.config
        run = self.cfg.run
        self.run_dir = Path(info.run_dir)
        self.offline = info.dataset is not None
        if run.report_every and reporter is None:
            raise UserError(
                "run.report_every needs a reporter; fix: Trainer(..., reporter="
                "worldmodels.viz.report.write_run_report), or train with the CLI"
            )
        self.reporter = reporter
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
        if self.offline:
            from ..replay.dataset import open_dataset

            data = open_dataset(info.dataset)
            self.envs = None  # offline: no env is built for training
            self.eval_env = None  # built at the first evaluation, if the run has an env
            self.replay = data.replay(seed=info.seed)
            obs_space, act_space = data.obs_space, data.act_space
        else:
            self.envs, self.eval_env = make_envs(info, run.num_envs)
            self.replay = ReplayBuffer(
                run.replay_capacity, self.run_dir / "replay", run.replay_chunk, seed=info.seed
            )
            obs_space, act_space = self.envs.obs_space, self.envs.act_space
        self.agent = build_agent(info, obs_space, act_space, self.device)
        if self.agent.traits.symmetries and self.envs is not None:
            self.agent.set_symmetries(self.envs.symmetries)
        self.c = Counters()
        if resume and (self.run_dir / "checkpoints" / "latest.json").exists():
            self._restore()
        elif resume:  # stopped before its first checkpoint: start over in place
            truncate_after(self.run_dir, 0)
        self.learner = Learner(self.replay, self.agent, run.batch_size, run.batch_length)
        self.logger = MetricsLogger(
            self.run_dir,
            tensorboard=None if run.tensorboard else False,
            time_offset=self.c.wall_time,
        )
        self.progress = Progress(run.steps, self._position(), disable=None if progress else True)
        self._stop_signal: int | None = None
        self._reported: tuple[int, int] | None = None  # (position, last_eval) of the last report
        self._report_waits = False  # said why no report was written yet

    def _position(self) -> int:
        """What ``run.steps`` counts: env steps online, updates offline."""
        return self.c.updates if self.offline else self.c.env_steps

    # Persistence
    def _meta(self) -> dict:
        return {
            "library": "worldmodels",
            "version": __version__,
            "agent": self.info.agent,
            "config_hash": self.info.config_hash,
        }

    def save(self) -> None:
        """Atomic checkpoint of agent, counters, RNG states and the replay's sampling position.

        A staged run writes the replay's partial chunks first, so a process killed after this
        save finds on disk every episode its collect stage counts. Online runs do not: a flush
        ends a chunk, and chunk boundaries set at wall-clock save times would make eviction and
        prioritised sampling differ between runs of one seed; they lose at most the steps of
        the partial chunks to a kill."""
        if self.agent.traits.stages and not self.offline:
            self.replay.flush()
        self.c.wall_time = self.logger.elapsed
        state = {
            "agent": self.agent.state_dict(),
            "counters": dict(vars(self.c)),
            "replay": self.replay.state_dict(),
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()},
        }
        save_checkpoint(
            self.run_dir / "checkpoints", state, step=self._position(), meta=self._meta()
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
        truncate_after(self.run_dir, self._position())

    # Signals
    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    # Loop
    def train(self) -> dict[str, Any]:
        """Run until ``run.steps`` (env steps online, updates offline); returns the final
        evaluation (empty offline when the run has no env to evaluate in)."""
        run = self.cfg.run
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.agent.traits.stages:
                return self._train_staged(run)
            return self._train_offline(run) if self.offline else self._train_online(run)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            try:
                self.progress.close()
                self.logger.close()
                for env in (self.envs, self.eval_env):
                    if env is not None:
                        env.close()
            finally:
                unlock_run_dir(self.run_dir)

    def _learn(self) -> None:
        """One update; a non-finite one is skipped and counted, and many in a row stop the run."""
        if isinstance(self.agent, ProgressAware):
            self.agent.set_progress(self.c.env_steps)
        if self.learner.step():
            self.c.updates += 1
            return
        self.c.nonfinite += 1
        if self.learner.nonfinite_in_a_row >= MAX_NONFINITE:
            self.save()
            raise UserError(
                f"{MAX_NONFINITE} updates in a row had a non-finite loss or gradient (last at "
                f"update {self.c.updates}); the run is saved in {self.run_dir}; fix: lower the "
                "learning rates or check the observations for NaN/inf, then resume"
            )

    def _train_online(self, run) -> dict[str, Any]:
        n = self.envs.num_envs
        per_update = run.batch_size * run.batch_length
        collector = Collector(self.envs, self.replay, self.agent, self.rng)
        collector.reset(seed=self.info.seed + 1000 * (self.c.episodes + 1))
        random_prefill = self.agent.traits.prefill == "random"
        train_returns: list[float] = []
        self._mark()
        final_eval: dict[str, Any] | None = None
        while self.c.env_steps < run.steps:
            if self._stop_signal is not None:
                self._save_and_exit()
            random = random_prefill and self.c.env_steps < run.prefill
            ended = collector.step(self.c.env_steps, random)
            self.c.env_steps += n
            for ret, length in ended:
                train_returns.append(ret)
                self.logger.write(self.c.env_steps, {"train/return": ret, "train/length": length})
                self.c.episodes += 1
            # Update at the train ratio
            if self.c.env_steps >= run.prefill:
                self.c.update_credit += n * run.train_ratio / per_update
                while self.c.update_credit >= 1.0:
                    self._learn()
                    self.c.update_credit -= 1.0
            if self.c.env_steps - self.c.last_log >= run.log_every:
                extra = (
                    {"train/return_mean": float(np.mean(train_returns))} if train_returns else {}
                )
                self._log(extra)
                train_returns.clear()
            final_eval, stop = self._maybe_evaluate()
            self._maybe_report(n)
            if stop:
                break
        if final_eval is None or self.c.last_eval != self.c.env_steps:
            final_eval = self._evaluate()
        self._final_report()
        self.replay.flush()
        return final_eval

    def _train_offline(self, run) -> dict[str, Any]:
        self._mark()
        final_eval: dict[str, Any] | None = None
        while self.c.updates < run.steps:
            if self._stop_signal is not None:
                self._save_and_exit()
            self._learn()
            if self.c.updates - self.c.last_log >= run.log_every:
                self._log({})
            final_eval, stop = self._maybe_evaluate()
            self._maybe_report(1)
            if stop:
                break
        if self.info.env is None:
            self.save()
            self._final_report()
            return final_eval or {}
        if final_eval is None or self.c.last_eval != self.c.updates:
            final_eval = self._evaluate()
        self._final_report()
        return final_eval

    def _train_staged(self, run) -> dict[str, Any]:
        """The agent's stages in order (collect episodes, then its own fit stages), each resumed
        where a stop left it; then the final evaluation. Trained from a dataset, the collect
        stages are skipped."""
        stages = self.agent.traits.stages
        self._mark()
        context = StageContext(
            self.run_dir,
            self.replay,
            lambda seed: run_env(self.info, seed),
            lambda: self._stop_signal is not None,
            lambda row: self.logger.write(self._position(), row),
            self.save,
        )
        while self.c.stage < len(stages):
            stage = stages[self.c.stage]
            self.progress.write(f"stage {self.c.stage + 1}/{len(stages)}: {stage.name}")
            if stage.kind == "collect":
                if not self.offline:  # offline, the dataset stands in for the collection
                    self._collect_stage(stage)
            else:
                metrics = self.agent.run_stage(stage, context)
                if self._stop_signal is not None:
                    self._save_and_exit()
                self.logger.write(
                    self._position(), {f"{stage.name}/{k}": v for k, v in metrics.items()}
                )
            self.c.stage += 1
            self.c.stage_episodes = 0
            self.save()
        self.replay.flush()
        return self._evaluate() if self.info.env is not None else {}

    def _collect_stage(self, stage: Stage) -> None:
        """Collect ``stage.episodes`` whole episodes into the replay."""
        collector = Collector(self.envs, self.replay, self.agent, self.rng)
        collector.reset(seed=self.info.seed + 1000 * (self.c.episodes + 1))
        n = self.envs.num_envs
        while self.c.stage_episodes < stage.episodes:
            if self._stop_signal is not None:
                self._save_and_exit()
            ended = collector.step(self.c.env_steps, stage.policy == "random")
            self.c.env_steps += n
            for ret, length in ended:
                self.logger.write(self.c.env_steps, {"train/return": ret, "train/length": length})
                self.c.episodes += 1
                self.c.stage_episodes += 1
            if time.perf_counter() - self._last_save >= self.cfg.run.save_every_s:
                self.save()
                self._last_save = time.perf_counter()

    def _mark(self) -> None:
        self._t_last = self._last_save = time.perf_counter()
        self._steps_last, self._updates_last = self.c.env_steps, self.c.updates

    def _log(self, extra: dict[str, float]) -> None:
        """Write the learner's mean metrics and throughput since the last log row."""
        now = time.perf_counter()
        dt = max(now - self._t_last, 1e-9)
        fps = (self.c.env_steps - self._steps_last) / dt
        ups = (self.c.updates - self._updates_last) / dt
        row = self.learner.drain()
        row.update(
            {
                "env_steps_per_s": fps,
                "updates_per_s": ups,
                "updates": self.c.updates,
                "episodes": self.c.episodes,
                "nonfinite_updates": self.c.nonfinite,
                **extra,
            }
        )
        self.logger.write(self._position(), row)
        self.progress.update(
            self._position(),
            ret=row.get("train/return_mean"),
            eval=None if self.c.best_eval == -math.inf else self.c.history[-1][1],
            fps=fps,
            ups=ups,
        )
        self._t_last, self._steps_last, self._updates_last = now, self.c.env_steps, self.c.updates
        self.c.last_log = self._position()

    def _maybe_evaluate(self) -> tuple[dict[str, Any] | None, bool]:
        """Evaluate when due (else checkpoint when due): (the evaluation or None, stop now)."""
        run = self.cfg.run
        due = run.eval_every and self._position() - self.c.last_eval >= run.eval_every
        if due and (not self.offline or self.info.env is not None):
            result = self._evaluate()
            self._last_save = time.perf_counter()
            target = run.stop_at_return
            if target is not None and result["return_mean"] >= target:
                self.progress.write(f"eval return reached {target}: stopping early")
                return result, True
            return result, False
        if time.perf_counter() - self._last_save >= run.save_every_s:
            self.save()
            self._last_save = time.perf_counter()
        return None, False

    def _maybe_report(self, advanced: int) -> None:
        """Write the run's report when the position just crossed a multiple of
        ``run.report_every`` (it moved ``advanced`` on this step)."""
        every = self.cfg.run.report_every
        position = self._position()
        if every and position // every > (position - advanced) // every:
            self._report()

    def _final_report(self) -> None:
        """With ``run.report_every``, the report of the finished run, unless the last one was
        written at this position with the same evaluations."""
        if self.cfg.run.report_every and self._reported != (self._position(), self.c.last_eval):
            self._report()

    def _report(self) -> None:
        """``RUN/dream/`` and ``RUN/report.html`` from the agent and replay in memory (the
        reporter); until the replay holds a window that fits, nothing is written and the log
        says why, once."""
        assert self.reporter is not None
        position = self._position()
        unit = "updates" if self.offline else "env steps"
        what = f"{self.info.agent} on {self.info.env or self.info.dataset} after {position} {unit}"
        try:
            why = self.reporter(self.run_dir, self.agent, self.replay, what)
        except (UserError, OSError) as e:  # the run goes on; the next report may succeed
            self.progress.write(f"step {position}: report not written: {e}")
            return
        if why is None:
            self._reported = (position, self.c.last_eval)
        elif not self._report_waits:
            self._report_waits = True
            self.progress.write(f"step {position}: no report written yet: {why}")

    def _save_and_exit(self) -> NoReturn:
        """A stop signal arrived: checkpoint, flush the replay and leave via KeyboardInterrupt."""
        self.progress.write(f"signal {self._stop_signal}: saving and exiting")
        self.save()
        if not self.offline:
            self.replay.flush()
        raise KeyboardInterrupt

    def _evaluate(self) -> dict[str, Any]:
        """Greedy eval, logged and checkpointed. A stop signal during it abandons the eval and
        saves at once; the eval is not counted (``last_eval`` unchanged), so a resumed run starts
        by evaluating again."""
        run = self.cfg.run
        if self.eval_env is None:
            self.eval_env = eval_envs(self.info, run.eval_episodes)
        position = self._position()
        try:
            result = evaluate(
                self.agent,
                self.eval_env,
                run.eval_episodes,
                seed=self.info.seed + 10_000 + position,
                should_stop=lambda: self._stop_signal is not None,
                gap_horizon=run.gap_horizon,
                gap_episodes=run.gap_episodes,
            )
        except EvalInterrupted:
            self._save_and_exit()
        self.c.last_eval = position
        self.c.history.append([position, result["return_mean"]])
        self.c.best_eval = max(self.c.best_eval, result["return_mean"])
        board = ""
        if run.board_eval_games > 0 and plays_board(self.agent, self.info.env):
            games = board_evaluation(
                self.agent, self.info.env, run.board_eval_games, seed=self.info.seed + 20_000
            )
            result.update(games)
            board = "; " + board_summary(games)
        self.logger.write(position, {f"eval/{k}": v for k, v in result.items()})
        gap = gap_summary(result, run.gap_horizon)
        self.progress.write(
            f"step {position}: eval return {result['return_mean']:.1f} "
            f"± {result['return_std']:.1f} over {result['episodes']} episodes{board}"
            + (f"; {gap}" if gap else "")
        )
        self.save()
        return result
