"""MuZero's three functions (Schrittwieser et al. 2020): representation h, dynamics g, prediction f.

    s^0 = h(o_t),   (r^k, s^k) = g(s^{k-1}, a^k),   (p^k, v^k) = f(s^k)

Two bodies share one interface: MLPs for vector observations, and for images the residual
tower with downsampling of the paper's Atari network (Appendix F). Hidden states are min-max
scaled to [0, 1] per sample after h and after g; rewards and values are logits over the
categorical support -S..S of h(x) (`worldmodels.math.support`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..math.support import min_max_scale, support_to_scalar
from ..nn.layers import MLP, image_to_float


class Inference(NamedTuple):
    """Network outputs at one unroll step; logits over the support for reward and value."""

    hidden: Tensor
    """[B, ...] hidden state s^k in [0, 1]."""
    reward_logits: Tensor | None
    """[B, 2S + 1] reward r^k logits (None at k = 0)."""
    policy_logits: Tensor
    """[B, A] policy p^k logits."""
    value_logits: Tensor
    """[B, 2S + 1] value v^k logits."""
    reward_state: tuple[Tensor, Tensor] | None = None
    """EfficientZero's value prefix: the LSTM state (h, c), each [B, lstm_hidden], after step k
    (None without a value-prefix model); ``reward_logits`` are then the value prefix's."""


