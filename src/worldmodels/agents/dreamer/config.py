"""DreamerV3 configuration: typed dataclasses, presets with provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ...config import DEBUG_RUN, Preset, RunConfig


@dataclass
class WorldModelConfig:
    """RSSM, encoder, decoder and heads (DreamerV3 Nature 2025, configs.yaml agent.dyn/enc/dec).

    The axes on which Dreamer V1, V2 and V3 differ are fields here and in BehaviorConfig:
    ``latent``, ``core``, ``kl``, the head outputs; each preset sets them (docs/agents/dreamer.md).
    """

    latent: Literal["categorical", "gaussian"] = "categorical"
    """Stochastic state: ``stoch`` x ``classes`` straight-through categoricals (V2, V3; unimix
    as set) or a ``stoch``-dim diagonal Gaussian (PlaNet, V1)."""
    min_std: float = 0.1
    """Gaussian latent: std = softplus(raw) + min_std (V1: 0.1)."""
    core: Literal["blockgru", "gru"] = "blockgru"
    """Recurrent core: DreamerV3's block GRU, or the GRU on Dense([z, a]) of PlaNet/V1/V2."""
    kl: Literal["dyn_rep", "balanced", "elbo"] = "dyn_rep"
    """KL handling: V3 dyn/rep split (beta_dyn, beta_rep, per-step free bits), V2 balancing
    (kl_alpha, kl_scale, free nats on the batch mean) or the plain ELBO KL (kl_scale, free nats
    on the batch mean; V1, PlaNet)."""
    free_per_step: bool | None = None
    """Where free nats clamp the KL: each step's KL before averaging (True; PlaNet's code,
    planet/training/utility.py) or the batch mean (False); None = the ``kl`` kind's own
    placement (dyn_rep: per step, V3; balanced: batch mean, V2's free_avg; elbo: batch mean, V1)."""
    kl_alpha: float = 0.8
    """KL balancing: weight of KL(sg(post) || prior), i.e. the share that trains the prior."""
    kl_scale: float = 1.0
    """KL weight for ``kl=balanced|elbo`` (V2 Atari 0.1, V2 DMC 1.0, V1 1.0)."""

    deter: int = 512
    """GRU state size h_t."""
    hidden: int = 64
    """Width of the RSSM input embeddings and prior/posterior MLPs."""
    stoch: int = 32
    """Number of categorical latents in z_t."""
    classes: int = 4
    """Classes per categorical latent."""
    blocks: int = 8
    """Block-diagonal GRU blocks (Nature 2025); 1 is a plain GRU (2023)."""
    unimix: float = 0.01
    """Uniform mixture in every latent categorical."""
    units: int = 64
    """MLP width of encoder, decoder and heads."""
    enc_layers: int = 3
    dec_layers: int = 3
    head_layers: int = 1
    head_units: int = 0
    """MLP width of the vector decoder and the reward/continue heads; 0 = ``units``."""
    img_layers: int = 2
    """Hidden layers of the prior p(z_t | h_t) (V3 imglayers 2; PlaNet's code 1)."""
    depth: int = 16
    """CNN channel depth for image encoder/decoder."""
    norm: Literal["rms", "layer", "none"] = "rms"
    act: Literal["silu", "elu", "relu", "tanh"] = "silu"
    bins: int = 255
    """Two-hot bins for reward and value (symexp spaced over [-20, 20])."""
    free_bits: float = 1.0
    """Free bits / free nats: KL terms below this many nats give no gradient (V3 1, V1 3)."""
    beta_pred: float = 1.0
    beta_dyn: float = 1.0
    """Nature 2025: 1.0; arXiv 2023: 0.5."""
    beta_rep: float = 0.1
    vector_decoder: Literal["symlog_mse", "mse", "gauss"] = "symlog_mse"
    image_decoder: Literal["mse", "gauss"] = "mse"
    """Pixel likelihood: ``mse`` the squared error summed over pixels (DreamerV3's image loss),
    ``gauss`` a unit-variance Gaussian, i.e. 0.5 x that sum (PlaNet's ``Normal(mean, 1)``)."""
    reward_head: Literal["symexp_twohot", "symlog_mse", "mse", "gauss"] = "symexp_twohot"

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate; enc/dec/head layers 0 = linear
        "min_std": ">= 0",
        "kl_alpha": "[0, 1]",
        "kl_scale": ">= 0",
        "deter": ">= 1",
        "hidden": ">= 1",
        "stoch": ">= 1",
        "classes": ">= 1",
        "blocks": ">= 1",
        "unimix": "[0, 1]",
        "units": ">= 1",
        "enc_layers": ">= 0",
        "dec_layers": ">= 0",
        "head_layers": ">= 0",
        "head_units": ">= 0",
        "img_layers": ">= 1",
        "depth": ">= 1",
        "bins": ">= 2",
        "free_bits": ">= 0",
        "beta_pred": ">= 0",
        "beta_dyn": ">= 0",
        "beta_rep": ">= 0",
    }


