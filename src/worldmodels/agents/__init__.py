"""Agent registry: names on the command line -> (config class, presets, agent class)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Preset
from ..errors import UserError


@dataclass(frozen=True)
class AgentSpec:
    """How to build one agent name: its config class, presets and the presets the name implies."""

    name: str
    family: str
    description: str
    base_presets: tuple[str, ...]
    loader: Callable[[], tuple[type, dict[str, Preset], type]] | None = None
    """Agents registered from outside the package give their own (config, presets, class)."""

    def load(self) -> tuple[type, dict[str, Preset], type]:
        """Lazy import (keeps ``worldmodels list`` fast): (config class, presets, agent class)."""
        if self.loader is not None:
            return self.loader()
        if self.family == "dreamer":
            from .dreamer import PRESETS, DreamerAgent, DreamerConfig

            return DreamerConfig, PRESETS, DreamerAgent
        if self.family == "planet":
            from .planet import PRESETS, PlaNetAgent, PlaNetConfig

            return PlaNetConfig, PRESETS, PlaNetAgent
        if self.family == "tdmpc2":
            from .tdmpc2 import PRESETS, TDMPC2Agent, TDMPC2Config

            return TDMPC2Config, PRESETS, TDMPC2Agent
        if self.family == "muzero":
            from .muzero import PRESETS, MuZeroAgent, MuZeroConfig

            return MuZeroConfig, PRESETS, MuZeroAgent
        if self.family == "worldmodels":
            from .worldmodels import PRESETS, WorldModelsAgent, WorldModelsConfig

            return WorldModelsConfig, PRESETS, WorldModelsAgent
        raise AssertionError(self.family)


AGENTS: dict[str, AgentSpec] = {
    s.name: s
    for s in [
        AgentSpec(
            "worldmodels",
            "worldmodels",
            "World Models, NeurIPS 2018: VAE + MDN-RNN + a controller evolved in the dream",
            ("worldmodels",),
        ),
        AgentSpec("planet", "planet", "PlaNet, ICML 2019: RSSM + CEM planning", ("planet",)),
        AgentSpec(
            "muzero",
            "muzero",
            "MuZero, Nature 2020: learned model + batched MCTS (board games, discrete control)",
            ("muzero",),
        ),
        AgentSpec(
            "efficientzero",
            "muzero",
            "EfficientZero, NeurIPS 2021 = muzero --preset efficientzero",
            ("muzero", "efficientzero"),
        ),
        AgentSpec(
            "tdmpc2",
            "tdmpc2",
            "TD-MPC2, ICLR 2024: decoder-free latent model + MPPI with a policy prior",
            ("tdmpc2",),
        ),
        AgentSpec("dreamer", "dreamer", "Dreamer world model + actor-critic (V3 defaults)", ()),
        AgentSpec(
            "dreamerv1",
            "dreamer",
            "Dreamer V1, ICLR 2020 = dreamer --preset dreamerv1",
            ("dreamerv1",),
        ),
        AgentSpec(
            "dreamerv2",
            "dreamer",
            "DreamerV2, ICLR 2021 = dreamer --preset dreamerv2",
            ("dreamerv2",),
        ),
        AgentSpec(
            "dreamerv3",
            "dreamer",
            "DreamerV3, Nature 2025 = dreamer --preset dreamerv3",
            ("dreamerv3",),
        ),
    ]
}


def get_agent_spec(name: str) -> AgentSpec:
    """The registered agent ``name``, or a UserError naming close matches."""
    if name not in AGENTS:
        close = difflib.get_close_matches(name, list(AGENTS), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UserError(f"unknown agent '{name}'; {hint}(available: {', '.join(AGENTS)})")
    return AGENTS[name]


def build_config(
    name: str, presets: list[str] | None = None, overrides: dict[str, Any] | None = None
):
    """Resolve the config of agent ``name``: its base presets, then ``presets``, then overrides;
    then check every value's range (``config.validate``)."""
    from ..config import apply_overrides, resolve_presets, validate

    spec = get_agent_spec(name)
    cls, table, _ = spec.load()
    cfg = cls()
    names = list(spec.base_presets) + list(presets or [])
    # The observation kind selects per-domain preset values: --set/--obs, else a preset's, else
    # the default.
    obs = (overrides or {}).get("run.obs") or resolve_presets(table, names).get("run.obs")
    apply_overrides(cfg, resolve_presets(table, names, obs or cfg.run.obs))
    apply_overrides(cfg, overrides or {})
    validate(cfg)
    return cfg, names
