"""MuZero configuration (Schrittwieser et al., Mastering Atari, Go, chess and shogi by planning
with a learned model, Nature 2020). MuZero and EfficientZero are one agent: the EfficientZero
additions are fields here (``value_prefix``, ``consistency``, ``off_policy_correction``), off in
every MuZero preset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ...config import DEBUG_RUN, Preset, RunConfig

_MUZERO = "Schrittwieser et al., Nature 2020 (Appendix F/G and the pseudocode)"
_EZ = "Ye et al., NeurIPS 2021 (EfficientZero, YeWR/EfficientZero's Atari config)"


@dataclass
class MuZeroModelConfig:
    """Representation, dynamics and prediction networks (models/muzero.py)."""

    network: Literal["auto", "mlp", "resnet"] = "auto"
    """auto: residual tower for image observations, MLPs for vectors."""
    latent: int = 64
    """MLP body: size of the hidden state s^k."""
    units: int = 64
    """Width of the MLPs (bodies and heads)."""
    layers: int = 2
    """Layers of the representation and dynamics MLPs."""
    head_layers: int = 1
    """Hidden layers of the reward, value and policy heads."""
    channels: int = 32
    """Residual body: planes of the hidden state (paper: 256)."""
    blocks: int = 2
    """Residual body: blocks per function (paper: 16)."""
    reduced_channels: int = 8
    """Residual body: planes of the 1x1 convs feeding the heads."""
    downsample: bool = True
    """Residual body: the paper's Atari stem (64 x 64 -> 4 x 4)."""
    norm: Literal["layer", "rms", "none"] = "layer"
    act: Literal["relu", "silu", "elu", "tanh"] = "relu"
    support_size: int = 300
    """S: reward and value are categorical over the integers -S..S of h(x) (paper: 601 points)."""
    scalar_loss: Literal["auto", "categorical", "mse"] = "auto"
    """Value and reward heads: categorical on the h(x) support with cross-entropy (paper: Atari)
    or one scalar each with squared error (pseudocode: "MSE in board games"); auto = mse in
    two-player board games, categorical otherwise."""
    h_eps: float = 0.001
    """eps of h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x."""
    value_prefix: bool = False
    """EfficientZero: the reward head predicts the value prefix, the undiscounted sum of the
    rewards since the last reset, from an LSTM over the unrolled states' reward features; the
    search takes each edge's reward as the difference of consecutive prefixes."""
    lstm_hidden: int = 512
    """Value prefix: LSTM width (EfficientZero Atari: 512)."""
    lstm_horizon_len: int = 5
    """Value prefix: the LSTM state is reset to zero at every depth that is a multiple of this,
    in training and in search alike (EfficientZero Atari: 5)."""
    projection: tuple[int, int, int, int] = (1024, 1024, 512, 1024)
    """Consistency: proj_hid, proj_out, pred_hid, pred_out of the SimSiam projector and
    prediction head (EfficientZero Atari: 1024, 1024, 512, 1024); pred_out = proj_out."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate; head_layers and blocks 0 = none
        "latent": ">= 1",
        "units": ">= 1",
        "layers": ">= 1",
        "head_layers": ">= 0",
        "channels": ">= 1",
        "blocks": ">= 0",
        "reduced_channels": ">= 1",
        "support_size": ">= 1",
        "h_eps": ">= 0",
        "lstm_hidden": ">= 1",
        "lstm_horizon_len": ">= 1",
        "projection": ">= 1",
    }


@dataclass
class MuZeroSearchConfig:
    """MCTS at acting time (planners/mcts.py); names follow the paper's pseudocode."""

    kind: Literal["muzero", "gumbel"] = "muzero"
    """pUCT search with visit-count policy targets, or Gumbel MuZero (Danihelka et al. 2022)."""
    num_simulations: int = 25
    """Simulations per move (paper: 50 Atari, 800 board games)."""
    eval_simulations: int = 0
    """Simulations for evaluation moves; 0 = num_simulations."""
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    unvisited_value: Literal["zero", "parent"] = "zero"
    """pUCT value of an unvisited child: 0 (pseudocode) or the parent's value (mctx,
    EfficientZero), which lets a low-prior move be tried in a small search."""
    root_dirichlet_alpha: float = 0.25
    root_exploration_fraction: float = 0.25
    max_num_considered_actions: int = 16
    """Gumbel only: actions sampled at the root."""
    temperature_steps: tuple[float, ...] = (500e3, 750e3)
    """Update counts at which the visit temperature drops to the next value of ``temperatures``."""
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.25)
    """Visit-count temperatures while collecting (paper Atari schedule); eval uses 0 (argmax)."""
    temperature_moves: int = 0
    """Board games (the pseudocode's ``make_board_game_config``: 30 moves): the first N moves of
    each game use the temperature above, later moves play the most visited action
    (temperature 0); 0 = off, every move uses the schedule (Atari). pUCT search only."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate; tuples: each element
        "num_simulations": ">= 1",
        "eval_simulations": ">= 0",
        "pb_c_init": ">= 0",
        "pb_c_base": "> 0",
        "root_dirichlet_alpha": "> 0",
        "root_exploration_fraction": "[0, 1]",
        "max_num_considered_actions": ">= 1",
        "temperature_steps": ">= 0",
        "temperatures": ">= 0",
        "temperature_moves": ">= 0",
    }


@dataclass
class MuZeroTrainConfig:
    """Unroll, targets, replay priorities and reanalyse."""

    num_unroll_steps: int = 5
    """K: dynamics steps unrolled per sample (paper: 5). run.batch_length should be
    K + 1 + td_steps so that every unrolled step has its full n-step target."""
    td_steps: int = 10
    """n of the n-step value target (paper Atari: 10); bootstraps never reach past the window."""
    discount: float | None = None
    """gamma; None = 1.0 in two-player games, 0.997 otherwise (paper)."""
    two_player: Literal["auto", "yes", "no"] = "auto"
    """Alternating zero-sum game: auto = the env has a ``to_play`` observation (board self-play)."""
    value_loss_weight: float = 1.0
    """Weight of the value loss (paper pseudocode: 1; the paper's Reanalyze runs use 0.25)."""
    loss_scale: Literal["pseudocode", "uniform"] = "pseudocode"
    """Scale of each unrolled step's losses: 1 at k = 0 and 1/K at k = 1..K (the pseudocode's
    ``gradient_scale``), or 1/K at every step including k = 0 (EfficientZero, a hook on the
    whole loss). Only the relative weight of step 0 and, with SGD, the step size differ."""
    dynamics_gradient_scale: float = 0.5
    """Gradient scale on the hidden state each dynamics step passes to the next (paper: 1/2,
    pseudocode ``scale_gradient(hidden_state, 0.5)`` after each recurrent_inference); the
    representation's output s^0 is not scaled."""
    priority_alpha: float = 1.0
    """Prioritised replay exponent alpha (paper: 1); 0 = uniform."""
    priority_beta: float = 1.0
    """Importance-weight exponent beta (paper: 1)."""
    value_bootstrap: Literal["search", "target"] = "search"
    """The bootstrap v_{t+n} of the n-step value target: the root value the acting search stored
    with the step (the pseudocode), or the value f(h(o_{t+n})) of a target network copied from
    the online one every ``target_update_interval`` updates (LightZero's MuZero, EfficientZero),
    which does not go stale as the stored values of old steps do."""
    target_update_interval: int = 100
    """Updates between copies of the online network into the target network (LightZero: 100)."""
    reanalyse_ratio: float = 0.0
    """Fraction of each batch whose policy and value targets are recomputed by a fresh search
    with the latest network (MuZero Reanalyze); 0 = off."""
    reanalyse_network: Literal["online", "target"] = "online"
    """The network the reanalysis searches with: the latest (MuZero Reanalyze) or the target
    network (EfficientZero; needs ``value_bootstrap=target``)."""
    reanalyse_noise: bool = False
    """Reanalysis searches with the root's Dirichlet noise (EfficientZero) or without."""
    augment_symmetries: bool = False
    """Board games: train each replayed window under a random symmetry of the board (the env's
    ``symmetries``: 8 rotations and reflections in tic-tac-toe, the mirror in connect four), the
    data augmentation of AlphaGo Zero (Silver et al. 2017). MuZero and AlphaZero do not augment,
    so the presets leave it off; needs an env that declares symmetries (vector observations)."""
    consistency: float = 0.0
    """EfficientZero: weight of the self-supervised consistency loss (paper: 2; 0 = off): at
    each unrolled step k = 1..K, the negative cosine between the prediction head's output on
    g's state s^k and the projection of h(o_k), the latter a detached target, masked past the
    episode's end."""
    off_policy_correction: bool = False
    """EfficientZero: the n-step horizon of a replayed window shrinks with its age, n' =
    clip(td_steps - age // (auto_td_steps_ratio x run.steps), 1, td_steps), age = env steps
    since its first step was stored (the reference's schedule, one n' per window)."""
    auto_td_steps_ratio: float = 0.3
    """EfficientZero: the off-policy correction drops the horizon by one step per this fraction
    of the run's env steps of age (paper: 0.3)."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate
        "num_unroll_steps": ">= 1",
        "td_steps": ">= 1",
        "discount": "(0, 1]",
        "value_loss_weight": ">= 0",
        "dynamics_gradient_scale": ">= 0",
        "priority_alpha": ">= 0",
        "priority_beta": "[0, 1]",
        "target_update_interval": ">= 1",
        "reanalyse_ratio": "[0, 1]",
        "consistency": ">= 0",
        "auto_td_steps_ratio": "> 0",
    }


@dataclass
class MuZeroOptimConfig:
    optimizer: Literal["adam", "sgd"] = "adam"
    """Adam (weight decay as L2), or SGD with momentum (the paper, EfficientZero)."""
    momentum: float = 0.9
    """SGD only: momentum (paper, EfficientZero: 0.9)."""
    lr: float = 3e-3
    lr_decay_rate: float = 0.1
    lr_decay_steps: float = 350e3
    """Exponential decay (pseudocode): lr * lr_decay_rate ** (updates / lr_decay_steps); the
    paper's Atari schedule is 0.1 every 350k updates; rate 1 = constant; steps 0 = the run's
    total updates ((run.steps - run.prefill) * train_ratio / (batch_size * batch_length)), so
    the lr reaches lr * lr_decay_rate at the end of the run whatever --steps is."""
    lr_decay_staircase: bool = False
    """Decay in steps, lr * lr_decay_rate ** floor(updates / lr_decay_steps) (EfficientZero),
    instead of continuously."""
    warmup_steps: int = 0
    """Updates over which the lr rises linearly from 0 (EfficientZero: 1 % of its 100k updates);
    the decay counts updates after the warm-up."""
    weight_decay: float = 1e-4
    """L2 regularisation c ||theta||^2 of the paper's loss (as AdamW-free Adam weight decay)."""
    clip: float = 5.0
    """Gradient-norm clip."""

    CHECKS: ClassVar[dict[str, str]] = {  # config.validate
        "lr": "> 0",
        "lr_decay_rate": "> 0",
        "lr_decay_steps": ">= 0",
        "warmup_steps": ">= 0",
        "momentum": "[0, 1)",
        "weight_decay": ">= 0",
        "clip": "> 0",
    }


@dataclass
class MuZeroConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: MuZeroModelConfig = field(default_factory=MuZeroModelConfig)
    search: MuZeroSearchConfig = field(default_factory=MuZeroSearchConfig)
    train: MuZeroTrainConfig = field(default_factory=MuZeroTrainConfig)
    optim: MuZeroOptimConfig = field(default_factory=MuZeroOptimConfig)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "muzero",
            {
                "run.num_envs": 8,
                "run.batch_size": 128,
                "run.batch_length": 56,  # K + 1 + td_steps
                "run.train_ratio": 1792.0,  # one update of 128 x 56 every 4 env steps
                "run.prefill": 1000,
                "run.replay_chunk": 256,
                "run.replay_capacity": 200_000,
                "run.eval_every": 10_000,
                "run.eval_episodes": 3,
                "run.steps": 50_000,
                "search.temperature_steps": (6_000.0, 9_000.0),
                "model.support_size": 20,
                "optim.lr": 1e-3,
                "optim.lr_decay_rate": 1.0,
                "train.priority_alpha": 0.6,
                "train.priority_beta": 0.4,
                "train.value_bootstrap": "target",
                "train.td_steps": 50,
            },
            f"{_MUZERO}: K=5, gamma 0.997 (1 in board games), h eps 0.001, value weight 1 (the "
            "pseudocode's; 0.25 is the Reanalyze setting), pUCT 1.25/19652, Dirichlet 0.25/0.25, "
            "gradient 1/2 between dynamics steps, losses 1/K. Deviations, for CartPole on 2 CPU "
            "cores (docs/deviations.md, MuZero): MLP 2x64 bodies and a 64-d hidden state instead "
            "of the paper's ResNets; 25 simulations (muzero-general and LightZero use 25-50 for "
            "CartPole / tic-tac-toe); support 20 (41 points, covers h(x) of returns up to ~420; "
            "paper 601 points for Atari scores); Adam 1e-3 (JORLDY's CartPole MuZero) at a "
            "constant rate instead of SGD 0.05 with momentum and decay; prioritised replay at "
            "EfficientZero's / LightZero's alpha 0.6, beta 0.4 instead of the paper's alpha = "
            "beta = 1; n-step bootstraps from a target network copied every 100 updates "
            "(LightZero's MuZero) instead of the stored search values; 8 envs, batch 128 (paper "
            "1024); visit temperature 1 / 0.5 / 0.25 at 50 % / 75 % of CartPole's 12.5k updates "
            "(muzero-general's schedule; the paper's 500k / 750k are the dataclass defaults); n = "
            "50 (muzero-general's CartPole; paper Atari 10) with windows of K + 1 + n = 56 steps.",
        ),
        Preset(
            "efficientzero",
            {
                "model.value_prefix": True,
                "model.lstm_horizon_len": 5,
                "model.lstm_hidden": 128,
                "model.projection": (256, 256, 64, 256),
                "train.consistency": 2.0,
                "train.value_loss_weight": 0.25,
                "train.td_steps": 5,
                "run.batch_length": 11,  # K + 1 + td_steps
                "run.train_ratio": 352.0,  # one update of 128 x 11 every 4 env steps
                "train.target_update_interval": 200,
                "train.off_policy_correction": True,
                "train.reanalyse_ratio": 0.99,
                "train.reanalyse_network": "target",
                "train.reanalyse_noise": True,
                "search.root_dirichlet_alpha": 0.3,
                "search.unvisited_value": "parent",
            },
            f"{_EZ}, on top of `muzero`: the value prefix (LSTM reset every 5 steps), the "
            "consistency loss at weight 2, value loss 0.25, n = 5 shortened by one step per "
            "0.3 x run.steps of the data's age (off-policy correction), bootstraps from the "
            "target network refreshed "
            "every 200 updates, 99 % of each batch's policies re-searched with the target network "
            "and root noise, Dirichlet alpha 0.3, unvisited children valued from their parent. "
            "Deviations (docs/deviations.md, EfficientZero): an LSTM of 128 "
            "(LightZero's CartPole; the paper's 512 sits on Atari's ResNet) and the reference's "
            "base projector 256/256/64/256 instead of its Atari 1024/1024/512/1024.",
        ),
        Preset(
            "efficientzero_atari100k",
            {
                "run.obs": "pixels",
                "run.action_repeat": 4,
                "run.env_options": (
                    "size=96x96",
                    "frame_stack=4",
                    "repeat_action_probability=0",
                    "noop_max=30",
                    "episodic_life=true",
                    "clip_rewards=true",
                    "max_frames=12000",
                ),
                "run.eval_env_options": (
                    "episodic_life=false",
                    "clip_rewards=false",
                    "max_frames=108000",
                ),
                "run.steps": 100_000,
                "run.prefill": 2_000,
                "run.num_envs": 4,
                "run.batch_size": 256,
                "run.batch_length": 11,  # K + 1 + td_steps
                # 120k updates (the reference's 100k + 20k after collection) over 98k steps
                "run.train_ratio": 3449.0,
                "run.replay_capacity": 100_000,
                "run.eval_every": 10_000,
                "run.eval_episodes": 32,
                "run.gap_horizon": 0,  # the model's rewards are clipped, the eval's are not
                "train.loss_scale": "uniform",
                "model.network": "resnet",
                "model.channels": 64,
                "model.blocks": 1,
                "model.reduced_channels": 16,
                "model.units": 32,
                "model.downsample": True,
                "model.support_size": 300,
                "model.lstm_hidden": 512,
                "model.projection": (1024, 1024, 512, 1024),
                "search.num_simulations": 50,
                "search.temperature_steps": (50_000.0, 75_000.0),
                "train.discount": 0.997**4,
                "train.target_update_interval": 200,
                "optim.optimizer": "sgd",
                "optim.momentum": 0.9,
                "optim.lr": 0.2,
                "optim.weight_decay": 1e-4,
                "optim.warmup_steps": 1_000,
                "optim.lr_decay_rate": 0.1,
                "optim.lr_decay_steps": 100_000,
                "optim.lr_decay_staircase": True,
                "optim.clip": 5.0,
            },
            f"{_EZ}: the Atari 100k protocol and EfficientZero's Atari settings, on top of "
            "`efficientzero`. Protocol: 100k agent steps (400k frames, frame skip 4 with the "
            "max of the last two frames), RGB 96 x 96 with the last 4 frames stacked, no sticky "
            "actions, 1-30 no-op starts, training episodes end at a lost life with rewards "
            "clipped to their sign and cut at 12k frames; evaluation plays whole games unclipped "
            "up to 108k frames, 32 episodes every 10k steps (`run.eval_env_options`). Agent: "
            "ResNet of 1 block x 64 planes with the 96 -> 6 stem, heads of 16 planes and 32 "
            "units, support 601 points, LSTM 512, projector 1024/1024/512/1024, 50 simulations, "
            "gamma 0.997^4 per agent step, batch 256, 2k steps before the first update, 120k "
            "updates (the reference's 100k + 20k), target network every 200 updates, every "
            "step's loss scaled 1/K, SGD 0.2 with momentum 0.9, weight decay 1e-4, 1k warm-up "
            "updates and x0.1 after 101k, clip 5, visit temperature 1 / 0.5 / 0.25 at 50k / 75k "
            "updates. Deviations (docs/deviations.md, EfficientZero): the 20k last updates "
            "interleaved with collection instead of after it, prefill by the untrained net's "
            "search instead of random actions, fixed PER beta 0.4 instead of annealed to 1, "
            "GroupNorm instead of BatchNorm, hidden states min-max normalised, no "
            "augmentation, frames stacked in the env (the replay holds 4 frames a step), "
            "evaluation of 108k-frame games at every eval. The full benchmark needs a GPU.",
            extends=("efficientzero",),
        ),
        Preset(
            "board",
            {
                "run.batch_length": 16,  # K + 1 + td_steps
                "run.train_ratio": 512.0,  # one update of 128 x 16 every 4 moves
                "run.steps": 150_000,
                "run.eval_every": 25_000,
                "train.td_steps": 10,
                "train.priority_alpha": 0.0,  # the measured tic-tac-toe run: uniform replay
                "train.value_bootstrap": "search",  # and the stored search values
                "train.augment_symmetries": True,
                "search.unvisited_value": "parent",
            },
            "worldmodels, for two-player board games on 2 CPU cores, after `muzero`: n = 10 "
            "covers a tic-tac-toe game (outcome value targets, as the paper's board games) with "
            "windows of K + 1 + n = 16 and one update of 128 every 4 moves for 150k self-play "
            "moves; uniform replay and the stored search values as bootstraps (the `muzero` "
            "preset's settings when the tic-tac-toe runs were made); the board's symmetries as "
            "training data (AlphaGo Zero's augmentation; MuZero and AlphaZero do not augment) and "
            "pUCT's unvisited children valued at their parent's value (mctx, EfficientZero) "
            "instead of 0, so that 25 simulations try low-prior wins and blocks "
            "(docs/deviations.md, MuZero). The settings of the tic-tac-toe run in docs/results.md.",
        ),
        Preset(
            "debug",
            {
                **DEBUG_RUN,
                "run.num_envs": 2,
                "run.batch_length": 6,
                "run.train_ratio": 24.0,
                "run.prefill": 40,
                "model.latent": 16,
                "model.units": 16,
                "model.layers": 1,
                "model.channels": 8,
                "model.blocks": 1,
                "model.reduced_channels": 2,
                "model.support_size": 10,
                "search.num_simulations": 4,
                "train.num_unroll_steps": 2,
                "train.td_steps": 3,
                "train.reanalyse_ratio": 0.25,
                "run.board_eval_games": 4,
            },
            "worldmodels: makes any run tiny (smoke tests)",
            "debug",
        ),
    ]
}
