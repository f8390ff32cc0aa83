"""World Models configuration (Ha & Schmidhuber, World Models / Recurrent World Models Facilitate
Policy Evolution, 2018; reference code hardmaru/WorldModelsExperiments, doomrnn/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ...config import Preset, RunConfig

_WM = "Ha & Schmidhuber, Recurrent World Models Facilitate Policy Evolution, NeurIPS 2018"


@dataclass
class DataConfig:
    """The random rollouts V and M learn from (doomrnn/extract.py, carracing/extract.py)."""

    episodes: int = 10_000
    """Episodes collected before anything is trained (paper: 10,000 random rollouts)."""
    policy: Literal["held", "controller"] = "held"
    """The collection policy. ``held``: a uniformly random action held for a uniformly random
    1..``repeat_max`` steps (doomrnn/extract.py's "more diverse random policy"). ``controller``:
    C with random weights drawn anew for every episode, standard Cauchy draws times a scale
    drawn uniformly from [0, 0.01], acting on [z, (c,) h] of the untrained V and M
    (carracing/extract.py, which also draws V's and M's weights at random)."""
    repeat_max: int = 10
    """``held``: the longest a random action is held."""

    CHECKS: ClassVar[dict[str, str]] = {"episodes": ">= 1", "repeat_max": ">= 1"}


@dataclass
class VAEConfig:
    """V: the convolutional VAE of doomrnn.py (ConvVAE) and vae_train.py."""

    z_dim: int = 64
    depth: int = 32
    """Channels of the first conv layer (then x2, x4, x8)."""
    kl_tolerance: float = 0.5
    """KL floor per latent dimension (the KL term is max(KL, kl_tolerance * z_dim))."""
    lr: float = 1e-4
    batch_size: int = 100
    epochs: int = 10
    """Passes over every collected frame."""
    max_updates: int = 0
    """Stop V after this many batches (0 = every epoch): with many episodes collected for M,
    V can learn from a random part of their frames."""

    CHECKS: ClassVar[dict[str, str]] = {
        "max_updates": ">= 0",
        "z_dim": ">= 1",
        "depth": ">= 1",
        "kl_tolerance": ">= 0",
        "lr": "> 0",
        "batch_size": ">= 1",
        "epochs": ">= 1",
    }


@dataclass
class MDNRNNConfig:
    """M: the MDN-RNN of doomrnn.py and rnn_train.py."""

    hidden: int = 512
    mixtures: int = 5
    """Gaussians in the mixture of every latent dimension."""
    seq_len: int = 500
    """Steps per training sequence (rnn_train.py: 500). The episodes are shuffled and laid end
    to end into ``batch_size`` streams; the LSTM state is carried from one sequence of a stream
    to the next and reset where an episode starts (the ``restart`` input)."""
    batch_size: int = 100
    epochs: int = 400
    lr: float = 1e-3
    lr_min: float = 1e-5
    lr_decay: float = 0.99999
    """lr = (lr - lr_min) * lr_decay ** update + lr_min."""
    grad_clip: float = 1.0
    """Each gradient element is clipped to [-grad_clip, grad_clip] (tf.clip_by_value)."""
    done_factor: float = 10.0
    """Weight of the rare episode-end event in the done loss (``restart_factor``)."""
    reward_scale: float = 1.0
    """Weight of the reward regression (the library predicts rewards so that dreams of other
    tasks have them; TakeCover's is +1 per step, which the reference's dream hard-codes)."""

    CHECKS: ClassVar[dict[str, str]] = {
        "hidden": ">= 1",
        "mixtures": ">= 1",
        "seq_len": ">= 2",
        "batch_size": ">= 1",
        "epochs": ">= 1",
        "lr": "> 0",
        "lr_min": ">= 0",
        "lr_decay": "(0, 1]",
        "grad_clip": "> 0",
        "done_factor": ">= 0",
        "reward_scale": ">= 0",
    }


@dataclass
class ControllerConfig:
    """C: a linear controller evolved by CMA-ES inside M (doomrnn/train.py, config.py)."""

    inputs: Literal["zh", "zch"] = "zch"
    """What C sees: [z, h] (paper text) or [z, c, h] (the Doom reference code's
    ``model_state_space = 2``: the LSTM cell state too)."""
    bias: bool = False
    """The Doom reference's controller has no bias (model.py: one weight matrix)."""
    discrete: Literal["auto", "threshold", "argmax"] = "auto"
    """How a discrete action is read off C. ``threshold``: one tanh output, < -1/3 -> left,
    > 1/3 -> right, else none (doomreal.py); ``argmax``: one output per action. ``auto``:
    ``threshold`` where the env's three actions are none, left and right, else ``argmax``."""
    threshold_actions: tuple[int, int, int] = (0, 1, 2)
    """Indices of the (none, left, right) actions for ``threshold`` (read off the env's action
    names where it gives them)."""
    continuous: Literal["tanh", "carracing"] = "tanh"
    """How continuous actions are read off C. ``tanh``: every output through tanh, the env's
    [-1, 1] actions. ``carracing``: CarRacing's (steer, gas, brake) as carracing/model.py maps
    them: steer = tanh, gas = (tanh + 1) / 2, brake = clip(tanh, 0, 1); the library rescales
    [-1, 1] to CarRacing's bounds (gas and brake in [0, 1]), so gas is the plain tanh here and
    brake is 2 clip(tanh, 0, 1) - 1 (no braking for half of the output's range)."""
    mode: Literal["dream", "real"] = "dream"
    """Where the candidates are scored. ``dream``: rollouts inside M (doomrnn/train.py).
    ``real``: episodes of the run's env (carracing/train.py): V encodes each frame, M's memory
    follows the episode and C acts on [z, (c,) h] as it does when the trained agent plays; M
    is still trained (C reads its memory), the dream is not used."""
    popsize: int = 64
    rollouts: int = 16
    """Rollouts per candidate (dreams or real episodes by ``mode``); its fitness is their mean
    return."""
    real_envs: int = 16
    """``real``: episodes played side by side (one env each, stepped in this process; V, M
    and C batched over them)."""
    sigma0: float = 0.1
    generations: int = 300
    temperature: float = 1.15
    """tau of M's sampling in the dream: mixture logits / tau, sigma * sqrt(tau) (paper
    Table: 1.15 transfers best to the real TakeCover)."""
    max_steps: int = 2100
    """A dream ends here like the real episode (TakeCover's 2,100-step cap). ``real`` episodes
    end at the env's own limit, or here if that comes first (smoke tests cut them short)."""
    done: Literal["threshold", "sample"] = "threshold"
    """A dream ends where M's done probability exceeds 0.5 (doomrnn.py: ``logrestart > 0``), or
    with that probability (``sample``)."""
    mid_starts: float = 0.0
    """Fraction of dreams that start from a recorded mid-episode frame instead of an episode's
    first frame (not in the paper, whose dreams all start at the first frame; 0 = the paper).
    Such a dream starts from a frame drawn uniformly from a pool of 4,096 recorded frames
    (``agent.MID_START_POOL``, drawn once from every frame but the episodes' first and last):
    z sampled from the frame's (mu, logvar), M's memory warmed up by consuming the real
    episode up to it (V's means and the recorded actions), and the dream capped at the steps
    the real episode had left (``max_steps`` - t), so that C meets the fireballs of real play,
    which an M trained on few episodes loses from its own dreams. Measured on TakeCover at 0.5
    (docs/results.md): no better than 0."""
    common_dreams: bool = False
    """Score every candidate of a generation on the same ``rollouts`` dreams: the same starts
    and the same random numbers for M's samples and sampled ends (common random numbers; not
    in the reference, whose workers draw a seed per candidate). Candidates then differ only by
    what they do, not by the luck of their dreams (TakeCover, docs/results.md: real 177 -> 235
    on one M)."""
    eval_every: int = 25
    """Every this many generations the current mean is scored on ``eval_rollouts`` fresh
    rollouts (dreams or real episodes by ``mode``) and the best-scoring mean is kept as the
    controller (train.py's evaluation); 0 = keep the best candidate by its own fitness."""
    eval_rollouts: int = 64

    CHECKS: ClassVar[dict[str, str]] = {
        "threshold_actions": ">= 0",
        "popsize": ">= 2",
        "rollouts": ">= 1",
        "real_envs": ">= 1",
        "sigma0": "> 0",
        "generations": ">= 1",
        "temperature": "> 0",
        "max_steps": ">= 1",
        "mid_starts": "[0, 1]",
        "eval_every": ">= 0",
        "eval_rollouts": ">= 1",
    }


def _run() -> RunConfig:
    return RunConfig(eval_episodes=100, eval_every=0, gap_horizon=0, obs="pixels")


@dataclass
class WorldModelsConfig:
    run: RunConfig = field(default_factory=_run)
    """Pixels only; the final evaluation plays 100 real episodes (the paper's protocol)."""
    data: DataConfig = field(default_factory=DataConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    mdnrnn: MDNRNNConfig = field(default_factory=MDNRNNConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    save_every_s: float = 60.0
    """Seconds between checkpoints inside the vae and mdnrnn stages; the controller stage saves
    after every CMA-ES generation, and every stage at its end."""

    CHECKS: ClassVar[dict[str, str]] = {"save_every_s": ">= 0"}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "worldmodels",
            {},
            f"{_WM}; doomrnn/: 10,000 random rollouts (actions held 1-10 steps), ConvVAE z=64 "
            "(KL floor 0.5 per dim, Adam 1e-4, batch 100, 10 epochs), MDN-RNN LSTM 512 with 5 "
            "Gaussians per latent dimension and a done logit weighted 10x on episode ends "
            "(sequences of 500, batch 100, Adam 1e-3 decaying to 1e-5, gradients clipped to "
            "1), linear controller on [z, c, h] without bias evolved by CMA-ES (population 64, "
            "16 dreams each, sigma 0.1) at temperature 1.15, dreams capped at 2,100 steps. "
            "docs/deviations.md lists every difference.",
        ),
        Preset(
            "carracing",
            {
                "data.policy": "controller",
                "vae.z_dim": 32,
                "mdnrnn.hidden": 256,
                "mdnrnn.seq_len": 999,
                "mdnrnn.epochs": 40,
                "mdnrnn.lr_decay": 1.0,
                "controller.inputs": "zh",
                "controller.bias": True,
                "controller.continuous": "carracing",
                "controller.mode": "real",
                "controller.max_steps": 1000,
                "controller.generations": 2000,
                "controller.eval_rollouts": 1024,
            },
            f"{_WM}; carracing/ on gym:CarRacing-v3: 10,000 rollouts of a random-weight "
            "controller, ConvVAE z=32, MDN-RNN LSTM 256 with 5 Gaussians (sequences of 999, "
            "batch 100, 40 epochs ~ the reference's 4,000 updates, Adam 1e-3 constant), "
            "linear controller on [z, h] with bias (steer tanh, gas (tanh+1)/2, brake "
            "clip(tanh, 0, 1)) evolved by CMA-ES in the real env (population 64, 16 episodes "
            "each, sigma 0.1, every 25 generations the mean scored on 64 x 16 episodes). "
            "controller.mode=dream evolves it in M instead. docs/deviations.md lists every "
            "difference.",
        ),
        Preset(
            "cpu",
            {
                "data.episodes": 500,
                "vae.epochs": 1,
                "mdnrnn.hidden": 512,
                "mdnrnn.seq_len": 100,
                "mdnrnn.batch_size": 50,
                "mdnrnn.epochs": 60,
                "controller.popsize": 32,
                "controller.rollouts": 8,
                "controller.generations": 60,
                "controller.eval_every": 10,
                "controller.eval_rollouts": 64,
                "controller.done": "sample",
            },
            "worldmodels: the TakeCover pipeline at 2-core CPU scale (500 rollouts, one VAE "
            "epoch, LSTM 512 for 60 epochs of 100-step sequences, CMA-ES 32 x 8 for 60 "
            "generations in dreams that end with M's end probability at each step; about 100 "
            "min). An M trained on 500 episodes is rarely sure of a death, so dreams ended at "
            "P(end) > 0.5 (the reference's rule) let the controller ignore the risk it sees "
            "(docs/results.md)",
            "cpu",
        ),
        Preset(
            "debug",
            {
                "data.episodes": 2,
                "vae.z_dim": 8,
                "vae.depth": 4,
                "vae.epochs": 1,
                "vae.batch_size": 16,
                "mdnrnn.hidden": 16,
                "mdnrnn.mixtures": 2,
                "mdnrnn.seq_len": 8,
                "mdnrnn.batch_size": 2,
                "mdnrnn.epochs": 2,
                "controller.popsize": 4,
                "controller.rollouts": 2,
                "controller.generations": 2,
                "controller.max_steps": 20,
                "controller.eval_every": 1,
                "controller.eval_rollouts": 2,
                "run.eval_episodes": 1,
                "run.replay_chunk": 64,
                "run.threads": 1,
            },
            "worldmodels: makes any run tiny (smoke tests)",
            "debug",
        ),
    ]
}
