"""The Dreamer agent: world model + actor-critic learned in imagination (DreamerV3)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...envs.base import ActionSpace, Spec
from ...errors import UserError
from ...math import (
    BoundedNormal,
    OneHotCategoricalST,
    PercentileNormalizer,
    TanhNormal,
    discount_weights,
    ema_update,
    hard_update,
    lambda_return,
    replay_lambda_return,
    symlog,
    unimix_logits,
)
from ...models.rssm import RSSM
from ...nn import MLP, ConvDecoder, ConvEncoder, Head, image_to_float
from ...nn.compile import MaybeCompiled
from ...nn.graphs import ActSteps, GraphedStep, set_capturable
from ...nn.optim import LaPropAGC
from ...nn.precision import Precision
from .config import DreamerConfig


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder and reward/continue heads (DreamerV3 eq. 1-5)."""

    def __init__(self, cfg: DreamerConfig, obs_space: dict[str, Spec], act_dim: int):
        super().__init__()
        m = cfg.model
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

    def __init__(self, feat: int, act_space: ActionSpace, cfg: DreamerConfig):
        super().__init__()
        b, m = cfg.behavior, cfg.model
        self.discrete, self.n = act_space.discrete, act_space.n
        self.unimix, self.min_std, self.max_std = b.unimix, b.min_std, b.max_std
        self.dist_cont = b.actor_dist_cont
        self.mlp = MLP(feat, b.units, b.layers, m.norm, m.act)
        self.out = nn.Linear(self.mlp.out_dim, self.n if self.discrete else 2 * self.n)
        nn.init.trunc_normal_(self.out.weight, std=0.01 / self.mlp.out_dim**0.5)
        nn.init.zeros_(self.out.bias)

    def forward(self, feat: Tensor):
        x = self.out(self.mlp(feat)).float()
        if self.discrete:
            return OneHotCategoricalST(unimix_logits(x, self.unimix))
        mean, std = x.chunk(2, -1)
        if self.dist_cont == "tanh_normal":
            return TanhNormal(mean, std)
        return BoundedNormal(mean, std, self.min_std, self.max_std)


