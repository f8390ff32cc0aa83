"""The agent contract: every registered agent implements :class:`Agent`; ``train/`` and the CLI
talk to agents only through it (docs/design.md).

An agent *declares* what the loop must do for it in :class:`Traits` (how prefill is collected,
how replay is sampled, whether it honours legal-action masks, which stages it trains in)
instead of the loop probing it for attributes. ``act`` and ``update`` return typed results and
never write into their inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

Mode = Literal["explore", "eval"]


@dataclass(frozen=True)
class Sampling:
    """How the learner draws replay windows: uniform (``priority_alpha == 0``) or prioritised
    (Schaul et al. 2016: P(i) ∝ p_i^alpha, importance weights with exponent beta)."""

    priority_alpha: float = 0.0
    priority_beta: float = 0.0

    @property
    def prioritized(self) -> bool:
        return self.priority_alpha > 0.0


@dataclass(frozen=True)
class Stage:
    """One stage of a staged agent: ``collect`` (``episodes`` episodes with ``policy``) or
    ``fit`` (the agent's own :meth:`AgentBase.run_stage` for ``name``)."""

    name: str
    kind: Literal["collect", "fit"]
    episodes: int = 0
    policy: Literal["random", "agent"] = "random"


@dataclass(frozen=True)
class Traits:
    """What an agent declares to the training modes (read off the agent, never probed)."""

    prefill: Literal["random", "policy"] = "random"
    """``random``: the first ``run.prefill`` steps act uniformly at random; ``policy``: the agent
    acts from the first step (MuZero's search)."""
    sampling: Sampling = field(default_factory=Sampling)
    legal_actions: bool = False
    """Never plays an illegal move where the observation has a ``legal`` mask (board matches)."""
    symmetries: bool = False
    """Wants the env's symmetries (:meth:`AgentBase.set_symmetries` is called with them)."""
    stages: tuple[Stage, ...] = ()
    """Empty: the agent trains online (or offline) in the one loop; else the staged mode runs
    these in order."""


class Step(NamedTuple):
    """What :meth:`Agent.act` returns for ``N`` envs."""

    state: Any
    """The agent's recurrent state after this step (pass it to the next ``act``)."""
    action: np.ndarray
    """``[N]`` int64 (discrete) or ``[N, A]`` float32 actions."""
    extras: dict[str, np.ndarray]
    """Per-env arrays ``[N, ...]`` stored in replay with the step (e.g. MuZero's search policy)."""


@dataclass
class Update:
    """What :meth:`Agent.update` returns."""

    metrics: dict[str, float]
    """Scalars by name (``loss/...``, ``grad/...``); logged as they are."""
    priorities: np.ndarray | None = None
    """``[B]`` new priorities of the sampled windows (prioritised sampling only)."""


@runtime_checkable
class Agent(Protocol):
    """The contract of every agent (see :class:`AgentBase` for the defaults)."""

    traits: Traits

    @classmethod
    def prepare(cls, config: Any, env: Any) -> None:
        """Before a run is created: refuse (``UserError``) an env this config cannot use, and set
        the config values read off the env (recorded in config.json)."""

    def init_state(self, n: int) -> Any:
        """The recurrent state for ``n`` envs at their first step."""

    def act(self, state: Any, obs: dict[str, np.ndarray], mode: Mode) -> Step:
        """One action per env from observations ``{key: [N, ...]}``; ``eval`` is greedy."""

    def update(self, batch: dict[str, np.ndarray]) -> Update:
        """One learning step on replay windows ``{key: [B, T, ...]}``; ``batch`` is not changed."""

    def state_dict(self) -> dict:
        """Everything a resume needs (weights, optimisers, normalisers, counters)."""

    def load_state_dict(self, d: dict) -> None:
        """Restore :meth:`state_dict`'s output."""


@runtime_checkable
class Reporter(Protocol):
    """Optional: agents show their open-loop predictions (``worldmodels dream``)."""

    def report(self, batch: dict[str, np.ndarray], context: int = 5) -> dict[str, np.ndarray]:
        """Observe ``context`` steps of each window, then imagine the rest under the recorded
        actions. Agents with a decoder: ``{"<kind>/real", "<kind>/model", "<kind>/error"}``
        arrays ``[B, T, ...]`` for kind ``vector`` (float32) and ``image`` (uint8
        ``[B, T, H, W, C]``). Decoder-free agents: ``{"latent/distance"}`` ``[B, T]``, a probe
        of the latent dynamics (``core.probe.latent_distance``), zero over the context."""


@runtime_checkable
class ProgressAware(Protocol):
    """Optional: agents whose update depends on how far the run is (EfficientZero's off-policy
    correction ages replayed data by the env steps since it was stored)."""

    def set_progress(self, env_steps: int) -> None:
        """Called before every update with the env steps the run has taken so far (all envs
        together, the clock of the replay's ``env_step`` key)."""


@runtime_checkable
class Imaginer(Protocol):
    """Optional: agents that imagine or plan with a model predict the return of their own
    greedy behaviour (the eval's ``imagined_return`` next to ``real_return``)."""

    def imagine_return(
        self,
        state: Any,
        obs: dict[str, np.ndarray],
        horizon: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """From the observations ``{key: [N, ...]}`` (and ``state`` as ``act`` takes it), act
        as ``act(mode="eval")`` would for ``horizon`` steps inside the model only: ``[N]`` sums
        of the predicted rewards, undiscounted, each weighted by the predicted probability that
        the episode has not ended before it (where the model predicts termination).
        ``should_stop`` is asked before every imagined step (:func:`check_stop`): when it
        answers True, raise :class:`EvalInterrupted` (a horizon of plans can take half a
        minute, longer than a stop signal leaves to save)."""


@runtime_checkable
class Playable(Protocol):
    """Optional: agents whose model a person can play as a game (``worldmodels play-dream``).
    A *latent* is whatever the agent's model carries from one imagined step to the next, for
    one env; the caller only passes it back. The methods compute no gradients."""

    def dream_start(self, obs: dict[str, np.ndarray]) -> Any:
        """The latent of a dream that starts at one env's first observation ``{key: [...]}``
        (unbatched, as ``Env.reset`` returns it)."""

    def dream_step(self, latent: Any, action: Any) -> Any:
        """The latent one imagined step later under ``action`` (env format: an ``int`` index or
        a float32 ``[A]`` vector); the model alone, no observation."""

    def dream_view(self, latent: Any) -> tuple[np.ndarray, float, float]:
        """What a latent shows: the model's image of it (uint8 ``[H, W, C]``), and the reward
        and the probability that the episode goes on that the model predicts with it."""

    def dream_action(self, latent: Any) -> Any:
        """The agent's own greedy action on a latent, in env format (as ``act(mode="eval")``
        would choose inside the model)."""


class EvalInterrupted(Exception):
    """An evaluation, or an imagined return inside it, stopped part-way because its
    ``should_stop`` said so (a stop signal arrived)."""


def check_stop(should_stop: Callable[[], bool] | None) -> None:
    """Raise :class:`EvalInterrupted` when ``should_stop`` is given and answers True."""
    if should_stop is not None and should_stop():
        raise EvalInterrupted


class AgentBase:
    """Defaults of the contract; agents subclass it and override what they need."""

    name: ClassVar[str] = "agent"
    traits: Traits = Traits()

    @classmethod
    def prepare(cls, config: Any, env: Any) -> None:
        """No env requirements and nothing to adapt."""

    def set_symmetries(self, symmetries: Any) -> None:
        """Called with the env's symmetries when ``traits.symmetries`` is declared."""
        raise NotImplementedError(f"{self.name} declares traits.symmetries but cannot use them")

    def run_stage(self, stage: Stage, context: Any) -> dict[str, float]:
        """Run a ``fit`` stage of ``traits.stages``; returns its metrics."""
        raise NotImplementedError(f"{self.name} declares no stage {stage.name!r}")
