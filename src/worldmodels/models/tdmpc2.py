"""TD-MPC2's decoder-free latent world model (Hansen, Su & Wang, ICLR 2024, Sec. 3).

    encoder   z_t = h(o_t)                 MLP (vectors) or CNN (images), SimNorm output
    dynamics  z_{t+1} = d(z_t, a_t)        MLP, SimNorm output
    reward    r_hat = R(z_t, a_t)          MLP -> logits over symexp-spaced two-hot bins
    value     q_hat = Q_i(z_t, a_t)        ensemble of `num_q` MLPs (dropout) -> two-hot logits
    policy    a ~ pi(z_t)                  tanh-Gaussian (continuous) or categorical (discrete)
    episode   T(z_t) = P(terminal)         MLP -> logit (episodic tasks)

Actions enter as floats `[..., A]`: in [-1, 1] for continuous spaces, one-hot for discrete ones.
The API is named by what it does, as the reference's: `encode`, `next`, `reward`, `pi`, `Q`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..envs.base import Spec
from ..math import bounded_log_std, squashed_gaussian, symexp_bins, two_hot_decode
from ..nn.layers import EnsembleMLP, SimNorm, image_to_float, normed_mlp, random_shift


@dataclass
class TDMPC2ModelConfig:
    """Network sizes and heads (reference `config.yaml`; sizes of `common/__init__.py`)."""

    latent_dim: int = 64
    """Size of z; a multiple of simnorm_dim."""
    enc_dim: int = 128
    """Hidden width of the vector encoder."""
    num_enc_layers: int = 2
    """Encoder layers including the output layer (reference: 2 for 1M/5M, 3 for 19M)."""
    mlp_dim: int = 96
    """Hidden width of dynamics, reward, value, policy and termination MLPs (2 hidden layers)."""
    num_channels: int = 32
    """CNN channels of the pixel encoder."""
    num_q: int = 5
    """Q-functions in the ensemble."""
    dropout: float = 0.01
    """Dropout after the first layer of every Q-function."""
    simnorm_dim: int = 8
    """SimNorm group size of the latent."""
    num_bins: int = 101
    """Two-hot bins of reward and value, symexp(linspace(vmin, vmax, num_bins))."""
    vmin: float = -10.0
    vmax: float = 10.0
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    """Bounds of the policy prior's log-std (squashed with tanh)."""
    shift_pad: int = 3
    """Random-shift augmentation of images while training, in pixels (0 = off)."""


@dataclass
class PolicyOutput:
    """What `TDMPC2Model.pi` returns."""

    action: Tensor
    """[..., A] a sample: tanh-squashed in (-1, 1), or one-hot (discrete)."""
    mode: Tensor
    """[..., A] the greedy action: tanh(mean), or one-hot argmax."""
    entropy: Tensor
    """[...] -log pi(action) (continuous, one-sample estimate), or the exact entropy (discrete)."""
    probs: Tensor | None = None
    """[..., K] action probabilities (discrete only)."""


class PixelEncoder(nn.Module):
    """Reference `layers.conv`: 4 convs (7/2, 5/2, 3/2, 3/1; ReLU), flatten, a Linear to
    ``latent_dim`` where the flattened size differs, SimNorm; uint8 ``[..., H, W, C] -> [..., L]``.
    Random shifts of ``pad`` pixels in training mode (DrQ augmentation)."""

    def __init__(
        self, shape: tuple[int, int, int], channels: int, latent_dim: int, simnorm: int, pad: int
    ):
        super().__init__()
        h, w, c = shape
        self.convs = nn.Sequential(
            nn.Conv2d(c, channels, 7, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 5, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, c, h, w)).shape[-1]
        self.proj = nn.Identity() if flat == latent_dim else nn.Linear(flat, latent_dim)
        self.simnorm = SimNorm(simnorm)
        self.pad = pad

    def forward(self, image: Tensor) -> Tensor:
        lead = image.shape[:-3]
        x = image_to_float(image.reshape(-1, *image.shape[-3:]))
        if self.training:
            x = random_shift(x, self.pad)
        return self.simnorm(self.proj(self.convs(x))).reshape(*lead, -1)


