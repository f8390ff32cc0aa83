"""TD-MPC2 configuration (Hansen, Su & Wang, TD-MPC2: Scalable, Robust World Models for
Continuous Control, ICLR 2024): typed dataclasses, presets with provenance.

Defaults are the reference `tdmpc2/config.yaml` except the model size, which is CPU-sized (the
paper's sizes are presets: `1m`, `5m`, `19m`); docs/deviations.md lists every difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ...config import DEBUG_RUN, Preset, RunConfig
from ...models.tdmpc2 import TDMPC2ModelConfig
from ...planners.mppi import MPPIConfig

_PAPER = "Hansen, Su & Wang, TD-MPC2, ICLR 2024"


def _run() -> RunConfig:
    """One update of batch 256 x (H + 1) per env step; seeding steps max(1000, 5 * 500)."""
    return RunConfig(batch_size=256, batch_length=4, train_ratio=1024.0, prefill=2500)


@dataclass
class PlanConfig(MPPIConfig):
    """MPPI in latent space with policy-prior samples (reference `_plan`, Sec. 3.2): the
    planner's own settings (planners/mppi.py, the reference defaults) plus ``mpc``.

    ``iterations`` is raised by 2 for action spaces of 20 or more dimensions (discrete: 20 or
    more actions), once, when the agent is built (reference `TDMPC2.__init__`, "Heuristic for
    large action spaces"; `agent.plan_iterations`); the config keeps the value given, the
    planner's config (``TDMPC2Agent.plan_config``) has the one used."""

    mpc: bool = True
    """Plan with MPPI; false acts with the policy prior alone (much cheaper)."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate; the MPPIConfig fields
        "horizon": ">= 1",
        "iterations": ">= 1",
        "num_samples": ">= 1",
        "num_pi_trajs": ">= 0 and <= num_samples",
        "num_elites": ">= 1 and <= num_samples",
        "temperature": "> 0",
        "min_std": ">= 0",
        "max_std": "> 0 and >= min_std",
        "unimix": "[0, 1]",
        "warm_start_mix": "[0, 1]",
    }


@dataclass
class LossConfig:
    """Loss weights, targets and the policy objective (reference `config.yaml`, Sec. 3.3)."""

    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    termination_coef: float = 1.0
    rho: float = 0.5
    """Temporal weight rho^t of the step-t losses over the horizon."""
    tau: float = 0.01
    """EMA rate of the target Q ensemble."""
    entropy_coef: float = 1e-4
    """Entropy bonus of the policy prior."""
    entropy_action_scale: bool = True
    """Multiply the continuous policy's entropy by the action dimension (reference code since
    2024; the ICLR paper's code used the plain entropy)."""
    scale_low: float = 0.05
    scale_high: float = 0.95
    scale_rate: float = 0.01
    """Q scale in the policy loss: EMA (rate) of the batch percentile range (low, high), >= 1."""
    episodic: bool = True
    """Learn a termination head, cut TD targets at true terminals and stop planned returns where
    termination is predicted (reference `episodic`). Harmless on never-terminating envs."""
    discount: float | None = None
    """Fixed discount; None derives it from episode_length (reference heuristic)."""
    episode_length: int | None = None
    """Agent steps per episode for the discount heuristic; None = the env's time limit, read when
    the run is created (DMC: 1000 / action repeat 2 = 500; gym:Pendulum-v1: 200,
    gym:CartPole-v1: 500), or 500 where the env has none."""
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate
        "consistency_coef": ">= 0",
        "reward_coef": ">= 0",
        "value_coef": ">= 0",
        "termination_coef": ">= 0",
        "rho": "(0, 1]",
        "tau": "[0, 1]",
        "entropy_coef": ">= 0",
        "scale_low": "[0, 1]",
        "scale_high": "[0, 1] and >= scale_low",
        "scale_rate": "[0, 1]",
        "discount": "(0, 1]",
        "episode_length": ">= 1",
        "discount_denom": "> 0",
        "discount_min": "(0, 1]",
        "discount_max": "(0, 1] and >= discount_min",
    }


