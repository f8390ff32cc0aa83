"""The TD-MPC2 agent: decoder-free latent model learned by TD, acting by MPPI with a policy prior.

One update (reference `tdmpc2.py` `_update`, Sec. 3.3) on replayed windows o_0..o_H, a_0..a_{H-1}:

    z_0 = h(o_0),  z_{t+1} = d(z_t, a_t),  targets sg(h(o_{t+1})) and
    q_t = r_{t+1} + gamma (1 - terminal_{t+1}) Q_target,min(h(o_{t+1}), a' ~ pi)

    L = 1/H sum_t rho^t [ 20 ||z_{t+1} - sg(h(o_{t+1}))||^2 / L + 0.1 CE(R(z_t, a_t), r_{t+1})
                          + 0.1 mean_i CE(Q_i(z_t, a_t), q_t) ] + 1 BCE(T(z_{t+1}), terminal_{t+1})

then the policy prior maximises rho-weighted Q_avg(z_t, pi(z_t)) / S + entropy_coef * entropy
on the detached rollout, S the running 5-95 percentile range of Q, and the target ensemble
moves by EMA (tau). Windows that cross an episode start are cut from that step on.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...core import AgentBase, Step, Update, check_stop
from ...core.probe import latent_distance
from ...envs.base import ActionSpace, Spec
from ...errors import UserError
from ...math import PercentileNormalizer, ema_update, twohot_nll
from ...models.tdmpc2 import TDMPC2Model
from ...nn.compile import MaybeCompiled
from ...nn.optim import step_if_finite
from ...planners import MPPI, DiscreteMPPI
from ...planners.base import shift
from .config import TDMPC2Config


def heuristic_discount(episode_length: int, denom: float, low: float, high: float) -> float:
    """gamma = clip((L/denom - 1) / (L/denom), low, high) (TD-MPC2 reference `_get_discount`)."""
    frac = episode_length / denom
    return float(min(max((frac - 1) / frac, low), high))


LARGE_ACTION_DIM = 20
"""Action dimension from which MPPI runs LARGE_ACTION_EXTRA_ITERATIONS more iterations."""
LARGE_ACTION_EXTRA_ITERATIONS = 2


def plan_iterations(iterations: int, action_dim: int) -> int:
    """MPPI iterations the planner runs: ``plan.iterations``, plus 2 where the action dimension
    is 20 or more (reference `TDMPC2.__init__`: ``cfg.iterations += 2*int(cfg.action_dim >= 20)
    # Heuristic for large action spaces``). ``action_dim`` is the one-hot width (the number of
    actions) for discrete spaces, as the reference's discrete variant sets it."""
    return iterations + LARGE_ACTION_EXTRA_ITERATIONS * int(action_dim >= LARGE_ACTION_DIM)


def rollout_weights(is_first: Tensor, rho: float) -> tuple[Tensor, Tensor]:
    """is_first ``[B, H+1]`` -> (rho^t * valid_t ``[B, H]`` for transitions t -> t+1, and
    rho^t * valid ``[B, H+1]`` for the latents z_0..z_H): a window is cut from the first step
    that starts a new episode on (its transition and every later one get weight 0)."""
    H = is_first.shape[1] - 1
    valid = torch.cumprod(1.0 - is_first[:, 1:].float(), dim=1)  # [B, H]
    rho_t = rho ** torch.arange(H + 1, device=is_first.device, dtype=valid.dtype)
    valid_z = torch.cat([torch.ones_like(valid[:, :1]), valid], 1)
    return valid * rho_t[:H], valid_z * rho_t