class TDMPC2Model(nn.Module):
    """Encoder, latent dynamics, reward, Q ensemble, policy prior and termination head.

    The target Q ensemble is not part of this module: the agent keeps an EMA copy of `Qs`.
    """

    bins: Tensor

    def __init__(
        self, cfg: TDMPC2ModelConfig, obs_space: dict[str, Spec], act_dim: int, discrete: bool
    ):
        super().__init__()
        if cfg.latent_dim % cfg.simnorm_dim:
            raise ValueError(
                f"latent_dim {cfg.latent_dim} must be a multiple of simnorm_dim {cfg.simnorm_dim}"
            )
        self.cfg, self.act_dim, self.discrete = cfg, act_dim, discrete
        self.vector_keys = [k for k, s in obs_space.items() if len(s.shape) == 1]
        self.image_keys = [k for k, s in obs_space.items() if len(s.shape) == 3]
        if self.vector_keys and self.image_keys:
            raise ValueError("TD-MPC2 encodes either vectors or images, not both")
        L, M = cfg.latent_dim, cfg.mlp_dim
        if self.vector_keys:
            vdim = sum(obs_space[k].shape[0] for k in self.vector_keys)
            hidden = max(cfg.num_enc_layers - 1, 1) * [cfg.enc_dim]
            self.encoder: nn.Module = normed_mlp(vdim, hidden, L, SimNorm(cfg.simnorm_dim))
        else:
            h, w, _ = obs_space[self.image_keys[0]].shape
            c = sum(obs_space[k].shape[2] for k in self.image_keys)
            self.encoder = PixelEncoder(
                (h, w, c), cfg.num_channels, L, cfg.simnorm_dim, cfg.shift_pad
            )
        A = act_dim
        self.dynamics = normed_mlp(L + A, [M, M], L, SimNorm(cfg.simnorm_dim))
        self.reward_net = normed_mlp(L + A, [M, M], cfg.num_bins, zero_out=True)
        self.pi_net = normed_mlp(L, [M, M], A if discrete else 2 * A)
        self.Qs = EnsembleMLP(cfg.num_q, L + A, [M, M], cfg.num_bins, cfg.dropout, zero_out=True)
        self.termination_net = normed_mlp(L, [M, M], 1)
        self.register_buffer("bins", symexp_bins(cfg.num_bins, cfg.vmin, cfg.vmax), False)

    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """Observations ``[..., *shape]`` -> latent z ``[..., L]`` (groups of SimNorm)."""
        if self.vector_keys:
            return self.encoder(torch.cat([obs[k].float() for k in self.vector_keys], -1))
        return self.encoder(torch.cat([obs[k] for k in self.image_keys], -1))

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        """z ``[..., L]``, a ``[..., A]`` -> z' = d(z, a) ``[..., L]``."""
        return self.dynamics(torch.cat([z, a], -1))

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        """z ``[..., L]``, a ``[..., A]`` -> reward logits ``[..., num_bins]``."""
        return self.reward_net(torch.cat([z, a], -1))

    def termination(self, z: Tensor) -> Tensor:
        """z ``[..., L]`` -> termination logit ``[...]``."""
        return self.termination_net(z).squeeze(-1)

    def decode(self, logits: Tensor) -> Tensor:
        """Two-hot logits ``[..., num_bins]`` -> expected value ``[...]``."""
        return two_hot_decode(logits, self.bins)

    def pi(self, z: Tensor) -> PolicyOutput:
        """z ``[..., L]`` -> a reparameterised sample of the policy prior and its entropy."""
        out = self.pi_net(z)
        if self.discrete:
            log_probs = F.log_softmax(out, -1)
            probs = log_probs.exp()
            u = torch.rand(probs.shape[:-1] + (1,), device=probs.device)
            index = (u > probs.cumsum(-1)).sum(-1).clamp(max=self.act_dim - 1)  # inverse CDF
            action = F.one_hot(index, self.act_dim).to(probs.dtype)
            mode = F.one_hot(probs.argmax(-1), self.act_dim).to(probs.dtype)
            entropy = -(probs * log_probs).sum(-1)
            return PolicyOutput(action, mode, entropy, probs)
        mean, raw_std = out.chunk(2, -1)
        log_std = bounded_log_std(raw_std, self.cfg.log_std_min, self.cfg.log_std_max)
        action, log_prob = squashed_gaussian(mean, log_std, torch.randn_like(mean))
        return PolicyOutput(action, torch.tanh(mean), -log_prob)

    def Q(
        self,
        z: Tensor,
        a: Tensor,
        kind: str = "all",
        qnet: EnsembleMLP | None = None,
        detach: bool = False,
    ) -> Tensor:
        """z ``[..., L]``, a ``[..., A]`` -> logits ``[E, ..., num_bins]`` (``all``), or the min /
        mean of two random members' values ``[...]`` (``min`` / ``avg``, TD-MPC2 Sec. 3.3).

        ``qnet`` replaces the online ensemble (the EMA target); ``detach`` stops gradients into
        its parameters, not into z and a (policy update)."""
        qnet = self.Qs if qnet is None else qnet
        x = torch.cat([z, a], -1)
        if kind == "all":
            return qnet(x, detach=detach)
        pair = torch.randperm(self.cfg.num_q, device=x.device)[:2]
        q = self.decode(qnet(x, members=pair, detach=detach))  # [2, ...]
        if kind == "min":
            return q.min(0).values
        if kind == "avg":
            return q.mean(0)
        raise ValueError(f"unknown Q kind {kind!r}; use all, min or avg")