class DreamerAgent:
    """DreamerV3 (Hafner et al. 2023/2025): the Agent protocol of shared/DESIGN.md."""

    name = "dreamer"

    def __init__(
        self,
        config: DreamerConfig,
        obs_space: dict[str, Spec],
        act_space: ActionSpace,
        device: torch.device | str = "cpu",
    ):
        self.config, self.obs_space, self.act_space = config, obs_space, act_space
        self.device = torch.device(device)
        graphs = self._graphs = config.run.cuda_graphs and self.device.type == "cuda"
        self.precision = Precision(config.run.precision, self.device, cache=not graphs)
        self.act_dim = act_space.n if act_space.discrete else act_space.shape[0]
        self.wm = WorldModel(config, obs_space, self.act_dim).to(self.device)
        feat = self.wm.rssm.feat_dim
        b, m, o = config.behavior, config.model, config.optim
        self.actor = Actor(feat, act_space, config).to(self.device)
        self._check_axes(config)
        outscale = 0.0 if b.critic_head == "symexp_twohot" else 1.0
        self.critic = Head(
            feat, (), b.critic_head, b.units, b.layers, m.norm, m.act, m.bins, outscale=outscale
        ).to(self.device)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = PercentileNormalizer(
            b.retnorm_low, b.retnorm_high, b.retnorm_decay, b.retnorm_limit
        ).to(self.device)
        if o.optimizer == "laprop":
            laprop = dict(lr=o.lr, agc=o.agc, eps=o.laprop_eps, warmup=o.warmup)
            self.model_opt = LaPropAGC(self.wm.parameters(), **laprop)
            self.actor_opt = LaPropAGC(self.actor.parameters(), **laprop)
            self.critic_opt = LaPropAGC(self.critic.parameters(), **laprop)
        else:
            # capturable: the step count lives on the device, so a CUDA graph replays Adam right
            cap = dict(capturable=graphs)
            self.model_opt = torch.optim.Adam(
                self.wm.parameters(), o.model_lr, eps=o.model_eps, **cap
            )
            self.actor_opt = torch.optim.Adam(
                self.actor.parameters(), o.actor_lr, eps=o.ac_eps, **cap
            )
            self.critic_opt = torch.optim.Adam(
                self.critic.parameters(), o.critic_lr, eps=o.ac_eps, **cap
            )
        self.updates = 0
        grad = b.actor_grad
        if grad == "auto":
            grad = "reinforce" if act_space.discrete else b.actor_grad_cont
        self.actor_grad = grad
        self.entropy_scale = (
            b.entropy if act_space.discrete or b.entropy_cont is None else b.entropy_cont
        )
        self._imag_step = MaybeCompiled(self._imag_step_eager, config.run.compile)
        self._obs_step = MaybeCompiled(self.wm.rssm.observe_step, config.run.compile)
        self._imag_heads = MaybeCompiled(self._imag_heads_eager, config.run.compile)
        self._step = GraphedStep(self._update_tensors, config.run.cuda_graphs)
        self._act_steps = ActSteps(self._act_tensors, config.run.cuda_graphs)

    @staticmethod
    def _check_axes(cfg: DreamerConfig) -> None:
        """Reject axis combinations that make no sense, with one line naming the fix."""
        b, m = cfg.behavior, cfg.model
        if b.critic_target == "online" and (b.slow_reg > 0 or b.slow_target):
            raise UserError(
                "behavior.critic_target=online has no slow critic, but behavior.slow_reg="
                f"{b.slow_reg:g} / slow_target={b.slow_target} use one; fix: set "
                "behavior.slow_reg=0 and behavior.slow_target=false, or critic_target=ema|hard"
            )
        if not 0.0 <= b.actor_grad_mix <= 1.0:
            raise UserError(f"behavior.actor_grad_mix={b.actor_grad_mix} must be in [0, 1]")
        if not 0.0 <= m.kl_alpha <= 1.0:
            raise UserError(f"model.kl_alpha={m.kl_alpha} must be in [0, 1]")
        if cfg.run.cuda_graphs and cfg.optim.optimizer != "adam":
            raise UserError(
                "run.cuda_graphs needs optim.optimizer=adam (LaProp counts its steps in Python, "
                "which a CUDA graph would freeze); fix: set optim.optimizer=adam or "
                "run.cuda_graphs=false"
            )

    def _clip(self, norm: float) -> float:
        """Global-norm clip of the Adam setting; LaProp clips per tensor (AGC) instead."""
        return norm if self.config.optim.optimizer == "adam" else float("inf")

    def _imag_heads_eager(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Imagined features ``[N, H+1, F]`` -> reward, continue ``[N, H]``, value ``[N, H+1]``."""
        after = feat[:, 1:].contiguous()  # one copy, not one per head
        reward = self.wm.reward(after).pred()
        cont = self.wm.cont(after).pred()
        critic = self.slow_critic if self.config.behavior.slow_target else self.critic
        return reward, cont, critic(feat).pred()

    def _imag_step_eager(self, deter: Tensor, stoch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One imagined step: a_t ~ pi(s_t), then s_{t+1} ~ p(. | s_t, a_t) -> a_t, h, z."""
        rssm = self.wm.rssm
        state = {"deter": deter, "stoch": stoch}
        action = self.actor(rssm.feat(state)).sample()
        nxt = rssm.img_step(state, action)
        return action, nxt["deter"], nxt["stoch"]

    # Acting
    def init_state(self, batch_size: int) -> dict[str, Tensor]:
        """Latent state and previous action for ``batch_size`` environments."""
        state = self.wm.rssm.initial(batch_size, self.device)
        state["action"] = torch.zeros(batch_size, self.act_dim, device=self.device)
        return state

    def _obs_tensors(self, obs: dict[str, np.ndarray]) -> dict[str, Tensor]:
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.obs_space}

    @torch.no_grad()
    def act(
        self, state: dict[str, Tensor], obs: dict[str, np.ndarray], mode: str = "explore"
    ) -> tuple[dict[str, Tensor], np.ndarray, dict[str, Any]]:
        """One filtering step and an action per env: obs ``[N, ...]`` -> actions ``[N, ...]``.

        ``mode='explore'`` samples the actor, ``'eval'`` takes its mode (greedy).
        """
        with self.precision():
            return self._act(state, obs, mode)

    def _act_tensors(self, inputs: dict[str, Tensor], mode: str) -> dict[str, Tensor]:
        """Filtering step and action on device tensors (CUDA-graph safe): the new latent state
        and action ``{deter, stoch, action}``."""
        state = {k: inputs[f"state/{k}"] for k in ("deter", "stoch")}
        obs = {k[4:]: v for k, v in inputs.items() if k.startswith("obs/")}
        embed = self.wm.encode(obs)
        latent = self.wm.rssm.obs_step(state, inputs["state/action"], embed, inputs["is_first"])
        dist = self.actor(self.wm.rssm.feat(latent))
        action = dist.sample() if mode == "explore" else dist.mode()
        noise = self.config.behavior.expl_noise
        if mode == "explore" and noise > 0 and not self.act_space.discrete:
            action = (action + noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return {"deter": latent["deter"], "stoch": latent["stoch"], "action": action}

    def _act(self, state, obs, mode):
        inputs = {f"obs/{k}": v for k, v in self._obs_tensors(obs).items()}
        inputs["is_first"] = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device).bool()
        inputs.update({f"state/{k}": state[k] for k in ("deter", "stoch", "action")})
        new_state = self._act_steps(inputs, mode)  # one CUDA graph per mode and env count
        action = new_state["action"]
        if self.act_space.discrete:
            out = action.argmax(-1).cpu().numpy().astype(np.int64)
        else:
            out = action.cpu().numpy().astype(np.float32)
        return new_state, out, {}

    def _action_tensor(self, action: np.ndarray | Tensor) -> Tensor:
        action = torch.as_tensor(action, device=self.device)
        if self.act_space.discrete:
            return nn.functional.one_hot(action.long(), self.act_dim).float()
        return action.float()

    # Learning
    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One gradient step of world model, actor and critic on a ``[B, T]`` replay batch."""
        with self.precision():
            return self._update(batch)

    def _update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        data["action"] = self._action_tensor(data["action"])
        metrics = self._step(data)  # one CUDA graph with run.cuda_graphs, else eager
        self.updates += 1
        b = self.config.behavior
        if b.critic_target == "hard" and self.updates % b.slow_critic_every == 0:
            hard_update(self.slow_critic, self.critic)  # a Python schedule: outside the graph
        return {k: float(v) for k, v in metrics.items()}

    def _update_tensors(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """World model, actor and critic steps on a ``[B, T]`` batch of device tensors (actions
        as floats); metrics stay tensors and nothing reads back to the host (CUDA-graph safe)."""
        for opt in self.optimizers().values():  # no gradient buffer outlives a step (see
            opt.zero_grad(set_to_none=True)  # nn/graphs.py); dynamics gradients reach the critic
        metrics: dict[str, Tensor] = {}
        post, wm_metrics = self._train_world_model(data)
        metrics.update(wm_metrics)
        start = {k: v.detach().reshape(-1, *v.shape[2:]) for k, v in post.items()}
        start_cont = (1.0 - data["is_terminal"].float()).reshape(-1)
        metrics.update(self._train_behavior(start, start_cont, data))
        return metrics

    def _train_world_model(self, data: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict]:
        """World-model step; ``data["action"]`` holds float actions (one-hot if discrete)."""
        m, o = self.config.model, self.config.optim
        post, prior, _, losses = self.wm.sequence_losses(data, data["action"], step=self._obs_step)
        kl, dyn, rep = kl_loss(
            m.kl,
            self.wm.rssm.kl,
            post["stats"],
            prior,
            free=m.free_bits,
            beta_dyn=m.beta_dyn,
            beta_rep=m.beta_rep,
            alpha=m.kl_alpha,
            scale=m.kl_scale,
            per_step=m.free_per_step,
        )
        pred = sum(losses.values())
        total = (m.beta_pred * pred + kl).mean()
        self.model_opt.zero_grad(set_to_none=True)
        total.backward()
        gnorm = nn.utils.clip_grad_norm_(self.wm.parameters(), self._clip(o.model_clip))
        self.model_opt.step()
        metrics = {f"loss/{k}": v.mean().detach() for k, v in losses.items()}
        metrics.update({"loss/dyn": dyn.mean().detach(), "loss/rep": rep.mean().detach()})
        metrics.update({"loss/model": total.detach(), "grad/model": gnorm})
        ent = self.wm.rssm.dist(post["stats"]).entropy().mean().detach()
        metrics["post_entropy"] = ent
        return post, metrics

    def _imagine(self, start: dict[str, Tensor], horizon: int, grad: bool):
        """Roll the actor out in the model: features ``[N, H+1, F]``, actions ``[N, H+1, A]``."""
        rssm = self.wm.rssm
        deter, stoch = start["deter"], start["stoch"]
        deters, stochs, actions = [deter], [stoch], []
        with torch.set_grad_enabled(grad):
            for _ in range(horizon):
                action, deter, stoch = self._imag_step(deter, stoch)
                actions.append(action)
                deters.append(deter)
                stochs.append(stoch)
            feat = rssm.feat({"deter": torch.stack(deters, 1), "stoch": torch.stack(stochs, 1)})
            actions.append(self.actor(feat[:, -1]).sample())
        return feat, torch.stack(actions, 1)

    def _train_behavior(
        self, start: dict[str, Tensor], start_cont: Tensor, replay: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Actor and critic step on imagined rollouts from the ``[B*T]`` replayed posteriors
        ``start``; ``replay`` (the ``[B, T]`` batch) feeds the replayed value loss."""
        b, o = self.config.behavior, self.config.optim
        grad = self.actor_grad in ("dynamics", "mix")  # backprop through the imagined rollout
        wm_params = list(self.wm.parameters())
        if grad:
            for p in wm_params:
                p.requires_grad_(False)
        try:
            feat, action = self._imagine(start, b.horizon, grad=grad)
            with torch.set_grad_enabled(grad):
                reward, cont, value = self._imag_heads(feat)
        finally:
            if grad:
                for p in wm_params:
                    p.requires_grad_(True)
        ret = lambda_return(reward, cont, value, b.gamma, b.lam)  # [N, H]
        weight = discount_weights(b.gamma * cont, 1.0).detach() * start_cont[:, None]  # [N, H+1]
        if b.retnorm == "percentile":
            self.retnorm.update(ret.detach())
            scale, offset = self.retnorm.scale(), self.retnorm.offset()
        else:
            scale, offset = torch.ones((), device=ret.device), torch.zeros((), device=ret.device)
        metrics: dict[str, Tensor] = {}

        # Actor: REINFORCE with the critic as baseline, dynamics backprop, or DreamerV2's mix
        before = feat[:, :-1].detach().contiguous()  # s_0..s_{H-1}, shared by actor and critic
        policy = self.actor(before)
        objs = {}
        if self.actor_grad in ("dynamics", "mix"):
            objs["dynamics"] = (ret - offset) / scale
        if self.actor_grad in ("reinforce", "mix"):
            adv = (ret - value[:, :-1]).detach() / scale
            objs["reinforce"] = policy.log_prob(action[:, :-1].detach()) * adv
        if self.actor_grad == "mix":
            rho = b.actor_grad_mix
            actor_obj = rho * objs["reinforce"] + (1 - rho) * objs["dynamics"]
        else:
            actor_obj = objs[self.actor_grad]
        entropy = policy.entropy()
        actor_loss = -(weight[:, :-1] * (actor_obj + self.entropy_scale * entropy)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        metrics["grad/actor"] = nn.utils.clip_grad_norm_(
            self.actor.parameters(), self._clip(o.ac_clip)
        )
        self.actor_opt.step()

        # Critic: regress the lambda-return; V3 also regularises towards the slow critic
        dist = self.critic(before)
        critic_loss = dist.loss(ret.detach())
        if b.slow_reg > 0:
            with torch.no_grad():
                slow = self.slow_critic(before).pred()
            critic_loss = critic_loss + b.slow_reg * dist.loss(slow)
        critic_loss = (weight[:, :-1] * critic_loss).mean()
        if b.repval > 0 and replay is not None:
            repval = self._repval_loss(before[:, 0], ret[:, 0].detach(), replay)
            metrics["loss/repval"] = repval.detach()
            critic_loss = critic_loss + b.repval * repval
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        metrics["grad/critic"] = nn.utils.clip_grad_norm_(
            self.critic.parameters(), self._clip(o.ac_clip)
        )
        self.critic_opt.step()
        if b.critic_target == "ema":
            ema_update(self.slow_critic, self.critic, 1.0 - b.slow_critic_rate)
        # critic_target=hard: the copy every slow_critic_every updates is done by _update

        metrics.update(
            {
                "loss/actor": actor_loss.detach(),
                "loss/critic": critic_loss.detach(),
                "actor_entropy": entropy.mean().detach(),
                "imag_return": ret.mean().detach(),
                "imag_reward": reward.mean().detach(),
                "retnorm_scale": scale.detach(),
            }
        )
        return metrics

    def _repval_loss(self, feat: Tensor, boot: Tensor, replay: dict[str, Tensor]) -> Tensor:
        """Nature 2025 replayed value loss: the critic at the replayed posteriors ``feat``
        ``[B*T, F]`` regresses lambda-returns over replayed rewards bootstrapped with the imagined
        returns ``boot`` ``[B*T]``, plus the slow-critic regulariser; one scalar."""
        b = self.config.behavior
        B, T = replay["reward"].shape
        ret, valid = replay_lambda_return(
            replay["reward"],
            replay["is_terminal"],
            replay["is_last"],
            replay["is_first"],
            boot.reshape(B, T),
            b.gamma,
            b.lam,
        )
        feat = feat.reshape(B, T, -1)[:, :-1]
        dist = self.critic(feat)
        loss = dist.loss(ret)
        if b.slow_reg > 0:
            with torch.no_grad():
                slow = self.slow_critic(feat).pred()
            loss = loss + b.slow_reg * dist.loss(slow)
        return (valid * loss).mean()

    # Persistence
    def modules(self) -> dict[str, nn.Module]:
        return {
            "wm": self.wm,
            "actor": self.actor,
            "critic": self.critic,
            "slow_critic": self.slow_critic,
            "retnorm": self.retnorm,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            "model_opt": self.model_opt,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
        }

    def state_dict(self) -> dict:
        """Everything a resume needs: weights, optimiser states, normaliser, counters."""
        out: dict[str, Any] = {k: m.state_dict() for k, m in self.modules().items()}
        out.update({k: o.state_dict() for k, o in self.optimizers().items()})
        out["updates"] = self.updates
        return out

    def load_state_dict(self, d: dict) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(d[k])
        for k, o in self.optimizers().items():
            o.load_state_dict(d[k])
            set_capturable(o, self._graphs)
        self.updates = int(d["updates"])
