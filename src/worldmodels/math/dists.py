"""Action and latent distributions with straight-through samples (DreamerV2, DreamerV3)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def softmax(logits: Tensor) -> Tensor:
    """[..., K] -> [..., K] softmax over the last dim.

    Written out because ``torch.softmax`` over a small last dim (K = 4..32, the latent and
    action sizes here) is ~5x slower on CPU than these three elementwise ops (measured).
    """
    e = (logits - logits.detach().amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def log_softmax(logits: Tensor) -> Tensor:
    """[..., K] -> [..., K] normalised log-probabilities (fast for small K, see ``softmax``)."""
    z = logits - logits.detach().amax(-1, keepdim=True)
    return z - z.exp().sum(-1, keepdim=True).log()


def unimix_probs(logits: Tensor, unimix: float) -> Tensor:
    """[..., K] -> [..., K] (1 - unimix) * softmax(logits) + unimix / K (DreamerV3 unimix)."""
    probs = softmax(logits)
    if unimix == 0.0:
        return probs
    return (1.0 - unimix) * probs + unimix / logits.shape[-1]


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """[..., K] -> [..., K] log((1 - unimix) * softmax(logits) + unimix / K) (DreamerV3 unimix)."""
    if unimix == 0.0:
        return logits
    return torch.log(unimix_probs(logits, unimix))


def _xlogx_safe(probs: Tensor, log_probs: Tensor) -> Tensor:
    """[..., K] -> [..., K] probs * log_probs with 0 * log 0 = 0."""
    return torch.where(probs > 0, probs * log_probs, torch.zeros_like(probs))


class OneHotCategoricalST:
    """Categorical over the last dim of logits [..., K] with straight-through one-hot samples.

    Straight-through gradients (Bengio et al. 2013, as in DreamerV2): `sample()` and `mode()`
    return an exact one-hot in the forward pass whose gradient is that of `probs`.
    """

    def __init__(self, logits: Tensor, probs: Tensor | None = None) -> None:
        """``probs``, when the caller has them (e.g. from unimix), must equal softmax(logits)."""
        self._raw = logits
        self._logits: Tensor | None = None
        self._probs: Tensor | None = probs

    @property
    def logits(self) -> Tensor:
        """[..., K] normalised log-probabilities (computed on first use)."""
        if self._logits is None:
            self._logits = log_softmax(self._raw)
        return self._logits

    @property
    def probs(self) -> Tensor:
        """[..., K] probabilities (computed on first use)."""
        if self._probs is None:
            self._probs = softmax(self._raw)
        return self._probs

    @property
    def num_classes(self) -> int:
        """K, the number of categories."""
        return self._raw.shape[-1]

    def _straight_through(self, index: Tensor) -> Tensor:
        """[...] int -> [..., K] one-hot with the gradient of probs."""
        onehot = F.one_hot(index, self.num_classes).to(self.probs.dtype)
        # probs - probs.detach() is exactly zero, so the forward value stays exactly one-hot.
        return onehot + (self.probs - self.probs.detach())

    def sample(self) -> Tensor:
        """[..., K] straight-through one-hot sample."""
        # Inverse-CDF sampling: ~7x faster than torch.multinomial for small K on CPU (measured).
        cdf = self.probs.detach().cumsum(-1)
        u = torch.rand_like(cdf[..., :1]) * cdf[..., -1:]
        index = (u >= cdf).sum(-1).clamp(max=self.num_classes - 1)
        return self._straight_through(index)

    def mode(self) -> Tensor:
        """[..., K] straight-through one-hot of the most likely category."""
        return self._straight_through(self._raw.argmax(-1))

    def log_prob(self, value: Tensor) -> Tensor:
        """[..., K] one-hot -> [...] log-probability."""
        return (value * self.logits).sum(-1)

    def entropy(self) -> Tensor:
        """[...] entropy -sum_k p_k log p_k."""
        return -_xlogx_safe(self.probs, self.logits).sum(-1)


class MultiOneHotST:
    """G independent categoricals over logits [..., G, K] (the DreamerV2/V3 32x32 latent)."""

    def __init__(self, logits: Tensor, probs: Tensor | None = None) -> None:
        self.dist = OneHotCategoricalST(logits, probs)

    @property
    def logits(self) -> Tensor:
        """[..., G, K] normalised log-probabilities."""
        return self.dist.logits

    @property
    def probs(self) -> Tensor:
        """[..., G, K] probabilities."""
        return self.dist.probs

    def sample(self) -> Tensor:
        """[..., G, K] straight-through one-hot samples."""
        return self.dist.sample()

    def mode(self) -> Tensor:
        """[..., G, K] straight-through one-hot of each group's most likely category."""
        return self.dist.mode()

    def log_prob(self, value: Tensor) -> Tensor:
        """[..., G, K] one-hot -> [...] log-probability summed over groups."""
        return self.dist.log_prob(value).sum(-1)

    def entropy(self) -> Tensor:
        """[...] entropy summed over groups."""
        return self.dist.entropy().sum(-1)