class TDMPC2Agent(AgentBase):
    """TD-MPC2 (Hansen, Su & Wang 2024): decoder-free latent model, MPPI with a policy prior."""

    name = "tdmpc2"

    @classmethod
    def prepare(cls, config: TDMPC2Config, env) -> None:
        """Fill ``loss.episode_length`` from the env's time limit when unset (run creation)."""
        if config.loss.episode_length is None and config.loss.discount is None:
            config.loss.episode_length = env.episode_length

    def __init__(
        self,
        config: TDMPC2Config,
        obs_space: dict[str, Spec],
        act_space: ActionSpace,
        device: torch.device | str = "cpu",
    ):
        self.config, self.obs_space, self.act_space = config, obs_space, act_space
        self.device = torch.device(device)
        self.discrete = act_space.discrete
        self.act_dim = act_space.n
        p, lc, o = config.plan, config.loss, config.optim
        if config.run.batch_length < p.horizon + 1:
            raise UserError(
                f"tdmpc2 trains on windows of horizon + 1 = {p.horizon + 1} steps, but "
                f"run.batch_length={config.run.batch_length}; fix: --set "
                f"run.batch_length={p.horizon + 1}"
            )
        self.model = TDMPC2Model(config.model, obs_space, self.act_dim, self.discrete)
        self.model.to(self.device).eval()
        self.target_q = copy.deepcopy(self.model.Qs).requires_grad_(False).eval()
        self.scale = PercentileNormalizer(
            lc.scale_low, lc.scale_high, 1.0 - lc.scale_rate, floor=1.0, debias=True
        ).to(self.device)
        m = self.model
        self.optim = torch.optim.Adam(
            [
                {"params": m.encoder.parameters(), "lr": o.lr * o.enc_lr_scale},
                {"params": m.dynamics.parameters()},
                {"params": m.reward_net.parameters()},
                {"params": m.Qs.parameters()},
                {"params": m.termination_net.parameters() if lc.episodic else []},
            ],
            lr=o.lr,
        )
        self.pi_optim = torch.optim.Adam(m.pi_net.parameters(), lr=o.lr, eps=o.pi_eps)
        self.gamma = (
            lc.discount
            if lc.discount is not None
            else heuristic_discount(
                lc.episode_length or 500, lc.discount_denom, lc.discount_min, lc.discount_max
            )
        )
        # Decided once from the action dimension; config.plan keeps the user's value, so a saved
        # config does not add the extra iterations twice when it is loaded.
        self.plan_config = dataclasses.replace(
            p, iterations=plan_iterations(p.iterations, self.act_dim)
        )
        planner_cls = DiscreteMPPI if self.discrete else MPPI
        self.planner = planner_cls(self.plan_config)  # PlanConfig is an MPPIConfig
        self._score = MaybeCompiled(self._score_eager, config.compile)
        self.updates = 0

    # Acting
    def init_state(self, batch_size: int) -> dict[str, Tensor]:
        """The planner's warm start ``plan`` per env: the last MPPI mean ``[B, H, A]`` (or
        categorical probabilities ``[B, H, K]``) shifted by one step; none yet = zeros (uniform)."""
        H, A = self.config.plan.horizon, self.act_dim
        fill = 1.0 / A if self.discrete else 0.0
        return {"plan": torch.full((batch_size, H, A), fill, device=self.device)}

    def _obs_tensors(self, obs: dict[str, Any]) -> dict[str, Tensor]:
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.obs_space}

    def _action_tensor(self, action: np.ndarray | Tensor) -> Tensor:
        action = torch.as_tensor(action, device=self.device)
        if self.discrete:
            return F.one_hot(action.long(), self.act_dim).float()
        return action.float()

    def _score_eager(self, z0: Tensor, actions: Tensor) -> Tensor:
        """Score of candidate sequences ``[B, P, H, A]`` from latents ``z0`` ``[B, L]``: ``[B, P]``
        sum_t gamma^t (1 - term_t) R(z_t, a_t) + gamma^H (1 - term_H) Q_avg(z_H, pi(z_H))."""
        m = self.model
        B, P, H = actions.shape[:3]
        z = z0.repeat_interleave(P, 0)
        flat = actions.reshape(B * P, H, -1)
        ret = torch.zeros(B * P, device=z.device)
        alive = torch.ones_like(ret)
        discount = 1.0
        for t in range(H):
            ret = ret + discount * alive * m.decode(m.reward(z, flat[:, t]))
            z = m.next(z, flat[:, t])
            discount *= self.gamma
            if self.config.loss.episodic:
                alive = alive * (m.termination(z) <= 0.0).float()  # P(terminal) <= 0.5
        value = m.Q(z, m.pi(z).action, "avg")
        return (ret + discount * alive * value).reshape(B, P)

    def _prior_actions(self, z0: Tensor) -> Tensor:
        """Policy-prior sequences rolled through the dynamics: ``[B, N, H, A]`` (or ``[B, N, H]``
        indices for discrete actions)."""
        p, m = self.config.plan, self.model
        B, N = z0.shape[0], p.num_pi_trajs
        z = z0.repeat_interleave(N, 0)
        actions = []
        for t in range(p.horizon):
            a = m.pi(z).action
            actions.append(a)
            if t < p.horizon - 1:
                z = m.next(z, a)
        seq = torch.stack(actions, 1).reshape(B, N, p.horizon, -1)
        return seq.argmax(-1) if self.discrete else seq

    @torch.no_grad()
    def act(self, state: dict[str, Tensor], obs: dict[str, np.ndarray], mode: str) -> Step:
        """Encode obs ``[N, ...]``, plan with MPPI (or sample the prior): actions ``[N, ...]``."""
        is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device).bool()
        z = self.model.encode(self._obs_tensors(obs))
        out = self._plan(z, is_first, state["plan"], mode)
        action = out.pop("action").cpu().numpy()
        return Step(out, action.astype(np.int64 if self.discrete else np.float32), {})

    def _plan(self, z: Tensor, is_first: Tensor, warm: Tensor, mode: str) -> dict[str, Tensor]:
        """Plan from latents ``z`` ``[B, L]``: ``{action, plan}``. The warm start ``warm`` is
        reset where an episode starts (zeros; uniform for discrete MPPI, which mixes
        warm_start_mix of uniform into the shifted probabilities)."""
        p = self.config.plan
        if not p.mpc:
            policy = self.model.pi(z)
            action = policy.action if mode == "explore" else policy.mode
            action = action.argmax(-1) if self.discrete else action
            return {"action": action, "plan": warm}
        B = z.shape[0]
        keep = (~is_first).float().view(-1, 1, 1)
        prior = self._prior_actions(z) if p.num_pi_trajs > 0 else None
        score = lambda actions: self._score(z, actions)  # noqa: E731
        if self.discrete:
            uniform = 1.0 / self.act_dim
            mixed = (1 - p.warm_start_mix) * warm + p.warm_start_mix * uniform
            init = keep * mixed + (1 - keep) * uniform
            plan = self.planner.plan(
                score, B, self.act_dim, self.device, init_probs=init, prior_actions=prior, mode=mode
            )
            return {"action": plan.action, "plan": shift(plan.probs, uniform)}
        init = warm * keep
        plan = self.planner.plan(
            score, B, self.act_dim, self.device, init_mean=init, prior_actions=prior, mode=mode
        )
        return {"action": plan.action, "plan": shift(plan.mean, 0.0)}

    @torch.no_grad()
    def imagine_return(
        self,
        state: dict[str, Tensor],
        obs: dict[str, np.ndarray],
        horizon: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """The return the model predicts for the agent's eval behaviour from ``obs``
        (``Imaginer``): for ``horizon`` steps plan at the imagined latent as ``act(mode="eval")``
        does (warm start carried), add R(z, a) and step z = d(z, a); when ``loss.episodic``,
        the rewards after a latent the termination head calls terminal (P > 0.5) are dropped.
        ``[N]``. ``should_stop`` is asked before each plan (``EvalInterrupted`` when it answers
        True)."""
        m = self.model
        is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device).bool()
        z, warm = m.encode(self._obs_tensors(obs)), state["plan"]
        total, alive = torch.zeros(len(z), device=z.device), torch.ones(len(z), device=z.device)
        for _ in range(horizon):
            check_stop(should_stop)
            out = self._plan(z, is_first, warm, "eval")
            action, warm = self._action_tensor(out["action"]), out["plan"]
            is_first = torch.zeros_like(is_first)
            total = total + alive * m.decode(m.reward(z, action))
            z = m.next(z, action)
            if self.config.loss.episodic:
                alive = alive * (m.termination(z) <= 0.0).float()
        return total.float().cpu().numpy()

    # Learning
    def _windows(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """``[B, T]`` -> ``[B * (T - H), H + 1]``: every window of H + 1 consecutive steps."""
        H = self.config.plan.horizon
        T = data["reward"].shape[1]
        if T == H + 1:
            return data
        return {
            k: v.unfold(1, H + 1, 1).movedim(-1, 2).reshape(-1, H + 1, *v.shape[2:])
            for k, v in data.items()
        }

    def losses(self, data: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """World-model losses of a ``[B, H+1]`` batch of tensors: ({consistency, reward, value,
        termination} scalars, latents z_0..z_H ``[B, H+1, L]``, their weights ``[B, H+1]``)."""
        m, lc = self.model, self.config.loss
        H = data["reward"].shape[1] - 1
        obs = {k: data[k] for k in self.obs_space}
        action = data["action"][:, :H].float()  # a_0..a_{H-1}, floats (one-hot if discrete)
        reward = data["reward"][:, 1:].float()  # r_{t+1} arrives with o_{t+1}
        terminal = data["is_terminal"][:, 1:].float()
        weight, weight_z = rollout_weights(data["is_first"], lc.rho)

        # Targets
        with torch.no_grad():
            next_z = m.encode({k: v[:, 1:] for k, v in obs.items()})  # [B, H, L]
            next_q = m.Q(next_z, m.pi(next_z).action, "min", qnet=self.target_q)
            td_target = reward + self.gamma * (1.0 - terminal) * next_q

        # Latent rollout
        z = m.encode({k: v[:, 0] for k, v in obs.items()})
        zs, consistency = [z], []
        for t in range(H):
            z = m.next(z, action[:, t])
            consistency.append(((z - next_z[:, t]) ** 2).mean(-1))
            zs.append(z)
        latents = torch.stack(zs, 1)  # [B, H+1, L]

        # Predictions
        before = latents[:, :-1]
        reward_logits = m.reward(before, action)  # [B, H, bins]
        q_logits = m.Q(before, action, "all")  # [E, B, H, bins]
        reward_nll = twohot_nll(F.log_softmax(reward_logits, -1), reward, m.bins)
        value_nll = twohot_nll(
            F.log_softmax(q_logits, -1), td_target.expand_as(q_logits[..., 0]), m.bins
        )

        def horizon_mean(x: Tensor) -> Tensor:  # [B, H] -> 1/H sum_t rho^t mean_b(valid x)
            return (weight * x).mean(0).sum() / H

        out = {
            "consistency": horizon_mean(torch.stack(consistency, 1)),
            "reward": horizon_mean(reward_nll),
            "value": horizon_mean(value_nll.mean(0)),
        }
        if lc.episodic:
            bce = F.binary_cross_entropy_with_logits(
                m.termination(latents[:, 1:]), terminal, reduction="none"
            )
            out["termination"] = ((weight > 0).float() * bce).mean()
        return out, latents, weight_z

    def update(self, batch: dict[str, np.ndarray]) -> Update:
        """One model step and one policy step on a replayed ``[B, T]`` batch, T >= H + 1."""
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        data["action"] = self._action_tensor(data["action"])
        data = self._windows(data)
        self.model.train()
        try:
            metrics = self._update_tensors(data)
        finally:
            self.model.eval()
        self.updates += 1
        return Update({k: float(v) for k, v in metrics.items()})

    def _update_tensors(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """The model, policy and target steps on device tensors; metrics stay tensors and
        nothing reads back to the host inside the step."""
        lc, o = self.config.loss, self.config.optim
        for opt in self.optimizers().values():  # as the reference's zero_grad(set_to_none) after
            opt.zero_grad(set_to_none=True)  # each step: the model's clip norm sees no policy grads
        losses, latents, weight_z = self.losses(data)
        coef = {
            "consistency": lc.consistency_coef,
            "reward": lc.reward_coef,
            "value": lc.value_coef,
            "termination": lc.termination_coef,
        }
        total = sum(coef[k] * v for k, v in losses.items())
        total.backward()
        gnorm = nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip_norm)
        step_if_finite(self.optim, gnorm)
        metrics = {f"loss/{k}": v.detach() for k, v in losses.items()}
        metrics.update({"loss/model": total.detach(), "grad/model": gnorm})
        metrics.update(self._update_pi(latents.detach(), weight_z))
        ema_update(self.target_q, self.model.Qs, 1.0 - lc.tau)
        return metrics

    def _update_pi(self, latents: Tensor, weight: Tensor) -> dict[str, float]:
        """Policy step on detached latents ``[B, H+1, L]`` with weights rho^t * valid."""
        m, lc, o = self.model, self.config.loss, self.config.optim
        policy = m.pi(latents)
        if self.discrete:  # exact expectation over the K actions (SAC-discrete style)
            eye = torch.eye(self.act_dim, device=latents.device)
            z_all = latents.unsqueeze(-2).expand(*latents.shape[:-1], self.act_dim, -1)
            q_all = m.Q(z_all, eye.expand(*latents.shape[:-1], -1, -1), "avg", detach=True)
            q = (policy.probs * q_all).sum(-1)  # [B, H+1]
            entropy = policy.entropy
        else:
            q = m.Q(latents, policy.action, "avg", detach=True)
            scale = self.act_dim if lc.entropy_action_scale else 1
            entropy = scale * policy.entropy
        first = q[:, 0].detach()
        self.scale.update(first)
        objective = q / self.scale.scale() + lc.entropy_coef * entropy
        loss = -(weight * objective).mean(0).mean()
        self.pi_optim.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = nn.utils.clip_grad_norm_(m.pi_net.parameters(), o.grad_clip_norm)
        step_if_finite(self.pi_optim, gnorm)
        return {
            "loss/pi": loss.detach(),
            "grad/pi": gnorm,
            "pi_entropy": policy.entropy.detach().mean(),
            "q_scale": self.scale.scale().detach(),
            "q_mean": first.mean(),
        }

    # Report
    @torch.no_grad()
    def report(self, batch: dict[str, np.ndarray], context: int = 5) -> dict[str, np.ndarray]:
        """A latent probe, not a prediction of observations (TD-MPC2 has no decoder):
        ``latent/distance`` ``[B, T]``, the normalised distance (``core.probe.latent_distance``:
        mean squared difference over the latent's elements / mean squared element of the
        encoded latents) between z_t rolled open loop from the encoding of step
        ``context - 1`` with the recorded actions, z_{t+1} = d(z_t, a_t), and h(o_t) of the
        true observation; zero over the context. The consistency loss trains this distance."""
        T = batch["action"].shape[1]
        if not 0 < context < T:
            raise ValueError(f"report needs 0 < context < window length {T}, got {context}")
        m = self.model
        obs = {k: torch.as_tensor(batch[k], device=self.device) for k in self.obs_space}
        action = self._action_tensor(batch["action"])
        encoded = m.encode(obs)  # [B, T, L]
        zs, z = [encoded[:, :context]], encoded[:, context - 1]
        for t in range(context, T):
            z = m.next(z, action[:, t - 1])
            zs.append(z[:, None])
        rolled = torch.cat(zs, 1)
        return {
            "latent/distance": latent_distance(
                rolled.float().cpu().numpy(), encoded.float().cpu().numpy(), context
            )
        }

    # Persistence
    def modules(self) -> dict[str, nn.Module]:
        """The stateful modules by name (checkpoint keys)."""
        return {"model": self.model, "target_q": self.target_q, "scale": self.scale}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name (checkpoint keys)."""
        return {"optim": self.optim, "pi_optim": self.pi_optim}

    def state_dict(self) -> dict:
        """Everything a resume needs: weights, target Qs, Q scale, optimiser states, counter."""
        out: dict[str, Any] = {k: v.state_dict() for k, v in self.modules().items()}
        out.update({k: v.state_dict() for k, v in self.optimizers().items()})
        out["updates"] = self.updates
        return out

    def load_state_dict(self, d: dict) -> None:
        """Restore what :meth:`state_dict` wrote."""
        for k, v in self.modules().items():
            v.load_state_dict(d[k])
        for k, v in self.optimizers().items():
            v.load_state_dict(d[k])
        self.updates = int(d["updates"])
