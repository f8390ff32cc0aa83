"""The "M" model of World Models (Ha & Schmidhuber 2018, Sec. 2.2 and Appendix A.2): an LSTM
with a mixture-density head (MDN-RNN) that models P(z_{t+1} | a_t, z_t, h_t).

Follows the reference `MDNRNN` of hardmaru/WorldModelsExperiments (``doomrnn/doomrnn.py``):

    input     x_t = [z_t, a_t, restart_t]        restart_t = 1 on an episode's first step
    core      one LSTM layer; where restart_t = 1 the state (h, c) is zeroed before step t
              (the reference's ``custom_rnn_autodecoder``)
    head      Linear h_t -> Z*K*3 + 2: for EVERY latent dimension its own mixture of K
              Gaussians (log weights, means, log stds), then a done logit and a reward
    losses    `mdn_nll` (mixture negative log-likelihood of z_{t+1}), `done_loss` (BCE weighted
              by the reference's ``restart_factor``)
    sampling  `sample_z` with the temperature of the reference's ``DoomCoverRNNEnv``

Actions are floats ``[..., A]``: continuous values, or the one-hot of a discrete action (made by
the caller). Shapes: B batch, T time, Z latent size, K mixtures, H hidden size.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

State = tuple[Tensor, Tensor]
"""LSTM state (h, c), each ``[B, H]``."""


class MDNOut(NamedTuple):
    """Prediction for the next step; leading dims ``[...]`` are ``[B]`` or ``[B, T]``."""

    logmix: Tensor
    """[..., Z, K] log mixture weights, log-softmax normalised over K."""
    mean: Tensor
    """[..., Z, K] component means."""
    logstd: Tensor
    """[..., Z, K] component log standard deviations."""
    done_logit: Tensor
    """[...] logit of the episode ending (the reference's restart/death flag)."""
    reward: Tensor
    """[...] predicted reward."""


class MDNRNN(nn.Module):
    """LSTM + per-dimension Gaussian-mixture head (reference ``MDNRNN``); module docstring."""

    def __init__(self, z_dim: int, act_dim: int, hidden: int = 512, mixtures: int = 5):
        super().__init__()
        self.z_dim, self.act_dim, self.hidden, self.mixtures = z_dim, act_dim, hidden, mixtures
        self.lstm = nn.LSTM(z_dim + act_dim + 1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, z_dim * mixtures * 3 + 2)

    def initial(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero state (h, c), each ``[batch, H]``."""
        h = torch.zeros(batch, self.hidden, device=device)
        return h, torch.zeros_like(h)

    def outputs(self, h: Tensor) -> MDNOut:
        """Head on hidden states ``[..., H]`` -> `MDNOut` with leading dims ``[...]``."""
        y = self.head(h)
        mdn = y[..., :-2].unflatten(-1, (self.z_dim, 3, self.mixtures))
        logmix, mean, logstd = mdn.unbind(-2)
        return MDNOut(F.log_softmax(logmix, dim=-1), mean, logstd, y[..., -2], y[..., -1])

    @staticmethod
    def _inputs(z: Tensor, a: Tensor, restart: Tensor) -> Tensor:
        return torch.cat([z, a.to(z.dtype), restart.to(z.dtype).unsqueeze(-1)], dim=-1)

    @staticmethod
    def _reset(state: State, restart: Tensor) -> State:
        """Zero the state of the batch entries whose ``restart [B]`` is 1."""
        keep = (restart < 0.5).unsqueeze(-1)
        h, c = state
        return torch.where(keep, h, torch.zeros_like(h)), torch.where(keep, c, torch.zeros_like(c))

    def step(
        self, z: Tensor, a: Tensor, restart: Tensor, state: State | None = None
    ) -> tuple[MDNOut, State]:
        """One step: ``z [B, Z]``, ``a [B, A]``, ``restart [B]`` -> (prediction of step t+1 with
        leading dims ``[B]``, new state). ``state`` None means zeros."""
        if state is None:
            state = self.initial(z.shape[0], z.device)
        h, c = self._reset(state, restart)
        x = self._inputs(z, a, restart).unsqueeze(1)
        _, (h, c) = self.lstm(x, (h.unsqueeze(0), c.unsqueeze(0)))
        h, c = h.squeeze(0), c.squeeze(0)
        return self.outputs(h), (h, c)

    def forward(
        self, z: Tensor, a: Tensor, restart: Tensor, state: State | None = None
    ) -> tuple[MDNOut, State]:
        """Sequence: ``z [B, T, Z]``, ``a [B, T, A]``, ``restart [B, T]`` -> (predictions with
        leading dims ``[B, T]``, final state); equal to a loop of `step`.

        The sequence is cut before every step at which some batch entry restarts; each piece is
        one cuDNN-able ``nn.LSTM`` call (a single call when restarts occur only at t = 0).
        """
        B, T = z.shape[:2]
        if state is None:
            state = self.initial(B, z.device)
        x = self._inputs(z, a, restart)
        resets = restart > 0.5
        cuts = (torch.nonzero(resets[:, 1:].any(dim=0)).flatten() + 1).tolist()
        bounds = [0, *cuts, T]
        hs = []
        for s, e in zip(bounds[:-1], bounds[1:]):
            h, c = self._reset(state, resets[:, s].to(z.dtype))
            out, (h, c) = self.lstm(x[:, s:e], (h.unsqueeze(0), c.unsqueeze(0)))
            state = h.squeeze(0), c.squeeze(0)
            hs.append(out)
        return self.outputs(torch.cat(hs, dim=1)), state


def mdn_nll(out: MDNOut, target_z: Tensor) -> Tensor:
    """Negative log-likelihood of ``target_z [..., Z]`` under each dimension's own mixture,
    -log sum_k pi_k N(z; mu_k, sigma_k), shape ``[..., Z]`` (reference ``get_lossfunc``; the
    reference averages it over dims, steps and batch)."""
    y = target_z.unsqueeze(-1)
    log_normal = -0.5 * ((y - out.mean) * torch.exp(-out.logstd)).square() - out.logstd
    return -torch.logsumexp(out.logmix + log_normal - _LOG_SQRT_2PI, dim=-1)


def done_loss(logit: Tensor, target: Tensor, factor: float = 10.0) -> Tensor:
    """Sigmoid BCE per element, weighted 1 + target * (factor - 1) so that the rare episode end
    counts ``factor`` times (the reference's ``restart_factor``); same shape as ``logit``."""
    target = target.to(logit.dtype)
    bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    return bce * (1.0 + target * (factor - 1.0))


def done_prob(out: MDNOut) -> Tensor:
    """P(episode ends) ``[...]``."""
    return torch.sigmoid(out.done_logit)


def sample_z(
    out: MDNOut,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    repeat: int = 1,
) -> Tensor:
    """Sample z ``[..., Z]`` from the mixtures (reference ``DoomCoverRNNEnv``): per latent
    dimension a component k ~ softmax(logmix / temperature), then
    z = mean_k + exp(logstd_k) * eps * sqrt(temperature), eps ~ N(0, 1).

    The component is drawn with the Gumbel-max trick; ``temperature == 0`` returns the mean of
    the most likely component. Random numbers come from ``generator`` where given. ``repeat``
    > 1 draws them for the first ``N / repeat`` rows and repeats that block ``repeat`` times
    along dim 0 (common random numbers: row i gets the draws of row i mod N / repeat).
    """
    logmix, mean, logstd = out.logmix, out.mean, out.logstd
    if temperature <= 0.0:
        k = logmix.argmax(dim=-1, keepdim=True)
        return mean.gather(-1, k).squeeze(-1)
    kw = {"generator": generator, "device": mean.device, "dtype": mean.dtype}
    u = repeated(torch.rand, logmix.shape, repeat, **kw).clamp(min=torch.finfo(mean.dtype).tiny)
    k = (logmix / temperature - torch.log(-torch.log(u))).argmax(dim=-1, keepdim=True)
    mu, ls = mean.gather(-1, k).squeeze(-1), logstd.gather(-1, k).squeeze(-1)
    eps = repeated(torch.randn, mu.shape, repeat, **kw)
    return mu + torch.exp(ls) * eps * math.sqrt(temperature)


def repeated(draw, shape: tuple[int, ...] | torch.Size, repeat: int = 1, **kw) -> Tensor:
    """``draw(shape, **kw)`` (torch.rand, torch.randn, ...) with the first ``shape[0] / repeat``
    rows drawn and that block repeated ``repeat`` times along dim 0."""
    shape = tuple(shape)
    if shape[0] % repeat:
        raise ValueError(f"{shape[0]} rows are not {repeat} equal blocks")
    block = draw((shape[0] // repeat, *shape[1:]), **kw)
    return block if repeat == 1 else block.repeat(repeat, *[1] * (len(shape) - 1))