@dataclass
class OptimConfig:
    """Adam for the world model (encoder at lr * enc_lr_scale) and for the policy prior."""

    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    grad_clip_norm: float = 20.0
    pi_eps: float = 1e-5
    """Adam eps of the policy optimiser (the model's is PyTorch's 1e-8)."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate
        "lr": "> 0",
        "enc_lr_scale": ">= 0",
        "grad_clip_norm": "> 0",
        "pi_eps": "> 0",
    }


@dataclass
class TDMPC2Config:
    run: RunConfig = field(default_factory=_run)
    model: TDMPC2ModelConfig = field(default_factory=TDMPC2ModelConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    compile: bool = False
    """torch.compile the agent's hot inner steps (falls back to eager with a warning if the
    compiler is unavailable): the MPPI scoring rollout. Off: compiled it was
    slower on CPU (measured)."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate: models/tdmpc2.py's TDMPC2ModelConfig
        "model.latent_dim": ">= 1 and multiple of simnorm_dim",
        "model.enc_dim": ">= 1",
        "model.num_enc_layers": ">= 1",
        "model.mlp_dim": ">= 1",
        "model.num_channels": ">= 1",
        "model.num_q": ">= 1",
        "model.dropout": "[0, 1)",
        "model.simnorm_dim": ">= 1",
        "model.num_bins": ">= 2",
        "model.vmin": "any",
        "model.vmax": "> vmin",
        "model.log_std_min": "any",
        "model.log_std_max": "> log_std_min",
        "model.shift_pad": ">= 0",
    }


def _size(enc: int, mlp: int, latent: int, enc_layers: int, num_q: int = 5) -> dict:
    return {
        "model.enc_dim": enc,
        "model.mlp_dim": mlp,
        "model.latent_dim": latent,
        "model.num_enc_layers": enc_layers,
        "model.num_q": num_q,
    }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "tdmpc2",
            {},
            f"{_PAPER}; tdmpc2/config.yaml: lr 3e-4 (encoder x0.3), clip 20, batch 256, H 3, rho "
            "0.5, tau 0.01, coefficients 20/0.1/0.1 (+1 termination), 5 Qs with dropout 0.01, "
            "101 bins on [-10, 10] symlog, SimNorm 8, MPPI 512/24/64/6 iterations, temperature "
            "0.5, std [0.05, 2], entropy 1e-4, 1 update per env step, seeding max(1000, 5 x "
            "episode). Model: the CPU size (preset cpu); the paper's are 1m, 5m, 19m. "
            "docs/deviations.md lists every difference.",
        ),
        Preset(
            "cpu",
            _size(128, 96, 64, 2),
            "worldmodels: the default size, 0.22M parameters on Pendulum: latent 64, encoder "
            "128, MLPs 96, 5 Qs (docs/deviations.md, model size)",
            "size",
        ),
        Preset("1m", _size(256, 384, 128, 2, 2), f"{_PAPER}: MODEL_SIZE[1], 2 Qs", "size"),
        Preset("5m", _size(256, 512, 512, 2), f"{_PAPER}: MODEL_SIZE[5] (paper default)", "size"),
        Preset("19m", _size(1024, 1024, 768, 3), f"{_PAPER}: MODEL_SIZE[19]", "size"),
        Preset(
            "debug",
            {
                **_size(16, 32, 16, 2, 2),
                "plan.num_samples": 32,
                "plan.num_pi_trajs": 4,
                "plan.num_elites": 4,
                "plan.iterations": 2,
                **DEBUG_RUN,
                "run.batch_length": 4,
                "run.train_ratio": 16,
            },
            "worldmodels: makes any run tiny (smoke tests)",
            "debug",
        ),
    ]
}
