"""PlaNet configuration (Hafner et al., Learning Latent Dynamics for Planning from Pixels, 2019)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ...config import DEBUG_RUN, Preset, RunConfig
from ..dreamer.config import WorldModelConfig

_PLANET = "Hafner et al., Learning Latent Dynamics for Planning from Pixels, ICML 2019"


def _planet_model() -> WorldModelConfig:
    """RSSM of planet/scripts/configs.py: Gaussian 30-d state, 200 deter/hidden, min std 0.1, one
    hidden layer in the prior (models/rssm.py), 2 x 100 relu heads (networks/basic.py)."""
    return WorldModelConfig(
        latent="gaussian",
        stoch=30,
        deter=200,
        hidden=200,
        min_std=0.1,
        unimix=0.0,
        core="gru",
        norm="none",
        act="relu",
        units=200,
        enc_layers=2,
        dec_layers=2,
        head_layers=2,
        head_units=100,
        img_layers=1,
        kl="elbo",
        kl_scale=1.0,
        free_bits=3.0,
        free_per_step=True,
        vector_decoder="gauss",
        image_decoder="gauss",
        reward_head="gauss",
    )


@dataclass
class PlannerConfig:
    """CEM in latent space (PlaNet Sec. 2: H=12, I=10, J=1000, K=100) and exploration."""

    horizon: int = 12
    candidates: int = 1000
    top_k: int = 100
    iterations: int = 10
    discount: float = 0.99
    """Discount of the predicted rewards in a candidate's score (planet/control/planning.py)."""
    expl_noise: float = 0.3
    """Gaussian noise std added to the planned action while collecting."""
    warm_start: bool = True
    """Start CEM from the previous plan shifted by one step (PlaNet: False)."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate
        "horizon": ">= 1",
        "candidates": ">= 1",
        "top_k": ">= 1 and <= candidates",
        "iterations": ">= 1",
        "discount": "(0, 1]",
        "expl_noise": ">= 0",
    }


@dataclass
class LossConfig:
    reward_scale: float = 10.0
    """Weight of the reward log-likelihood (planet configs: reward_scale 10)."""
    vector_scale: float = 10.0
    """Weight of the vector-observation log-likelihood. PlaNet learns from pixels only; for
    low-dimensional observations the library weights them like the reward (docs/deviations.md:
    at weight 1 the unit-variance likelihood leaves the prior nearly blind to the action)."""
    overshooting: int = 50
    """Latent overshooting distance D (1 = off)."""
    overshooting_scale: float = 1.0
    """Weight of the overshooting KL (mean over d = 2..D)."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate
        "reward_scale": ">= 0",
        "vector_scale": ">= 0",
        "overshooting": ">= 1",
        "overshooting_scale": ">= 0",
    }


@dataclass
class PlaNetOptimConfig:
    lr: float = 1e-3
    eps: float = 1e-4
    clip: float = 1000.0

    CHECKS: ClassVar[dict[str, str]] = {"lr": "> 0", "eps": "> 0", "clip": "> 0"}


@dataclass
class PlaNetConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(gap_horizon=20))
    """``gap_horizon`` 20: each imagined step is a whole CEM plan (about 1.4 s on one CPU core at
    the default size), so 20 cost about 4 % of a default eval on Pendulum at action repeat 2
    (50 would cost about 10 %, 70 s in one call); a stop signal is answered after the plan in
    progress."""
    model: WorldModelConfig = field(default_factory=_planet_model)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: PlaNetOptimConfig = field(default_factory=PlaNetOptimConfig)
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    """Matrix products in ``bf16`` under autocast (states, losses, optimiser in float32), or all
    ``fp32``; ``auto`` = bf16 where the device does bf16 natively (CUDA; a CPU with AMX or
    AVX512-BF16), else fp32 (nn/precision.py)."""

    ABSENT_MEANS: ClassVar[dict[str, Any]] = {
        "model.free_per_step": None,
        "model.head_units": 0,
        "model.img_layers": 2,
        "planner.discount": 1.0,
        "model.image_decoder": "mse",
        "loss.vector_scale": 1.0,
    }
    """What a config.json without these keys was trained with: they were added in commits
    22c59de, f41c761, e980473 and b3aafe4, and before them PlaNet clamped free nats on the batch
    mean, had two prior layers and heads as wide as ``model.units``, summed CEM rewards
    undiscounted, scored pixels by the plain squared error and gave vector observations weight 1.
    Used by ``config.from_dict`` so those run directories still load."""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "planet",
            {},
            f"{_PLANET}; planet/scripts/configs.py: Gaussian RSSM 30/200 with one hidden layer "
            "in the prior, free nats 3 on each step's KL (training/utility.py), 2 x 100 relu "
            "heads, unit-variance Gaussian likelihoods for reward, vector and pixel "
            "observations, reward scale 10 (and vector-observation scale 10), latent overshooting "
            "D=50 (KL only, posterior stop-gradient), CEM 12/1000/100/10 on rewards discounted "
            "by 0.99, exploration noise 0.3, Adam 1e-3 eps 1e-4 clip 1000. Batch and train "
            "ratio are the library's defaults (paper: 50x50, 100 updates per 1000 steps). "
            "docs/deviations.md lists every difference.",
        ),
        Preset(
            "debug",
            {
                "model.deter": 32,
                "model.hidden": 16,
                "model.stoch": 4,
                "model.units": 16,
                "model.head_units": 16,
                "model.enc_layers": 1,
                "model.dec_layers": 1,
                "model.head_layers": 1,
                "planner.horizon": 4,
                "planner.candidates": 32,
                "planner.top_k": 4,
                "planner.iterations": 2,
                "loss.overshooting": 4,
                **DEBUG_RUN,
            },
            "worldmodels: makes any run tiny (smoke tests)",
            "debug",
        ),
    ]
}
