"""Recurrent state-space model (Hafner et al. 2019-2025) with a categorical stochastic state.

State ``s_t = (h_t, z_t)``: ``deter`` h_t ``[B, D]`` from a (block) GRU and a stochastic ``stoch``
z_t, either ``latent='categorical'``: ``[B, S, K]`` one-hot samples of S categoricals with K classes
(straight-through, ``unimix`` mixed; DreamerV2/V3), or ``latent='gaussian'``: ``[B, S]``
reparameterised samples of a diagonal Gaussian with std = softplus + ``min_std`` (PlaNet, Dreamer
V1). Distribution parameters travel as one ``stats`` tensor: unimix logits ``[..., S, K]`` or
``[..., S, 2]`` (mean, std).

Cores: ``core='blockgru'`` follows DreamerV3 (Nature 2025): deter, stoch and action are each
embedded to ``hidden`` and each of ``blocks`` GRU blocks sees its own slice of deter plus all
embeddings. ``core='gru'`` is the PlaNet/V1/V2 cell: ``x = Dense([z, a])``, then one GRU over
``[x, h]`` (normalised gates when ``norm`` is not none, as DreamerV2's LayerNorm GRU).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..math import MultiOneHotST, categorical_kl, gaussian_kl, unimix_logits, unimix_probs
from ..nn.layers import Dense, make_act, make_norm, trunc_normal_init_

State = dict[str, Tensor]


class DiagNormal:
    """Diagonal Gaussian over the last dim ``[..., S]`` with reparameterised samples."""

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean, std

    def sample(self) -> Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def entropy(self) -> Tensor:
        return (0.5 * math.log(2 * math.pi * math.e) + torch.log(self.std)).sum(-1)


class BlockLinear(nn.Module):
    """``blocks`` independent linear maps over equal slices: ``[..., G*I] -> [..., G*O]``.

    Weights are truncated-normal with std 1 / sqrt(fan_in), fan_in the whole input width by
    default: the reference initialiser's fans of a ``(G, I, O)`` kernel are ``(G*I, G*O)``
    (dreamerv3 ``embodied/jax/nets.py`` ``Initializer.compute_fans``), not the block's ``I``."""

    def __init__(
        self, inp: int, out: int, blocks: int, bias: bool = True, fan_in: int | None = None
    ):
        super().__init__()
        if inp % blocks or out % blocks:
            raise ValueError(f"sizes {inp}, {out} must divide into {blocks} blocks")
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, inp // blocks, out // blocks))
        std = (1.0 / (fan_in or inp)) ** 0.5 / 0.87962566103423978
        nn.init.trunc_normal_(self.weight, 0.0, std, -2 * std, 2 * std)
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if self.blocks == 1:
            y = x @ self.weight[0]
        else:
            lead = x.shape[:-1]
            xg = x.reshape(-1, self.blocks, x.shape[-1] // self.blocks).transpose(0, 1)
            y = torch.bmm(xg, self.weight).transpose(0, 1).reshape(*lead, -1)
        return y + self.bias if self.bias is not None else y


class RSSM(nn.Module):
    """RSSM: ``img_step`` (prior), ``obs_step`` (posterior), ``observe`` over ``[B, T]``."""

    def __init__(
        self,
        action_dim: int,
        embed_dim: int,
        deter: int = 512,
        hidden: int = 64,
        stoch: int = 32,
        classes: int = 4,
        blocks: int = 8,
        unimix: float = 0.01,
        norm: str = "rms",
        act: str = "silu",
        img_layers: int = 2,
        obs_layers: int = 1,
        dyn_layers: int = 1,
        latent: str = "categorical",
        min_std: float = 0.1,
        core: str = "blockgru",
    ):
        super().__init__()
        if latent not in ("categorical", "gaussian"):
            raise ValueError(f"unknown latent {latent!r}; use categorical or gaussian")
        if core not in ("blockgru", "gru"):
            raise ValueError(f"unknown core {core!r}; use blockgru or gru")
        self.deter, self.stoch, self.classes = deter, stoch, classes
        self.blocks, self.unimix = blocks, unimix
        self.latent, self.min_std, self.core_kind = latent, min_std, core
        self.stoch_dim = stoch * classes if latent == "categorical" else stoch
        stats_dim = stoch * classes if latent == "categorical" else 2 * stoch
        self.feat_dim = deter + self.stoch_dim
        if core == "gru":
            self.img_in = Dense(self.stoch_dim + action_dim, hidden, norm, act)
            self.gru = nn.Linear(hidden + deter, 3 * deter, bias=norm == "none")
            self.gru_norm = make_norm(norm, 3 * deter)
            trunc_normal_init_(self.img_in)
            trunc_normal_init_(self.gru)
        else:
            self.dyn_in = nn.ModuleList(
                [
                    Dense(deter, hidden, norm, act),
                    Dense(self.stoch_dim, hidden, norm, act),
                    Dense(action_dim, hidden, norm, act),
                ]
            )
            g = blocks
            # First block layer over [deter_g, x0, x1, x2] for each block g, split into its
            # block-diagonal part on deter and a dense part on the shared embeddings (the same
            # map, without materialising the shared inputs once per block).
            fan = deter + 3 * hidden * g  # the reference's flat input width G * (deter/G + 3H)
            self.dyn_deter = BlockLinear(deter, deter, g, bias=norm == "none", fan_in=fan)
            self.dyn_shared = nn.Linear(3 * hidden, deter, bias=False)
            layers: list[nn.Module] = [make_norm(norm, deter), make_act(act)]
            for _ in range(dyn_layers - 1):
                layers += [BlockLinear(deter, deter, g, bias=norm == "none")]
                layers += [make_norm(norm, deter), make_act(act)]
            self.dyn_hid = nn.Sequential(*layers)
            self.gates = BlockLinear(deter, 3 * deter, g)
            trunc_normal_init_(self.dyn_in)
            std = (1.0 / fan) ** 0.5 / 0.87962566103423978
            nn.init.trunc_normal_(self.dyn_shared.weight, 0.0, std, -2 * std, 2 * std)
        self.prior_net = nn.Sequential(
            *[Dense(deter if i == 0 else hidden, hidden, norm, act) for i in range(img_layers)],
            nn.Linear(hidden, stats_dim),
        )
        # Posterior's first layer on [h_t, e_t], split so the embedding part runs batched over
        # the whole sequence before the sequential loop.
        self.post_deter = nn.Linear(deter, hidden, bias=False)
        self.post_embed = nn.Linear(embed_dim, hidden, bias=norm == "none")
        self.post_net = nn.Sequential(
            make_norm(norm, hidden),
            make_act(act),
            *[Dense(hidden, hidden, norm, act) for i in range(obs_layers - 1)],
            nn.Linear(hidden, stats_dim),
        )
        trunc_normal_init_(self.prior_net)
        trunc_normal_init_(self.post_net)
        for lin in (self.post_deter, self.post_embed):
            std = (1.0 / (deter + embed_dim)) ** 0.5 / 0.87962566103423978
            nn.init.trunc_normal_(lin.weight, 0.0, std, -2 * std, 2 * std)

    # State helpers
    def initial(self, batch_size: int, device: torch.device | None = None) -> State:
        """Zero state ``{deter [B, D], stoch [B, S, K] or [B, S]}``."""
        device = device or self.prior_net[-1].weight.device
        shape = (self.stoch, self.classes) if self.latent == "categorical" else (self.stoch,)
        return {
            "deter": torch.zeros(batch_size, self.deter, device=device),
            "stoch": torch.zeros(batch_size, *shape, device=device),
        }

    def feat(self, state: State) -> Tensor:
        """``[..., D + stoch_dim]`` features for heads and actor."""
        stoch = state["stoch"]
        if self.latent == "categorical":
            stoch = stoch.reshape(*stoch.shape[:-2], -1)
        return torch.cat([state["deter"], stoch], -1)

    def dist(self, stats: Tensor):
        """The latent distribution of ``stats`` (unimix logits ``[..., S, K]`` or
        ``[..., S, 2]`` mean/std): ``.sample()``, ``.mode()``, ``.entropy()`` over ``[...]``."""
        if self.latent == "categorical":
            return MultiOneHotST(stats)
        return DiagNormal(stats[..., 0], stats[..., 1])

    def kl(self, lhs: Tensor, rhs: Tensor) -> Tensor:
        """KL(lhs || rhs) of two latent distributions given by their ``stats``: ``[...]``."""
        if self.latent == "categorical":
            return categorical_kl(lhs, rhs)
        return gaussian_kl(lhs[..., 0], lhs[..., 1], rhs[..., 0], rhs[..., 1])

    def _stats(self, raw: Tensor) -> Tensor:
        raw = raw.float()  # float32 latent statistics under bf16 autocast
        if self.latent == "categorical":
            raw = raw.reshape(*raw.shape[:-1], self.stoch, self.classes)
            return unimix_logits(raw, self.unimix)
        mean, std = raw.chunk(2, -1)
        std = nn.functional.softplus(std) + self.min_std
        return torch.stack([mean, std], -1)

    def _sample(self, raw: Tensor, sample: bool) -> tuple[Tensor, Tensor]:
        """Raw network output -> (stats, sample: one-hot ``[..., S, K]`` or ``[..., S]``)."""
        raw = raw.float()
        if self.latent == "gaussian":
            stats = self._stats(raw)
            dist = self.dist(stats)
            return stats, dist.sample() if sample else dist.mode()
        raw = raw.reshape(*raw.shape[:-1], self.stoch, self.classes)
        probs = unimix_probs(raw, self.unimix)
        logits = torch.log(probs)
        dist = MultiOneHotST(logits, probs)
        return logits, dist.sample() if sample else dist.mode()

    def embed_action(self, action: Tensor) -> Tensor:
        """Action input of the core (batched over time by callers): ``[..., A]`` -> the block
        core's ``[..., hidden]`` embedding, or the clipped action itself for ``core='gru'``."""
        action = action / action.abs().clamp(min=1.0).detach()
        return action if self.core_kind == "gru" else self.dyn_in[2](action)

    # Transitions
    def core(self, deter: Tensor, stoch: Tensor, action: Tensor, embedded: bool = False) -> Tensor:
        """Recurrent step h_t = f(h_{t-1}, z_{t-1}, a_{t-1}); ``[B, D]``."""
        if self.latent == "categorical":
            stoch = stoch.reshape(*stoch.shape[:-2], -1)
        x2 = action if embedded else self.embed_action(action)
        if self.core_kind == "gru":
            x = self.img_in(torch.cat([stoch, x2], -1))
            parts = self.gru_norm(self.gru(torch.cat([x, deter], -1))).float()
            reset, cand, update = parts.chunk(3, -1)
            reset = torch.sigmoid(reset)
            cand = torch.tanh(reset * cand)
            update = torch.sigmoid(update - 1.0)
            return update * cand + (1 - update) * deter
        x0 = self.dyn_in[0](deter)
        x1 = self.dyn_in[1](stoch)
        g = self.blocks
        lead = deter.shape[:-1]
        x = self.dyn_deter(deter) + self.dyn_shared(torch.cat([x0, x1, x2], -1))
        x = self.dyn_hid(x)
        gates = self.gates(x).float().reshape(*lead, g, 3, -1)  # float32 state
        reset, cand, update = gates.unbind(-2)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        d = deter.reshape(*lead, g, -1)
        return (update * cand + (1 - update) * d).reshape(*lead, -1)

    def prior_stats(self, deter: Tensor) -> Tensor:
        """Dynamics predictor p(z_t | h_t): its ``stats``."""
        return self._stats(self.prior_net(deter))

    def post_stats(self, deter: Tensor, embed: Tensor) -> Tensor:
        """Representation q(z_t | h_t, x_t): its ``stats``."""
        return self._stats(self.post_net(self.post_deter(deter) + self.post_embed(embed)))

    def img_step(self, state: State, action: Tensor, sample: bool = True) -> State:
        """Prior step: ``s_{t-1}, a_{t-1} -> s_t`` with z_t from p(z_t | h_t)."""
        deter = self.core(state["deter"], state["stoch"], action)
        stats, stoch = self._sample(self.prior_net(deter), sample)
        return {"deter": deter, "stoch": stoch, "stats": stats}

    def obs_step(
        self,
        state: State,
        action: Tensor,
        embed: Tensor,
        is_first: Tensor,
        sample: bool = True,
        prepared: bool = False,
    ) -> State:
        """Posterior step; state and action are zeroed where ``is_first`` (episode start).

        With ``prepared``, ``action`` is ``embed_action(a * keep)`` and ``embed`` is
        ``post_embed(e)`` (``observe`` computes both for the whole sequence at once).
        """
        keep = (~is_first).to(state["deter"].dtype).unsqueeze(-1)
        if not prepared:
            action = self.embed_action(action * keep)
            embed = self.post_embed(embed)
        stoch_keep = keep.unsqueeze(-1) if self.latent == "categorical" else keep
        deter = self.core(state["deter"] * keep, state["stoch"] * stoch_keep, action, True)
        stats, stoch = self._sample(self.post_net(self.post_deter(deter) + embed), sample)
        return {"deter": deter, "stoch": stoch, "stats": stats}

    def observe_step(
        self, deter: Tensor, stoch: Tensor, action_in: Tensor, embed_in: Tensor, is_first: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Tensor-only prepared posterior step (what ``observe`` loops over; compilable)."""
        out = self.obs_step(
            {"deter": deter, "stoch": stoch}, action_in, embed_in, is_first, prepared=True
        )
        return out["deter"], out["stoch"], out["stats"]

    def observe(
        self,
        embed: Tensor,
        prev_action: Tensor,
        is_first: Tensor,
        state: State | None = None,
        step: Callable[..., tuple[Tensor, Tensor, Tensor]] | None = None,
    ) -> tuple[State, Tensor]:
        """Filter a sequence: embed ``[B, T, E]``, prev_action ``[B, T, A]`` (a_{t-1}),
        is_first ``[B, T]`` -> posterior states ``[B, T, ...]``, prior stats ``[B, T, ...]``.

        ``step`` replaces ``observe_step`` in the loop (e.g. its compiled version).

        Under bf16 autocast the batched parts before and after the loop run in bf16 and the
        loop itself in float32: its steps are matrix products of a few rows, which bf16 does
        not speed up and whose casts cost more than the products (measured on CPU)."""
        B, T = embed.shape[:2]
        if state is None:
            state = self.initial(B, embed.device)
        keep = (~is_first).to(embed.dtype).unsqueeze(-1)
        action_in = self.embed_action(prev_action * keep).float()  # batched over time
        embed_in = self.post_embed(embed).float()
        step = step or self.observe_step
        deter, stoch = state["deter"].float(), state["stoch"].float()
        deters, stochs, stats = [], [], []
        with torch.autocast(embed.device.type, enabled=False):
            for t in range(T):
                deter, stoch, stat = step(
                    deter, stoch, action_in[:, t], embed_in[:, t], is_first[:, t]
                )
                deters.append(deter)
                stochs.append(stoch)
                stats.append(stat)
        post = {
            "deter": torch.stack(deters, 1),
            "stoch": torch.stack(stochs, 1),
            "stats": torch.stack(stats, 1),
        }
        prior = self.prior_stats(post["deter"])  # batched over all steps after the loop
        return post, prior


def overshooting_kl(
    rssm: RSSM,
    post: State,
    prev_action: Tensor,
    is_first: Tensor,
    distance: int,
    free_nats: float = 0.0,
    per_step: bool = False,
) -> Tensor:
    """PlaNet's latent overshooting (Hafner et al. 2019, eq. 7) for distances d = 2..D.

    From every posterior state s_t of ``post`` (``[B, T, ...]``, as returned by ``observe``),
    the prior is rolled d steps open-loop with the replayed actions (``prev_action[:, t]`` is
    a_{t-1}) and compared with the posterior there: KL(sg(q(s_{t+d})) || p(s_{t+d} | s_t)).
    Pairs that cross an episode start are masked out. Returns the mean over d of
    max(free_nats, masked batch mean of the d-step KL), or with ``per_step`` of the masked mean
    of max(free_nats, KL) per pair (PlaNet's code); 0 when D < 2. The d = 1 term is the
    ordinary ELBO KL, left to the caller.
    """
    B, T = prev_action.shape[:2]
    stats = post["stats"].detach()
    deter, stoch = post["deter"], post["stoch"]
    valid = torch.ones(B, T, dtype=torch.bool, device=prev_action.device)
    terms = []
    for d in range(1, min(distance, T - 1) + 1):
        n = T - d  # starts t = 0 .. T-d-1 reach targets t + d = d .. T-1
        state = {"deter": deter[:, :n], "stoch": stoch[:, :n]}
        flat = {k: v.reshape(B * n, *v.shape[2:]) for k, v in state.items()}
        out = rssm.img_step(flat, prev_action[:, d:].reshape(B * n, -1))
        deter = out["deter"].reshape(B, n, -1)
        stoch = out["stoch"].reshape(B, n, *out["stoch"].shape[1:])
        prior = out["stats"].reshape(B, n, *out["stats"].shape[1:])
        valid = valid[:, :n] & ~is_first[:, d:]
        if d == 1:
            continue
        kl = rssm.kl(stats[:, d:], prior)
        mask = valid.to(kl.dtype)
        if per_step:
            kl = kl.clamp(min=free_nats)
        mean = (kl * mask).sum() / mask.sum().clamp(min=1.0)
        terms.append(mean if per_step else mean.clamp(min=free_nats))
    if not terms:
        return prev_action.new_zeros(())
    return torch.stack(terms).mean()
