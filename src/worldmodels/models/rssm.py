"""Recurrent state-space model (Hafner et al. 2019-2025) with a categorical stochastic state.

State ``s_t = (h_t, z_t)``: ``deter`` h_t ``[B, D]`` from a (block) GRU, ``stoch`` z_t ``[B, S, K]``
one-hot samples of S categoricals with K classes (straight-through, ``unimix`` mixed). The core
follows DreamerV3 (Nature 2025): deter, stoch and action are each embedded to ``hidden``, each of
``blocks`` GRU blocks sees its own slice of deter plus all embeddings.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..math import MultiOneHotST, unimix_logits, unimix_probs
from ..nn.layers import Dense, make_act, make_norm, trunc_normal_init_

State = dict[str, Tensor]


class BlockLinear(nn.Module):
    """``blocks`` independent linear maps over equal slices: ``[..., G*I] -> [..., G*O]``."""

    def __init__(self, inp: int, out: int, blocks: int, bias: bool = True):
        super().__init__()
        if inp % blocks or out % blocks:
            raise ValueError(f"sizes {inp}, {out} must divide into {blocks} blocks")
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, inp // blocks, out // blocks))
        std = (1.0 / (inp // blocks)) ** 0.5 / 0.87962566103423978
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
    ):
        super().__init__()
        self.deter, self.stoch, self.classes = deter, stoch, classes
        self.blocks, self.unimix = blocks, unimix
        self.feat_dim = deter + stoch * classes
        self.dyn_in = nn.ModuleList(
            [
                Dense(deter, hidden, norm, act),
                Dense(stoch * classes, hidden, norm, act),
                Dense(action_dim, hidden, norm, act),
            ]
        )
        g = blocks
        # First block layer over [deter_g, x0, x1, x2] for each block g, split into its
        # block-diagonal part on deter and a dense part on the shared embeddings (the same map,
        # without materialising the shared inputs once per block).
        self.dyn_deter = BlockLinear(deter, deter, g, bias=norm == "none")
        self.dyn_shared = nn.Linear(3 * hidden, deter, bias=False)
        layers: list[nn.Module] = [make_norm(norm, deter), make_act(act)]
        for _ in range(dyn_layers - 1):
            layers += [BlockLinear(deter, deter, g, bias=norm == "none"), make_norm(norm, deter)]
            layers += [make_act(act)]
        self.dyn_hid = nn.Sequential(*layers)
        self.gates = BlockLinear(deter, 3 * deter, g)
        self.prior_net = nn.Sequential(
            *[Dense(deter if i == 0 else hidden, hidden, norm, act) for i in range(img_layers)],
            nn.Linear(hidden, stoch * classes),
        )
        # Posterior's first layer on [h_t, e_t], split so the embedding part runs batched over
        # the whole sequence before the sequential loop.
        self.post_deter = nn.Linear(deter, hidden, bias=False)
        self.post_embed = nn.Linear(embed_dim, hidden, bias=norm == "none")
        self.post_net = nn.Sequential(
            make_norm(norm, hidden),
            make_act(act),
            *[Dense(hidden, hidden, norm, act) for i in range(obs_layers - 1)],
            nn.Linear(hidden, stoch * classes),
        )
        trunc_normal_init_(self.dyn_in)
        std = (1.0 / (deter // blocks + 3 * hidden)) ** 0.5 / 0.87962566103423978
        nn.init.trunc_normal_(self.dyn_shared.weight, 0.0, std, -2 * std, 2 * std)
        trunc_normal_init_(self.prior_net)
        trunc_normal_init_(self.post_net)
        for lin in (self.post_deter, self.post_embed):
            std = (1.0 / (deter + embed_dim)) ** 0.5 / 0.87962566103423978
            nn.init.trunc_normal_(lin.weight, 0.0, std, -2 * std, 2 * std)

    # State helpers
    def initial(self, batch_size: int, device: torch.device | None = None) -> State:
        """Zero state ``{deter [B, D], stoch [B, S, K]}``."""
        device = device or self.gates.weight.device
        return {
            "deter": torch.zeros(batch_size, self.deter, device=device),
            "stoch": torch.zeros(batch_size, self.stoch, self.classes, device=device),
        }

    def feat(self, state: State) -> Tensor:
        """``[..., D + S*K]`` features for heads and actor."""
        stoch = state["stoch"]
        return torch.cat([state["deter"], stoch.reshape(*stoch.shape[:-2], -1)], -1)

    def dist(self, logits: Tensor) -> MultiOneHotST:
        """Categorical over ``[..., S, K]`` logits (unimix already applied)."""
        return MultiOneHotST(logits)

    def _logits(self, raw: Tensor) -> Tensor:
        raw = raw.reshape(*raw.shape[:-1], self.stoch, self.classes)
        return unimix_logits(raw, self.unimix)

    def _sample(self, raw: Tensor, sample: bool) -> tuple[Tensor, Tensor]:
        """Raw ``[..., S*K]`` -> (unimix logits, straight-through one-hot ``[..., S, K]``)."""
        raw = raw.reshape(*raw.shape[:-1], self.stoch, self.classes)
        probs = unimix_probs(raw, self.unimix)
        logits = torch.log(probs)
        dist = MultiOneHotST(logits, probs)
        return logits, dist.sample() if sample else dist.mode()

    def embed_action(self, action: Tensor) -> Tensor:
        """``[..., A] -> [..., hidden]`` action input of the core (batched over time by callers)."""
        return self.dyn_in[2](action / action.abs().clamp(min=1.0).detach())

    # Transitions
    def core(self, deter: Tensor, stoch: Tensor, action: Tensor, embedded: bool = False) -> Tensor:
        """Block-GRU step h_t = f(h_{t-1}, z_{t-1}, a_{t-1}); ``[B, D]``."""
        x0 = self.dyn_in[0](deter)
        x1 = self.dyn_in[1](stoch.reshape(*stoch.shape[:-2], -1))
        x2 = action if embedded else self.embed_action(action)
        g = self.blocks
        lead = deter.shape[:-1]
        x = self.dyn_deter(deter) + self.dyn_shared(torch.cat([x0, x1, x2], -1))
        x = self.dyn_hid(x)
        gates = self.gates(x).reshape(*lead, g, 3, -1)
        reset, cand, update = gates.unbind(-2)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        d = deter.reshape(*lead, g, -1)
        return (update * cand + (1 - update) * d).reshape(*lead, -1)

    def prior_logits(self, deter: Tensor) -> Tensor:
        """Dynamics predictor p(z_t | h_t): ``[..., S, K]`` logits."""
        return self._logits(self.prior_net(deter))

    def post_logits(self, deter: Tensor, embed: Tensor) -> Tensor:
        """Representation q(z_t | h_t, x_t): ``[..., S, K]`` logits."""
        return self._logits(self.post_net(self.post_deter(deter) + self.post_embed(embed)))

    def img_step(self, state: State, action: Tensor, sample: bool = True) -> State:
        """Prior step: ``s_{t-1}, a_{t-1} -> s_t`` with z_t from p(z_t | h_t)."""
        deter = self.core(state["deter"], state["stoch"], action)
        logits, stoch = self._sample(self.prior_net(deter), sample)
        return {"deter": deter, "stoch": stoch, "logits": logits}

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
        deter = self.core(state["deter"] * keep, state["stoch"] * keep.unsqueeze(-1), action, True)
        logits, stoch = self._sample(self.post_net(self.post_deter(deter) + embed), sample)
        return {"deter": deter, "stoch": stoch, "logits": logits}

    def observe_step(
        self, deter: Tensor, stoch: Tensor, action_in: Tensor, embed_in: Tensor, is_first: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Tensor-only prepared posterior step (what ``observe`` loops over; compilable)."""
        out = self.obs_step(
            {"deter": deter, "stoch": stoch}, action_in, embed_in, is_first, prepared=True
        )
        return out["deter"], out["stoch"], out["logits"]

    def observe(
        self,
        embed: Tensor,
        prev_action: Tensor,
        is_first: Tensor,
        state: State | None = None,
        step: Callable[..., tuple[Tensor, Tensor, Tensor]] | None = None,
    ) -> tuple[State, Tensor]:
        """Filter a sequence: embed ``[B, T, E]``, prev_action ``[B, T, A]`` (a_{t-1}),
        is_first ``[B, T]`` -> posterior states ``[B, T, ...]``, prior logits ``[B, T, S, K]``.

        ``step`` replaces ``observe_step`` in the loop (e.g. its compiled version)."""
        B, T = embed.shape[:2]
        if state is None:
            state = self.initial(B, embed.device)
        keep = (~is_first).to(embed.dtype).unsqueeze(-1)
        action_in = self.embed_action(prev_action * keep)  # batched over time
        embed_in = self.post_embed(embed)
        step = step or self.observe_step
        deter, stoch = state["deter"], state["stoch"]
        deters, stochs, logits = [], [], []
        for t in range(T):
            deter, stoch, logit = step(
                deter, stoch, action_in[:, t], embed_in[:, t], is_first[:, t]
            )
            deters.append(deter)
            stochs.append(stoch)
            logits.append(logit)
        post = {
            "deter": torch.stack(deters, 1),
            "stoch": torch.stack(stochs, 1),
            "logits": torch.stack(logits, 1),
        }
        prior = self.prior_logits(post["deter"])  # batched over all steps after the loop
        return post, prior
