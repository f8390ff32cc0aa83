"""Dreamer's world model (encoder, RSSM, decoders, reward and continue heads), its KL loss for
every Dreamer version, and the actor network (Hafner et al. 2020, 2021, 2025)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..envs.base import ActionSpace, Spec
from ..math import BoundedNormal, OneHotCategoricalST, TanhNormal, symlog, unimix_logits
from ..nn import MLP, ConvDecoder, ConvEncoder, Head, image_to_float
from .rssm import RSSM


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder and reward/continue heads (DreamerV3 eq. 1-5)."""

    def __init__(self, m: Any, obs_space: dict[str, Spec], act_dim: int):
        """``m``: a ``WorldModelConfig`` (``agents/dreamer/config.py``; PlaNet's extends it)."""
        super().__init__()
        self.vector_keys = [k for k, s in obs_space.items() if len(s.shape) == 1]
        self.image_keys = [k for k, s in obs_space.items() if len(s.shape) == 3]
        self.image_nll = m.image_decoder
        self.obs_space = obs_space
        embed = 0
        if self.vector_keys:
            vdim = sum(obs_space[k].shape[0] for k in self.vector_keys)
            self.vec_enc = MLP(vdim, m.units, m.enc_layers, m.norm, m.act)
            embed += self.vec_enc.out_dim
        if self.image_keys:
            h, w, _ = obs_space[self.image_keys[0]].shape
            c = sum(obs_space[k].shape[2] for k in self.image_keys)
            self.img_enc = ConvEncoder((h, w, c), m.depth, norm=m.norm, act=m.act)
            embed += self.img_enc.out_dim
        self.rssm = RSSM(
            act_dim,
            embed,
            m.deter,
            m.hidden,
            m.stoch,
            m.classes,
            m.blocks,
            m.unimix,
            m.norm,
            m.act,
            img_layers=m.img_layers,
            latent=m.latent,
            min_std=m.min_std,
            core=m.core,
        )
        feat = self.rssm.feat_dim
        head_units = m.head_units or m.units
        if self.vector_keys:
            self.vec_dec = Head(
                feat, (vdim,), m.vector_decoder, head_units, m.dec_layers, m.norm, m.act
            )
        if self.image_keys:
            self.img_dec = ConvDecoder(feat, (h, w, c), m.depth, norm=m.norm, act=m.act)
        head = dict(units=head_units, layers=m.head_layers, norm=m.norm, act=m.act, bins=m.bins)
        self.reward = Head(feat, (), m.reward_head, **head, outscale=0.0)
        self.cont = Head(feat, (), "binary", **head)

    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """Observations ``[..., *shape]`` -> embedding ``[..., E]`` (vectors are symlog'd)."""
        parts = []
        if self.vector_keys:
            vec = torch.cat([obs[k].float() for k in self.vector_keys], -1)
            parts.append(self.vec_enc(symlog(vec)))
        if self.image_keys:
            parts.append(self.img_enc(torch.cat([obs[k] for k in self.image_keys], -1)))
        return torch.cat(parts, -1)

    def sequence_losses(
        self, data: dict[str, Tensor], action: Tensor, step=None
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, dict[str, Tensor]]:
        """Filter a replayed ``[B, T]`` batch (``action`` a_t as floats ``[B, T, A]``) and score
        its predictions: (posterior, prior stats, a_{t-1} ``[B, T, A]``, per-step losses
        ``{recon_*, reward, cont}`` ``[B, T]``). ``step`` replaces the RSSM's posterior step."""
        obs = {k: data[k] for k in self.obs_space}
        prev_action = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
        is_first = data["is_first"].bool()
        post, prior = self.rssm.observe(self.encode(obs), prev_action, is_first, step=step)
        feat = self.rssm.feat(post)
        losses = self.recon_loss(feat, obs)
        losses["reward"] = self.reward(feat).loss(data["reward"].float())
        losses["cont"] = self.cont(feat).loss(1.0 - data["is_terminal"].float())
        return post, prior, prev_action, losses

    @torch.no_grad()
    def open_loop(self, data: dict[str, Tensor], action: Tensor, context: int) -> dict[str, Tensor]:
        """Observe the first ``context`` steps of ``[B, T]`` windows, then imagine the rest under
        the recorded actions ``[B, T, A]`` (floats): the decoded observations ``[B, T, ...]``,
        posterior reconstructions for t < context and open-loop predictions after (Hafner et
        al.'s open-loop videos). Images come back uint8 ``[B, T, H, W, C]``."""
        obs = {k: data[k][:, :context] for k in self.obs_space}
        prev_action = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
        is_first = data["is_first"][:, :context].bool()
        post, _ = self.rssm.observe(self.encode(obs), prev_action[:, :context], is_first)
        state = {k: v[:, -1] for k, v in post.items() if k in ("deter", "stoch")}
        deters, stochs = [post["deter"]], [post["stoch"]]
        for t in range(context, action.shape[1]):
            state = self.rssm.img_step(state, prev_action[:, t])
            deters.append(state["deter"][:, None])
            stochs.append(state["stoch"][:, None])
        feat = self.rssm.feat({"deter": torch.cat(deters, 1), "stoch": torch.cat(stochs, 1)})
        out = {}
        if self.vector_keys:
            out["vector"] = self.vec_dec(feat).pred().float()
        if self.image_keys:
            img = self.img_dec(feat).float() + 0.5  # [-0.5, 0.5] -> [0, 1]
            out["image"] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        return out

    def imagined_return(self, start: dict[str, Tensor], policy, horizon: int) -> Tensor:
        """Sum of the rewards predicted over ``horizon`` imagined steps from the latent ``start``
        under ``policy`` (latent state -> float action ``[N, A]``), the reward of step t weighted
        by the continue probabilities of the states before it: ``[N]``, undiscounted."""
        state, total, alive = (
            start,
            torch.zeros(len(start["deter"]), device=start["deter"].device),
            1.0,
        )
        for _ in range(horizon):
            state = self.rssm.img_step(state, policy(state))
            feat = self.rssm.feat(state)
            total = total + alive * self.reward(feat).pred().float()
            alive = alive * self.cont(feat).pred().float()
        return total

    def report(self, data: dict[str, Tensor], action: Tensor, context: int) -> dict[str, Any]:
        """:meth:`open_loop` next to the truth as numpy: ``{kind}/real``, ``{kind}/model`` and
        ``{kind}/error`` (absolute difference) for ``kind`` in vector (float32 ``[B, T, D]``)
        and image (uint8 ``[B, T, H, W, C]``)."""
        T = action.shape[1]
        if not 0 < context < T:
            raise ValueError(f"report needs 0 < context < window length {T}, got {context}")
        model = self.open_loop(data, action, context)
        out = {}
        if self.vector_keys:
            out["vector/real"] = torch.cat([data[k].float() for k in self.vector_keys], -1)
        if self.image_keys:
            out["image/real"] = torch.cat([data[k] for k in self.image_keys], -1)
        for kind in model:
            real = out[f"{kind}/real"]
            out[f"{kind}/model"] = model[kind]
            diff = (real.float() - model[kind].float()).abs()
            out[f"{kind}/error"] = diff.to(real.dtype)
        return {k: v.cpu().numpy() for k, v in out.items()}

    def recon_loss(self, feat: Tensor, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Decoder negative log-likelihoods ``[B, T]`` by observation kind."""
        losses = {}
        if self.vector_keys:
            vec = torch.cat([obs[k].float() for k in self.vector_keys], -1)
            losses["recon_vector"] = self.vec_dec(feat).loss(vec)
        if self.image_keys:
            img = image_to_float(torch.cat([obs[k] for k in self.image_keys], -1))
            pred = self.img_dec(feat).float().movedim(-1, -3)
            sse = ((pred - img) ** 2).sum((-3, -2, -1))
            losses["recon_image"] = 0.5 * sse if self.image_nll == "gauss" else sse
        return losses


def kl_loss(
    kind: str,
    kl_fn,
    post: Tensor,
    prior: Tensor,
    *,
    free: float,
    beta_dyn: float = 1.0,
    beta_rep: float = 0.1,
    alpha: float = 0.8,
    scale: float = 1.0,
    per_step: bool | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The KL term of the world-model loss for each Dreamer version: (loss ``[B, T]``, dyn, rep).

    ``kl_fn(lhs, rhs)`` is KL(lhs || rhs) of the latent stats. dyn = KL(sg(post) || prior) trains
    only the prior, rep = KL(post || sg(prior)) only the posterior.

    * ``dyn_rep`` (V3): beta_dyn * max(free, dyn) + beta_rep * max(free, rep), per step.
    * ``balanced`` (V2): scale * (alpha * max(free, mean dyn) + (1 - alpha) * max(free, mean rep)),
      free nats on the batch means as the V2 code (``free_avg``); returned broadcast to ``[B, T]``.
    * ``elbo`` (PlaNet, V1): scale * max(free, mean KL(post || prior)), gradient to both.

    ``per_step`` moves the free-nats clamp: True clamps each step's KL before any mean (PlaNet's
    code), False clamps the batch means; None keeps each kind's placement above.
    """
    if per_step is None:
        per_step = kind == "dyn_rep"

    def floor(x: Tensor) -> Tensor:  # the free-nats clamp, returned [B, T]
        return x.clamp(min=free) if per_step else x.mean().clamp(min=free).expand_as(x)

    if kind == "elbo":
        kl = kl_fn(post, prior)  # dyn and rep have the same value; one KL serves all three
        return scale * floor(kl), kl, kl
    dyn = kl_fn(post.detach(), prior)
    rep = kl_fn(post, prior.detach())
    if kind == "dyn_rep":
        loss = beta_dyn * floor(dyn) + beta_rep * floor(rep)
    elif kind == "balanced":
        loss = scale * (alpha * floor(dyn) + (1 - alpha) * floor(rep))
    else:
        raise ValueError(f"unknown kl {kind!r}; use dyn_rep, balanced or elbo")
    return loss, dyn, rep


class Actor(nn.Module):
    """pi(a_t | s_t): unimix categorical (discrete) or bounded normal (continuous)."""

    def __init__(
        self,
        feat: int,
        act_space: ActionSpace,
        *,
        units: int,
        layers: int,
        norm: str,
        act: str,
        unimix: float,
        min_std: float,
        max_std: float,
        dist_cont: str,
    ):
        super().__init__()
        self.discrete, self.n = act_space.discrete, act_space.n
        self.unimix, self.min_std, self.max_std = unimix, min_std, max_std
        self.dist_cont = dist_cont
        self.mlp = MLP(feat, units, layers, norm, act)
        self.out = nn.Linear(self.mlp.out_dim, self.n if self.discrete else 2 * self.n)
        nn.init.trunc_normal_(self.out.weight, std=0.01 / self.mlp.out_dim**0.5)
        nn.init.zeros_(self.out.bias)

    def forward(self, feat: Tensor):
        return self.dist(self.raw(feat))

    def raw(self, feat: Tensor) -> Tensor:
        """The network's output ``[..., n]`` (discrete) or ``[..., 2n]`` (mean, std), float32."""
        return self.out(self.mlp(feat)).float()

    def dist(self, x: Tensor):
        """The action distribution of raw outputs ``x`` (as ``raw`` returns them)."""
        if self.discrete:
            return OneHotCategoricalST(unimix_logits(x, self.unimix))
        mean, std = x.chunk(2, -1)
        if self.dist_cont == "tanh_normal":
            return TanhNormal(mean, std)
        return BoundedNormal(mean, std, self.min_std, self.max_std)