def _zero_last(layer: nn.Linear) -> nn.Linear:
    """Output layers start at zero: uniform policy, value and reward 0 (as muzero-general)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _Head(nn.Module):
    """MLP(layers x units) -> Linear(out), zero-initialised output."""

    def __init__(self, inp: int, out: int, units: int, layers: int, norm: str, act: str):
        super().__init__()
        self.mlp = MLP(inp, units, layers, norm, act)
        self.out = _zero_last(nn.Linear(self.mlp.out_dim, out))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.mlp(x))


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(x)))) with a final activation (MuZero / AlphaZero block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(1, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(1, channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(x + self.norm2(self.conv2(y)))


def _conv_block(inp: int, out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, 3, stride, 1, bias=False), nn.GroupNorm(1, out), nn.ReLU()
    )


class MuZeroNetwork(nn.Module):
    """h, g and f for one observation key (``vector`` -> MLP, ``image`` -> residual tower).

    ``support_size`` S gives 2S + 1 logits for reward and value; S = 0 gives one scalar output each
    (the pseudocode's MSE heads for board games). MLP body: ``latent``-dim hidden
    state, ``units``-wide MLPs of ``layers`` layers. Residual body: ``channels`` planes, ``blocks``
    residual blocks per function, and with ``downsample`` the paper's Atari stem (two stride-2
    convs and two stride-2 average pools: 64 x 64 -> 4 x 4).
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        *,
        image: bool,
        support_size: int = 300,
        latent: int = 64,
        units: int = 64,
        layers: int = 2,
        head_layers: int = 1,
        channels: int = 32,
        blocks: int = 2,
        reduced_channels: int = 8,
        downsample: bool = True,
        norm: str = "layer",
        act: str = "relu",
        value_prefix: bool = False,
        lstm_hidden: int = 512,
        projection: tuple[int, int, int, int] | None = None,
    ):
        super().__init__()
        self.image, self.num_actions, self.support_size = image, num_actions, support_size
        if support_size < 0:
            raise ValueError(f"support_size must be >= 0, got {support_size}")
        bins = 2 * support_size + 1  # 1 when S = 0: a scalar head
        if not image:
            (obs_dim,) = obs_shape
            self.repr_mlp = MLP(obs_dim, units, layers, norm, act)
            self.repr_out = nn.Linear(self.repr_mlp.out_dim, latent)
            self.dyn_mlp = MLP(latent + num_actions, units, layers, norm, act)
            self.dyn_out = nn.Linear(self.dyn_mlp.out_dim, latent)
            feat = latent
            self.reward_head = _Head(self.dyn_mlp.out_dim, bins, units, head_layers, norm, act)
        else:
            h, w, c = obs_shape
            if downsample:
                if h % 16 or w % 16:
                    raise ValueError(f"image {obs_shape}: downsampling needs H, W divisible by 16")
                half = max(channels // 2, 1)
                self.stem = nn.Sequential(
                    _conv_block(c, half, 2),
                    ResBlock(half),
                    _conv_block(half, channels, 2),
                    ResBlock(channels),
                    nn.AvgPool2d(3, 2, 1),
                    ResBlock(channels),
                    nn.AvgPool2d(3, 2, 1),
                )
                h, w = h // 16, w // 16
            else:
                self.stem = _conv_block(c, channels)
            self.repr_tower = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
            self.dyn_in = _conv_block(channels + num_actions, channels)
            self.dyn_tower = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
            self.reward_reduce = nn.Conv2d(channels, reduced_channels, 1)
            self.value_reduce = nn.Conv2d(channels, reduced_channels, 1)
            self.policy_reduce = nn.Conv2d(channels, reduced_channels, 1)
            self.hw = (h, w)
            feat = reduced_channels * h * w
            self.reward_head = _Head(feat, bins, units, head_layers, norm, act)
        self.value_head = _Head(feat, bins, units, head_layers, norm, act)
        self.policy_head = _Head(feat, num_actions, units, head_layers, norm, act)
        self.value_prefix = value_prefix
        if value_prefix:  # EfficientZero: an LSTM over the reward features of s^1..s^k
            reward_in = self.dyn_mlp.out_dim if not image else feat
            self.reward_lstm = nn.LSTMCell(reward_in, lstm_hidden)
            self.reward_lstm_norm = nn.LayerNorm(lstm_hidden)
            self.reward_head = _Head(lstm_hidden, bins, units, head_layers, norm, act)
        self.projection: nn.Module | None = None
        if projection is not None:  # EfficientZero's SimSiam projector and prediction head
            proj_hid, proj_out, pred_hid, pred_out = projection
            if pred_out != proj_out:
                raise ValueError(
                    f"the prediction head's output {pred_out} must match the "
                    f"projection's {proj_out} (their cosine is the loss)"
                )
            hidden_dim = latent if not image else channels * self.hw[0] * self.hw[1]
            self.projection = nn.Sequential(
                nn.Linear(hidden_dim, proj_hid),
                nn.BatchNorm1d(proj_hid),
                nn.ReLU(),
                nn.Linear(proj_hid, proj_hid),
                nn.BatchNorm1d(proj_hid),
                nn.ReLU(),
                nn.Linear(proj_hid, proj_out),
                nn.BatchNorm1d(proj_out),
            )
            self.prediction_head = nn.Sequential(
                nn.Linear(proj_out, pred_hid),
                nn.BatchNorm1d(pred_hid),
                nn.ReLU(),
                nn.Linear(pred_hid, pred_out),
            )

    # The three functions
    def represent(self, obs: Tensor) -> Tensor:
        """h: [B, obs...] (float vector or uint8 [B, H, W, C] image) -> [B, ...] s^0 in [0, 1]."""
        if self.image:
            x = self.repr_tower(self.stem(image_to_float(obs)))
        else:
            x = self.repr_out(self.repr_mlp(obs.to(self.repr_out.weight.dtype)))
        return min_max_scale(x)

    def dynamics(
        self,
        hidden: Tensor,
        action: Tensor,
        reward_state: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """g: [B, ...] s^{k-1}, [B] long a^k -> ([B, ...] s^k in [0, 1], [B, 2S+1] r^k logits).

        With a value-prefix model the reward features of s^k go through the LSTM from
        ``reward_state`` (zeros when None) and the logits are those of the value prefix; the new
        LSTM state is returned third."""
        onehot = F.one_hot(action.long(), self.num_actions).to(hidden.dtype)
        if self.image:
            planes = onehot[:, :, None, None].expand(-1, -1, *hidden.shape[-2:])
            x = self.dyn_in(torch.cat([hidden, planes], 1)) + hidden
            x = self.dyn_tower(x)
            nxt, feat = min_max_scale(x), F.relu(self.reward_reduce(x)).flatten(1)
        else:
            feat = self.dyn_mlp(torch.cat([hidden, onehot], -1))
            nxt = min_max_scale(self.dyn_out(feat))
        if not self.value_prefix:
            return nxt, self.reward_head(feat)
        if reward_state is None:
            reward_state = self.initial_reward_state(hidden.shape[0], hidden)
        h, c = self.reward_lstm(feat, reward_state)
        prefix = self.reward_head(F.relu(self.reward_lstm_norm(h)))
        return nxt, prefix, (h, c)

    def initial_reward_state(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """Zero LSTM state (h, c) of the value-prefix model for ``batch`` rows."""
        n = self.reward_lstm.hidden_size
        zeros = torch.zeros(batch, n, dtype=like.dtype, device=like.device)
        return zeros, zeros.clone()

    def project(self, hidden: Tensor, predict: bool) -> Tensor:
        """EfficientZero's SimSiam branches: [B, ...] s -> [B, proj_out] projection, through
        the prediction head when ``predict`` (the dynamics branch); the observation branch
        (``predict=False``) is the projection alone, to be used as a detached target."""
        assert self.projection is not None, "the network was built without a projection"
        z = self.projection(hidden.flatten(1))
        return self.prediction_head(z) if predict else z

    def predict(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """f: [B, ...] s^k -> ([B, A] policy logits, [B, 2S+1] value logits)."""
        if self.image:
            v = F.relu(self.value_reduce(hidden)).flatten(1)
            p = F.relu(self.policy_reduce(hidden)).flatten(1)
            return self.policy_head(p), self.value_head(v)
        return self.policy_head(hidden), self.value_head(hidden)

    # Inference helpers
    def initial_inference(self, obs: Tensor) -> Inference:
        """o_t -> (s^0, None, p^0, v^0)."""
        hidden = self.represent(obs)
        policy, value = self.predict(hidden)
        return Inference(hidden, None, policy, value)

    def recurrent_inference(
        self, hidden: Tensor, action: Tensor, reward_state: tuple[Tensor, Tensor] | None = None
    ) -> Inference:
        """(s^{k-1}, a^k) -> (s^k, r^k, p^k, v^k); with a value-prefix model r^k are the value
        prefix's logits and the LSTM state (from ``reward_state``) comes back as well."""
        out = self.dynamics(hidden, action, reward_state)
        policy, value = self.predict(out[0])
        return Inference(out[0], out[1], policy, value, out[2] if self.value_prefix else None)

    def scalar(self, logits: Tensor, eps: float) -> Tensor:
        """[B, 2S + 1] support logits -> [B] scalar h^-1(E[support]); S = 0: the output itself."""
        if self.support_size == 0:
            return logits[..., 0]
        return support_to_scalar(logits, self.support_size, eps)