@dataclass
class BehaviorConfig:
    """Actor-critic learned in imagination."""

    horizon: int = 15
    """Imagination horizon H."""
    gamma: float = 0.997
    """Discount (1 - 1/333)."""
    lam: float = 0.95
    units: int = 64
    layers: int = 3
    actor_grad: Literal["auto", "reinforce", "dynamics", "mix"] = "auto"
    """Actor gradient: REINFORCE, dynamics backprop through the imagined rollout (straight-through
    for discrete actions), ``mix`` = actor_grad_mix * dynamics + (1 - actor_grad_mix) * REINFORCE
    (DreamerV2 ``actor_grad: both``), or auto = REINFORCE for discrete, actor_grad_cont for
    continuous."""
    actor_grad_mix: float = 0.1
    """Weight of the dynamics objective under ``actor_grad=mix`` (dreamerv2/agent.py: ``mix *
    target + (1 - mix) * reinforce``, configs.yaml 0.1); the paper's rho is 1 - actor_grad_mix."""
    dynamics_baseline: bool = True
    """Dynamics gradients maximise the normalised return minus the normalised critic v(s_t),
    which keeps its gradient through s_t (DreamerV3 2023 reference, ``adv = normed_ret -
    normed_base``); False maximises the returns alone (V1, V2)."""
    actor_grad_cont: Literal["reinforce", "dynamics"] = "reinforce"
    """Gradient for continuous actions when actor_grad=auto: reinforce (Nature 2025, the default)
    or dynamics (backprop through the imagined rollout, the 2023 reference). On Pendulum at 30k
    steps the two scored the same (3 seeds each, docs/results.md)."""
    entropy: float = 3e-4
    """Actor entropy scale eta."""
    entropy_cont: float | None = None
    """Entropy scale for continuous actions when it differs by domain (V2: 1e-3 Atari,
    1e-4 continuous control); None = ``entropy``."""
    actor_dist_cont: Literal["bounded_normal", "tanh_normal"] = "bounded_normal"
    """Continuous actor: V3's normal with tanh mean and bounded std, or V1's tanh-Gaussian."""
    expl_noise: float = 0.0
    """Gaussian noise std added to continuous actions when exploring (V1: 0.3)."""
    critic_head: Literal["symexp_twohot", "symlog_mse", "mse"] = "symexp_twohot"
    """Critic output: V3 two-hot on symexp bins, or a (symlog) MSE regression (V1, V2)."""
    retnorm: Literal["percentile", "none"] = "percentile"
    """Return normalisation of the actor objective: V3 percentile range, or none (V1, V2)."""
    critic_target: Literal["ema", "hard", "online"] = "ema"
    """Slow critic: EMA (V3, slow_critic_rate), hard copy every slow_critic_every updates (V2),
    or none (online; V1)."""
    slow_critic_every: int = 100
    slow_target: bool = False
    """Compute lambda-returns (and the REINFORCE baseline) with the slow critic (V2) instead of
    the online one (V3, whose slow critic only regularises)."""
    unimix: float = 0.01
    """Uniform mixture of the discrete actor."""
    min_std: float = 0.1
    max_std: float = 1.0
    slow_critic_rate: float = 0.02
    """EMA rate of the slow critic (decay 0.98)."""
    slow_reg: float = 1.0
    """Weight of the critic's regulariser towards the slow critic."""
    repval: float = 0.3
    """Weight of the replayed value loss (Nature 2025 ``repval``): the critic also regresses
    lambda-returns over replayed rewards bootstrapped with the imagined returns; 0 = off
    (2023 paper, V1, V2)."""
    retnorm_decay: float = 0.99
    retnorm_low: float = 0.05
    retnorm_high: float = 0.95
    retnorm_limit: float = 1.0
    retnorm_debias: bool = False
    """Debias the percentile EMAs (divide by 1 - decay^n); the reference does not (``retnorm:
    {debias: False}``), so the return scale starts at ``retnorm_limit`` and grows."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate; layers 0 = linear heads
        "horizon": ">= 1",
        "gamma": "(0, 1]",
        "lam": "[0, 1]",
        "units": ">= 1",
        "layers": ">= 0",
        "actor_grad_mix": "[0, 1]",
        "entropy": ">= 0",
        "entropy_cont": ">= 0",
        "expl_noise": ">= 0",
        "slow_critic_every": ">= 1",
        "unimix": "[0, 1]",
        "min_std": ">= 0",
        "max_std": "> 0 and >= min_std",
        "slow_critic_rate": "[0, 1]",
        "slow_reg": ">= 0",
        "repval": ">= 0",
        "retnorm_decay": "[0, 1]",
        "retnorm_low": "[0, 1]",
        "retnorm_high": "[0, 1] and >= retnorm_low",
        "retnorm_limit": "> 0",
    }


@dataclass
class OptimConfig:
    """Optimisers: Adam with gradient-norm clipping (2023 paper, Table W.1). The default learning
    rates are above the paper's (1e-4 / 3e-5): model and critic 10x, actor ~3x, for the small
    default model on small budgets (~1.9k updates in 30k steps): with the
    paper's rates CartPole had not started learning after 5k steps (docs/deviations.md); the
    ``dreamerv3_2023`` preset restores them."""

    optimizer: Literal["adam", "laprop"] = "adam"
    """``adam``: one Adam per module with the rates below and global-norm clipping (2023);
    ``laprop``: Nature 2025's LaProp after adaptive gradient clipping, one rate ``lr`` for
    world model, actor and critic, linear warmup (nn/optim.py)."""
    model_lr: float = 1e-3
    actor_lr: float = 1e-4
    """3e-4 (10x the paper's, like the others) solved CartPole and Pendulum and then collapsed
    and relearned on one seed in three; at 1e-4 those seeds held (docs/deviations.md)."""
    critic_lr: float = 3e-4
    lr: float = 4e-5
    """LaProp learning rate (Nature 2025: 4e-5 for every module)."""
    agc: float = 0.3
    """LaProp: adaptive gradient clipping ratio per parameter tensor (Nature: 0.3)."""
    laprop_eps: float = 1e-20
    warmup: int = 1000
    """LaProp: updates of linear learning-rate warmup from 0 (Nature: 1000)."""
    model_eps: float = 1e-8
    ac_eps: float = 1e-5
    model_clip: float = 1000.0
    ac_clip: float = 100.0

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate
        "model_lr": "> 0",
        "actor_lr": "> 0",
        "critic_lr": "> 0",
        "lr": "> 0",
        "agc": "> 0",
        "laprop_eps": "> 0",
        "warmup": ">= 0",
        "model_eps": "> 0",
        "ac_eps": "> 0",
        "model_clip": "> 0",
        "ac_clip": "> 0",
    }


@dataclass
class DreamerConfig:
    """Full DreamerV3 configuration: ``run`` (loop), ``model``, ``behavior``, ``optim``."""

    run: RunConfig = field(default_factory=lambda: RunConfig(threads=0))
    """Threads 0 (all cores): 1.74x faster than 1 thread for one run alone at the default size
    (docs/results.md, speed table); the debug preset sets 1."""
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Matrix products in ``bf16`` under autocast (states, losses, optimiser in float32), or all
    ``fp32``; ``auto`` = bf16 where the device does bf16 natively (CUDA; a CPU with AMX or
    AVX512-BF16), else fp32 (nn/precision.py). The references' compute dtype is 16-bit too
    (DreamerV3 ``compute_dtype: bfloat16``). 2.2x on a DreamerV1 update on an AMX CPU, 1.37x on
    DreamerV3's at 2 threads on an AVX512-BF16 CPU, with CartPole and Pendulum targets kept
    (docs/results.md)."""
    compile: bool = True
    """torch.compile the agent's hot inner steps (falls back to eager with a warning if the
    compiler is unavailable); 1.6x on DreamerV3's imagination step on CPU."""


def _size(deter: int, hidden: int, classes: int, depth: int, units: int) -> dict:
    return {
        "model.deter": deter,
        "model.hidden": hidden,
        "model.classes": classes,
        "model.depth": depth,
        "model.units": units,
        "behavior.units": units,
    }


_V1 = "Hafner et al., Dream to Control: Learning Behaviors by Latent Imagination, ICLR 2020"
_V2 = "Hafner et al., Mastering Atari with Discrete World Models, ICLR 2021"
_NATURE = "Hafner et al., Mastering diverse control tasks through world models, Nature 2025"
_ARXIV = "Hafner et al., Mastering Diverse Domains through World Models, arXiv:2301.04104v1 (2023)"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "dreamerv3",
            {},
            f"{_NATURE}; dreamerv3/configs.yaml defaults (beta_dyn=1, beta_rep=0.1, free bits 1, "
            "block GRU, RMSNorm, H=15, gamma=1-1/333, lambda=0.95, entropy 3e-4) with the "
            "size1m model (the reference's size for proprioceptive control), train ratio 64 "
            "(reference defaults: 32 generic .. 1024 proprio DMC). Optimiser: Adam as in the 2023 "
            "paper at 10x its learning rates (actor 3x), not LaProp+AGC; REINFORCE for "
            "continuous actions as in Nature (actor_grad_cont=dynamics gives the 2023 "
            "reference's backprop); see docs/deviations.md.",
        ),
        Preset(
            "dreamerv3_2023",
            {
                "model.beta_dyn": 0.5,
                "behavior.repval": 0.0,
                "model.blocks": 1,
                "model.norm": "layer",
                "optim.model_lr": 1e-4,
                "optim.actor_lr": 3e-5,
                "optim.critic_lr": 3e-5,
                "behavior.actor_grad_cont": "dynamics",
            },
            f"{_ARXIV}: beta_dyn=0.5, plain GRU, LayerNorm, Adam at the paper's rates (Table W.1: "
            "model 1e-4, actor and critic 3e-5); dynamics backprop for continuous actions "
            "(actor_grad_cont=backprop in the 2023 reference config).",
        ),
        Preset(
            "dreamerv1",
            {
                "model.latent": "gaussian",
                "model.stoch": 30,
                "model.deter": 200,
                "model.hidden": 200,
                "model.min_std": 0.1,
                "model.unimix": 0.0,
                "model.core": "gru",
                "model.norm": "none",
                "model.act": "elu",
                "model.units": 400,
                "model.enc_layers": 2,
                "model.dec_layers": 2,
                "model.head_layers": 2,
                "model.kl": "elbo",
                "model.kl_scale": 1.0,
                "model.free_bits": 3.0,
                "model.vector_decoder": "mse",
                "model.reward_head": "mse",
                "behavior.gamma": 0.99,
                "behavior.lam": 0.95,
                "behavior.horizon": 15,
                "behavior.units": 400,
                "behavior.layers": 3,
                "behavior.actor_grad": "dynamics",
                "behavior.dynamics_baseline": False,
                "behavior.actor_dist_cont": "tanh_normal",
                "behavior.unimix": 0.0,
                "behavior.entropy": 0.0,
                "behavior.expl_noise": 0.3,
                "behavior.critic_head": "mse",
                "behavior.retnorm": "none",
                "behavior.critic_target": "online",
                "behavior.slow_reg": 0.0,
                "behavior.repval": 0.0,
                "optim.model_lr": 6e-4,
                "optim.actor_lr": 8e-5,
                "optim.critic_lr": 8e-5,
                "optim.model_eps": 1e-4,
                "optim.ac_eps": 1e-4,
                "optim.model_clip": 100.0,
                "optim.ac_clip": 100.0,
                "precision": "auto",
            },
            f"{_V1}; dreamer/dreamer.py define_config: Gaussian 30-d stoch, deter 200, "
            "hidden 200, units 400, ELU, free nats 3, H=15, gamma 0.99, lambda 0.95, analytic "
            "(dynamics) gradients, tanh-Gaussian actor (init std 5), exploration noise 0.3, "
            "online value, Adam 6e-4/8e-5/8e-5 clip 100, mixed precision (precision 16; here bf16 "
            "where the device has it). Batch and train ratio stay the library's "
            "CPU defaults (paper: 50x50, 100 updates per 1000 steps); docs/deviations.md.",
        ),
        Preset(
            "dreamerv2",
            {
                "model.latent": "categorical",
                "model.stoch": 32,
                "model.classes": 32,
                "model.unimix": 0.0,
                "model.deter": 600,
                "model.hidden": 600,
                "model.core": "gru",
                "model.norm": "layer",
                "model.act": "elu",
                "model.units": 400,
                "model.enc_layers": 4,
                "model.dec_layers": 4,
                "model.head_layers": 4,
                "model.kl": "balanced",
                "model.kl_alpha": 0.8,
                "model.kl_scale": 0.1,
                "model.free_bits": 0.0,
                "model.vector_decoder": "mse",
                "model.reward_head": "mse",
                "behavior.gamma": 0.999,
                "behavior.lam": 0.95,
                "behavior.horizon": 15,
                "behavior.units": 400,
                "behavior.layers": 4,
                "behavior.actor_grad": "auto",
                "behavior.actor_grad_cont": "dynamics",
                "behavior.actor_grad_mix": 0.1,
                "behavior.dynamics_baseline": False,
                "behavior.unimix": 0.0,
                "behavior.entropy": 1e-3,
                "behavior.entropy_cont": 1e-4,
                "behavior.critic_head": "mse",
                "behavior.retnorm": "none",
                "behavior.critic_target": "hard",
                "behavior.slow_critic_every": 100,
                "behavior.slow_target": True,
                "behavior.slow_reg": 0.0,
                "behavior.repval": 0.0,
                "optim.model_lr": 2e-4,
                "optim.actor_lr": 4e-5,
                "optim.critic_lr": 1e-4,
                "optim.model_eps": 1e-5,
                "optim.ac_eps": 1e-5,
                "optim.model_clip": 100.0,
                "optim.ac_clip": 100.0,
                "precision": "auto",
            },
            f"{_V2}; dreamerv2/configs.yaml (atari): 32x32 straight-through categoricals, deter "
            "600, units 400, ELU, LayerNorm GRU, KL balancing alpha 0.8 with scale 0.1 and free "
            "avg 0, REINFORCE for discrete / dynamics for continuous actions, entropy 1e-3 "
            "(discrete) and 1e-4 (continuous, the dmc config), gamma 0.999, lambda 0.95, target "
            "critic copied every 100 updates and used for the returns, Adam 2e-4/4e-5/1e-4 eps "
            "1e-5 clip 100, mixed precision (precision: 16; here bf16 where the device has it). "
            "Vector observations take the reference's dmc_proprio values: deter and hidden 200, "
            "Adam 3e-4/8e-5/8e-5, gamma 0.99, KL scale 1 with 1 free nat; docs/deviations.md.",
            by_obs={
                "vector": {
                    "model.deter": 200,
                    "model.hidden": 200,
                    "model.kl_scale": 1.0,
                    "model.free_bits": 1.0,
                    "behavior.gamma": 0.99,
                    "optim.model_lr": 3e-4,
                    "optim.actor_lr": 8e-5,
                    "optim.critic_lr": 8e-5,
                }
            },
        ),
        Preset("size1m", _size(512, 64, 4, 4, 64), f"{_NATURE}: configs.yaml size1m", "size"),
        Preset("size12m", _size(2048, 256, 16, 16, 256), f"{_NATURE}: size12m", "size"),
        Preset("size25m", _size(3072, 384, 24, 24, 384), f"{_NATURE}: size25m", "size"),
        Preset("size50m", _size(4096, 512, 32, 32, 512), f"{_NATURE}: size50m", "size"),
        Preset("size100m", _size(6144, 768, 48, 48, 768), f"{_NATURE}: size100m", "size"),
        Preset("size200m", _size(8192, 1024, 64, 64, 1024), f"{_NATURE}: size200m", "size"),
        Preset("size400m", _size(12288, 1536, 96, 96, 1536), f"{_NATURE}: size400m", "size"),
        Preset(
            "cpu",
            {**_size(256, 64, 4, 8, 64), "model.blocks": 4},
            "worldmodels: a model sized for 2 CPU cores (deter 256 in 4 blocks)",
            "size",
        ),
        Preset(
            "debug",
            {
                **_size(32, 16, 4, 2, 16),
                "model.blocks": 2,
                "model.stoch": 4,
                "model.bins": 31,
                "model.enc_layers": 1,
                "model.dec_layers": 1,
                "behavior.layers": 1,
                **DEBUG_RUN,
                "compile": False,
            },
            "worldmodels: makes any run tiny (smoke tests)",
            "debug",
        ),
    ]
}
