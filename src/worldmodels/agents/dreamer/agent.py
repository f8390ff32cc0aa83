"""The Dreamer agent: world model + actor-critic learned in imagination (DreamerV3)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...core import AgentBase, Step, Update, check_stop
from ...envs.base import ActionSpace, Spec
from ...errors import UserError
from ...math import (
    PercentileNormalizer,
    clip_action,
    discount_weights,
    ema_update,
    hard_update,
    lambda_return,
    replay_lambda_return,
)
from ...models.dreamer import Actor, WorldModel, kl_loss
from ...nn import Head
from ...nn.compile import MaybeCompiled
from ...nn.optim import LaPropAGC, step_if_finite
from ...nn.precision import Precision
from .config import DreamerConfig


class DreamerAgent(AgentBase):
    """Dreamer V1/V2/V3 (Hafner et al. 2020, 2021, 2025) as one agent of config axes."""

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
        self.precision = Precision(config.precision, self.device)
        self.act_dim = act_space.n if act_space.discrete else act_space.shape[0]
        self.wm = WorldModel(config.model, obs_space, self.act_dim).to(self.device)
        feat = self.wm.rssm.feat_dim
        b, m, o = config.behavior, config.model, config.optim
        self.actor = Actor(
            feat,
            act_space,
            units=b.units,
            layers=b.layers,
            norm=m.norm,
            act=m.act,
            unimix=b.unimix,
            min_std=b.min_std,
            max_std=b.max_std,
            dist_cont=b.actor_dist_cont,
        ).to(self.device)
        self._check_axes(config)
        outscale = 0.0 if b.critic_head == "symexp_twohot" else 1.0
        self.critic = Head(
            feat, (), b.critic_head, b.units, b.layers, m.norm, m.act, m.bins, outscale=outscale
        ).to(self.device)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = PercentileNormalizer(
            b.retnorm_low, b.retnorm_high, b.retnorm_decay, b.retnorm_limit, b.retnorm_debias
        ).to(self.device)
        if o.optimizer == "laprop":
            laprop = dict(lr=o.lr, agc=o.agc, eps=o.laprop_eps, warmup=o.warmup)
            self.model_opt = LaPropAGC(self.wm.parameters(), **laprop)
            self.actor_opt = LaPropAGC(self.actor.parameters(), **laprop)
            self.critic_opt = LaPropAGC(self.critic.parameters(), **laprop)
        else:
            self.model_opt = torch.optim.Adam(self.wm.parameters(), o.model_lr, eps=o.model_eps)
            self.actor_opt = torch.optim.Adam(self.actor.parameters(), o.actor_lr, eps=o.ac_eps)
            self.critic_opt = torch.optim.Adam(self.critic.parameters(), o.critic_lr, eps=o.ac_eps)
        self.updates = 0
        grad = b.actor_grad
        if grad == "auto":
            grad = "reinforce" if act_space.discrete else b.actor_grad_cont
        self.actor_grad = grad
        self.entropy_scale = (
            b.entropy if act_space.discrete or b.entropy_cont is None else b.entropy_cont
        )
        self._imag_step = MaybeCompiled(self._imag_step_eager, config.compile)
        self._obs_step = MaybeCompiled(self.wm.rssm.observe_step, config.compile)
        self._imag_heads = MaybeCompiled(self._imag_heads_eager, config.compile)

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

    def _clip(self, norm: float) -> float:
        """Global-norm clip of the Adam setting; LaProp clips per tensor (AGC) instead."""
        return norm if self.config.optim.optimizer == "adam" else float("inf")

    def _imag_heads_eager(self, feat: Tensor, last: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Imagined features ``[N, H+1, F]`` -> reward, continue ``[N, H]``, value ``[N, H+1]``,
        or with ``last`` the value of the last state only, ``[N, 1]``."""
        after = feat[:, 1:].contiguous()  # one copy, not one per head
        reward = self.wm.reward(after).pred()
        cont = self.wm.cont(after).pred()
        critic = self.slow_critic if self.config.behavior.slow_target else self.critic
        return reward, cont, critic(feat[:, -1:] if last else feat).pred()

    def _imag_step_eager(
        self, deter: Tensor, stoch: Tensor, through: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One imagined step: a_t ~ pi(sg(s_t)), then s_{t+1} ~ p(. | s_t, clip(a_t)) ->
        (the actor's raw output at s_t, a_t, h_{t+1}, z_{t+1}).

        The actor sees the state without its gradient (every reference: V1 ``self._actor(
        tf.stop_gradient(feat))``, V2, V3 ``self.actor(sg(s))``): dynamics gradients reach the
        actor through the actions only, and only with ``through``; without, the action enters
        the model detached. The raw output keeps the actor's gradient (the actor's loss reuses
        this pass). The returned action is the raw sample, which REINFORCE scores; the model
        receives it clipped to [-1, 1] (``clip_action``, as V3's RSSM)."""
        rssm = self.wm.rssm
        state = {"deter": deter, "stoch": stoch}
        raw = self.actor.raw(rssm.feat(state).detach())
        action = self.actor.dist(raw).sample()
        if not through:
            action = action.detach()
        nxt = rssm.img_step(state, clip_action(action))
        return raw, action, nxt["deter"], nxt["stoch"]

    # Acting
    def init_state(self, batch_size: int) -> dict[str, Tensor]:
        """Latent state and previous action for ``batch_size`` environments."""
        state = self.wm.rssm.initial(batch_size, self.device)
        state["action"] = torch.zeros(batch_size, self.act_dim, device=self.device)
        return state

    def _obs_tensors(self, obs: dict[str, np.ndarray]) -> dict[str, Tensor]:
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.obs_space}

    def _posterior(self, state: dict[str, Tensor], obs: dict[str, np.ndarray]) -> dict:
        """One filtering step: the posterior latent of each env after ``obs``."""
        embed = self.wm.encode(self._obs_tensors(obs))
        is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device).bool()
        return self.wm.rssm.obs_step(state, state["action"], embed, is_first)

    @torch.no_grad()
    def act(self, state: dict[str, Tensor], obs: dict[str, np.ndarray], mode: str) -> Step:
        """One filtering step and an action per env: obs ``[N, ...]`` -> actions ``[N, ...]``.

        ``mode='explore'`` samples the actor, ``'eval'`` takes its mode (greedy).
        """
        with self.precision():
            latent = self._posterior(state, obs)
            dist = self.actor(self.wm.rssm.feat(latent))
            action = dist.sample() if mode == "explore" else dist.mode()
            noise = self.config.behavior.expl_noise
            if not self.act_space.discrete:
                if mode == "explore" and noise > 0:
                    action = action + noise * torch.randn_like(action)
                action = action.clamp(-1.0, 1.0)
        new_state = {"deter": latent["deter"], "stoch": latent["stoch"], "action": action}
        if self.act_space.discrete:
            out = action.argmax(-1).cpu().numpy().astype(np.int64)
        else:
            out = action.cpu().numpy().astype(np.float32)
        return Step(new_state, out, {})

    @torch.no_grad()
    def imagine_return(
        self,
        state: dict[str, Tensor],
        obs: dict[str, np.ndarray],
        horizon: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """The return the model predicts for the greedy actor from ``obs`` (``Imaginer``):
        filter ``obs`` as ``act`` does, then imagine ``horizon`` steps under the actor's mode,
        rewards weighted by the continue head's probabilities: ``[N]``. ``should_stop`` is
        asked before each imagined step (``EvalInterrupted`` when it answers True)."""

        def policy(latent: dict[str, Tensor]) -> Tensor:
            check_stop(should_stop)
            action = self.actor(self.wm.rssm.feat(latent)).mode()
            return action if self.act_space.discrete else action.clamp(-1.0, 1.0)

        with self.precision():
            latent = self._posterior(state, obs)
            start = {"deter": latent["deter"], "stoch": latent["stoch"]}
            return self.wm.imagined_return(start, policy, horizon).cpu().numpy()

    def _action_tensor(self, action: np.ndarray | Tensor) -> Tensor:
        action = torch.as_tensor(action, device=self.device)
        if self.act_space.discrete:
            return nn.functional.one_hot(action.long(), self.act_dim).float()
        return action.float()

    # Learning
    def update(self, batch: dict[str, np.ndarray]) -> Update:
        """One gradient step of world model, actor and critic on a ``[B, T]`` replay batch."""
        with self.precision():
            data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
            data["action"] = self._action_tensor(data["action"])
            metrics = self._update_tensors(data)
        self.updates += 1
        b = self.config.behavior
        if b.critic_target == "hard" and self.updates % b.slow_critic_every == 0:
            hard_update(self.slow_critic, self.critic)
        return Update({k: float(v) for k, v in metrics.items()})

    def _update_tensors(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """World model, actor and critic steps on a ``[B, T]`` batch of device tensors (actions
        as floats); metrics stay tensors until the step ends (no host sync inside)."""
        for opt in self.optimizers().values():  # dynamics gradients reach the critic too
            opt.zero_grad(set_to_none=True)
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
        step_if_finite(self.model_opt, gnorm)
        metrics = {f"loss/{k}": v.mean().detach() for k, v in losses.items()}
        metrics.update({"loss/dyn": dyn.mean().detach(), "loss/rep": rep.mean().detach()})
        metrics.update({"loss/model": total.detach(), "grad/model": gnorm})
        ent = self.wm.rssm.dist(post["stats"]).entropy().mean().detach()
        metrics["post_entropy"] = ent
        return post, metrics

    def _imagine(self, start: dict[str, Tensor], horizon: int, grad: bool):
        """Roll the actor out in the model: features ``[N, H+1, F]`` (s_0..s_H), actions
        ``[N, H, A]`` (a_0..a_{H-1}) and the actor's raw outputs at s_0..s_{H-1} ``[N, H, .]``
        with the actor's gradient. With ``grad``, features and actions carry the gradient of
        the rollout (dynamics backprop; the world model's parameters are frozen by the
        caller); without, only the actor's outputs have one."""
        rssm = self.wm.rssm
        deter, stoch = start["deter"], start["stoch"]
        deters, stochs, actions, raws = [deter], [stoch], [], []
        for _ in range(horizon):
            raw, action, deter, stoch = self._imag_step(deter, stoch, grad)
            raws.append(raw)
            actions.append(action)
            deters.append(deter)
            stochs.append(stoch)
        feat = rssm.feat({"deter": torch.stack(deters, 1), "stoch": torch.stack(stochs, 1)})
        return feat, torch.stack(actions, 1), torch.stack(raws, 1)

    def _train_behavior(
        self, start: dict[str, Tensor], start_cont: Tensor, replay: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Actor and critic step on imagined rollouts from the ``[B*T]`` replayed posteriors
        ``start``; ``replay`` (the ``[B, T]`` batch) feeds the replayed value loss."""
        b, o = self.config.behavior, self.config.optim
        grad = self.actor_grad in ("dynamics", "mix")  # backprop through the imagined rollout
        wm_params = list(self.wm.parameters())
        for p in wm_params:  # the actor's pass in the rollout keeps its graph, the model's not
            p.requires_grad_(False)
        # Without gradients through the rollout, the values of s_0..s_{H-1} for the returns come
        # from the online critic's own pass that its loss needs: one pass over them, not two.
        shared = not grad and not b.slow_target
        try:
            feat, action, raw = self._imagine(start, b.horizon, grad=grad)
            with torch.set_grad_enabled(grad):
                reward, cont, value = self._imag_heads(feat, shared)
        finally:
            for p in wm_params:
                p.requires_grad_(True)
        before = feat[:, :-1].detach().contiguous()  # s_0..s_{H-1}, shared by actor and critic
        dist = self.critic(before)  # its loss below; the actor's step does not change it
        if shared:
            value = torch.cat([dist.pred().detach(), value], 1)
        ret = lambda_return(reward, cont, value, b.gamma, b.lam)  # [N, H]
        weight = discount_weights(b.gamma * cont, 1.0).detach() * start_cont[:, None]  # [N, H+1]
        if b.retnorm == "percentile":
            self.retnorm.update(ret.detach())
            scale, offset = self.retnorm.scale(), self.retnorm.offset()
        else:
            scale, offset = torch.ones((), device=ret.device), torch.zeros((), device=ret.device)
        metrics: dict[str, Tensor] = {}

        # Actor: REINFORCE with the critic as baseline, dynamics backprop, or DreamerV2's mix;
        # pi(. | s_t) is the rollout's own pass of the actor over s_0..s_{H-1}
        policy = self.actor.dist(raw)
        objs = {}
        if self.actor_grad in ("dynamics", "mix"):
            # V3 2023: (ret - lo) / S - (v(s_t) - lo) / S, v keeping its gradient through s_t
            base = value[:, :-1] if b.dynamics_baseline else offset
            objs["dynamics"] = (ret - base) / scale
        if self.actor_grad in ("reinforce", "mix"):
            adv = (ret - value[:, :-1]).detach() / scale
            objs["reinforce"] = policy.log_prob(action.detach()) * adv
        if self.actor_grad == "mix":  # dreamerv2/agent.py: mix * dynamics + (1 - mix) * reinforce
            mix = b.actor_grad_mix
            actor_obj = mix * objs["dynamics"] + (1 - mix) * objs["reinforce"]
        else:
            actor_obj = objs[self.actor_grad]
        entropy = policy.entropy()
        actor_loss = -(weight[:, :-1] * (actor_obj + self.entropy_scale * entropy)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        metrics["grad/actor"] = nn.utils.clip_grad_norm_(
            self.actor.parameters(), self._clip(o.ac_clip)
        )
        step_if_finite(self.actor_opt, metrics["grad/actor"])

        # Critic: regress the lambda-return; V3 also regularises towards the slow critic
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
        step_if_finite(self.critic_opt, metrics["grad/critic"])
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

    # Report
    @torch.no_grad()
    def report(self, batch: dict[str, np.ndarray], context: int = 5) -> dict[str, np.ndarray]:
        """Open-loop predictions on replay windows ``[B, T]``: ``context`` observed steps, then
        the model alone under the recorded actions (``WorldModel.report``)."""
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        with self.precision():
            return self.wm.report(data, self._action_tensor(data["action"]), context)

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
        self.updates = int(d["updates"])