def clip_action(x: Tensor) -> Tensor:
    """[...] x / sg(max(1, |x|)): the value clipped to [-1, 1], the gradient scaled by
    1 / max(1, |x|) (DreamerV3 ``rssm.py``: ``action /= sg(jnp.maximum(1, jnp.abs(action)))``)."""
    return x / x.detach().abs().clamp(min=1.0)


class BoundedNormal:
    """DreamerV3 continuous actor: Normal(tanh(mean_raw), std in [min_std, max_std]) over [..., D].

    std = (max_std - min_std) * sigmoid(std_raw + 2) + min_std. Samples are reparameterised and
    not clipped, as in the reference (the env and, through :func:`clip_action`, the model clip
    them): the score function of REINFORCE must be taken at the raw sample to be unbiased.
    """

    def __init__(
        self,
        mean_raw: Tensor,
        std_raw: Tensor,
        min_std: float = 0.1,
        max_std: float = 1.0,
    ) -> None:
        self.mean = torch.tanh(mean_raw)
        self.std = (max_std - min_std) * torch.sigmoid(std_raw + 2.0) + min_std
        self.min_std = min_std
        self.max_std = max_std

    def sample(self) -> Tensor:
        """[..., D] reparameterised sample (unbounded)."""
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        """[..., D] the mean tanh(mean_raw)."""
        return self.mean

    def log_prob(self, value: Tensor) -> Tensor:
        """[..., D] -> [...] Normal log-density summed over D."""
        z = (value - self.mean) / self.std
        return (-0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        """[...] Normal entropy summed over D."""
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std)).sum(-1)


class TanhNormal:
    """Dreamer V1 continuous actor: tanh(Normal(mean, std)) over ``[..., D]``.

    mean = mean_scale * tanh(mean_raw / mean_scale), std = softplus(std_raw + softplus^-1(init_std))
    + min_std (Hafner et al. 2020, defaults 5, 5, 1e-4). Samples are reparameterised. The entropy
    has no closed form: it is estimated from one sample as -log_prob(sample), as in the V1 code.
    """

    def __init__(
        self,
        mean_raw: Tensor,
        std_raw: Tensor,
        mean_scale: float = 5.0,
        init_std: float = 5.0,
        min_std: float = 1e-4,
    ) -> None:
        self.mean = mean_scale * torch.tanh(mean_raw / mean_scale)
        raw_init = math.log(math.expm1(init_std))
        self.std = F.softplus(std_raw + raw_init) + min_std

    def _pre(self) -> Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def sample(self) -> Tensor:
        """[..., D] reparameterised sample in (-1, 1)."""
        return torch.tanh(self._pre())

    def mode(self) -> Tensor:
        """[..., D] tanh(mean) (the V1 code takes the likeliest of 100 samples instead)."""
        return torch.tanh(self.mean)

    def log_prob(self, value: Tensor) -> Tensor:
        """[..., D] -> [...] log density with the tanh change of variables, summed over D."""
        value = value.clamp(-1 + 1e-6, 1 - 1e-6)
        pre = torch.atanh(value)
        z = (pre - self.mean) / self.std
        normal = -0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)
        return (normal - torch.log1p(-(value**2))).sum(-1)

    def entropy(self) -> Tensor:
        """[...] one-sample estimate -log_prob(tanh(x)), x ~ Normal(mean, std)."""
        pre = self._pre()
        z = (pre - self.mean) / self.std
        normal = -0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)
        # log(1 - tanh(x)^2) = 2 * (log 2 - x - softplus(-2x)), stable for large |x|
        log_det = 2.0 * (math.log(2.0) - pre - F.softplus(-2.0 * pre))
        return -(normal - log_det).sum(-1)


def bounded_log_std(raw: Tensor, low: float, high: float) -> Tensor:
    """[...] -> [...] low + (high - low) * (tanh(raw) + 1) / 2 (TD-MPC2 policy log-std bounds)."""
    return low + 0.5 * (high - low) * (torch.tanh(raw) + 1.0)


def squashed_gaussian(mean: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """[..., D] x3 -> (action tanh(mean + exp(log_std) * eps) [..., D], log pi(action) [...]).

    The reparameterised tanh-Gaussian of SAC / TD-MPC2's policy prior: the Gaussian log-density
    of the pre-squash sample minus sum_d log(1 - tanh(u_d)^2), the change of variables (written
    as 2 * (log 2 - u - softplus(-2u)), exact and stable for large |u|).
    """
    u = mean + log_std.exp() * eps
    normal = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return torch.tanh(u), (normal - log_det).sum(-1)
