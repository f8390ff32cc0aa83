"""PlaNet: the RSSM world model planned with CEM in latent space, no learned policy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from ...core import AgentBase, Step, Update, check_stop
from ...envs.base import ActionSpace, Spec
from ...errors import UserError
from ...models.dreamer import WorldModel, kl_loss
from ...models.rssm import overshooting_kl
from ...nn.optim import step_if_finite
from ...nn.precision import Precision
from ...planners import CEM, CEMConfig
from ...planners.base import shift
from .config import PlaNetConfig


class PlaNetAgent(AgentBase):
    """Hafner et al. 2019: world model = Dreamer's with PlaNet's axes; acting = CEM on rewards."""

    name = "planet"

    @classmethod
    def prepare(cls, config: PlaNetConfig, env) -> None:
        """Refuse discrete actions (CEM plans continuous ones)."""
        cls.check_actions(env.act_space)

    @staticmethod
    def check_actions(act_space: ActionSpace) -> None:
        if act_space.discrete:
            raise UserError(
                "planet plans continuous actions with CEM; this env has discrete actions. "
                "fix: use a continuous env (e.g. gym:Pendulum-v1) or a Dreamer agent"
            )

    def __init__(
        self,
        config: PlaNetConfig,
        obs_space: dict[str, Spec],
        act_space: ActionSpace,
        device: torch.device | str = "cpu",
    ):
        self.check_actions(act_space)
        self.config, self.obs_space, self.act_space = config, obs_space, act_space
        self.device = torch.device(device)
        self.precision = Precision(config.precision, self.device)
        self.act_dim = act_space.n
        self.wm = WorldModel(config.model, obs_space, self.act_dim).to(self.device)
        self.opt = torch.optim.Adam(self.wm.parameters(), config.optim.lr, eps=config.optim.eps)
        p = config.planner
        self.cem = CEM(CEMConfig(p.horizon, p.candidates, p.top_k, p.iterations, 1.0, p.warm_start))
        self.updates = 0

    # Acting
    def init_state(self, batch_size: int) -> dict[str, Tensor]:
        """Latent state, previous action and the planner's warm start ``plan`` [B, H, A] (the
        last plan shifted by one step; zeros = PlaNet's start from mean 0)."""
        state = self.wm.rssm.initial(batch_size, self.device)
        state["action"] = torch.zeros(batch_size, self.act_dim, device=self.device)
        H = self.config.planner.horizon
        state["plan"] = torch.zeros(batch_size, H, self.act_dim, device=self.device)
        return state

    def _objective(self, start: dict[str, Tensor]):
        """Discounted sum of predicted rewards, sum_t discount^t r_t, of candidate sequences
        ``[B, P, H, A]`` from ``start`` (PlaNet's CEM objective)."""
        rssm, H, discount = self.wm.rssm, self.config.planner.horizon, self.config.planner.discount

        def objective(actions: Tensor) -> Tensor:
            B, P = actions.shape[:2]
            state = {k: v.repeat_interleave(P, 0) for k, v in start.items()}
            flat = actions.reshape(B * P, H, -1)
            total = torch.zeros(B * P, device=actions.device)
            for t in range(H):
                state = rssm.img_step(state, flat[:, t])
                total = total + discount**t * self.wm.reward(rssm.feat(state)).pred()
            return total.reshape(B, P)

        return objective

    def _obs_tensors(self, obs: dict[str, np.ndarray]) -> dict[str, Tensor]:
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.obs_space}

    def _posterior(self, state: dict, obs: dict[str, np.ndarray], is_first: Tensor) -> dict:
        """One filtering step: the posterior ``{deter, stoch}`` of each env after ``obs``."""
        embed = self.wm.encode(self._obs_tensors(obs))
        latent = self.wm.rssm.obs_step(state, state["action"], embed, is_first)
        return {"deter": latent["deter"], "stoch": latent["stoch"]}

    def _plan(self, start: dict[str, Tensor], warm: Tensor):
        """CEM from the latents ``start`` with the warm start ``warm`` [B, H, A] (used only
        with ``planner.warm_start``)."""
        init = warm if self.config.planner.warm_start else torch.zeros_like(warm)
        B = warm.shape[0]
        return self.cem.plan(
            self._objective(start), B, self.act_dim, self.device, init_mean=init, mode="eval"
        )

    @torch.no_grad()
    def imagine_return(
        self,
        state: dict[str, Tensor],
        obs: dict[str, np.ndarray],
        horizon: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """The return the model predicts for the agent's greedy behaviour from ``obs``
        (``Imaginer``): filter ``obs`` as ``act`` does, then for ``horizon`` imagined steps plan
        with CEM at each imagined latent and take its action; the predicted rewards are weighted
        by the continue head's probabilities (PlaNet's planner itself ignores them): ``[N]``.
        ``should_stop`` is asked before each plan (``EvalInterrupted`` when it answers True)."""
        is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device).bool()
        warm = state["plan"] * (~is_first).float().view(-1, 1, 1)

        def policy(latent: dict[str, Tensor]) -> Tensor:
            nonlocal warm
            check_stop(should_stop)
            plan = self._plan({"deter": latent["deter"], "stoch": latent["stoch"]}, warm)
            warm = shift(plan.mean, 0.0)
            return plan.action

        with self.precision():
            start = self._posterior(state, obs, is_first)
            return self.wm.imagined_return(start, policy, horizon).cpu().numpy()

    @torch.no_grad()
    def act(self, state: dict[str, Tensor], obs: dict[str, np.ndarray], mode: str) -> Step:
        """Filter the observation, plan with CEM from the posterior, return the first action.
        The warm start is zeroed where an episode starts, and always without warm_start."""
        with self.precision():
            is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device).bool()
            start = self._posterior(state, obs, is_first)
            keep = (~is_first).float().view(-1, 1, 1)
            plan = self._plan(start, state["plan"] * keep)
            action = plan.action
            if mode == "explore" and self.config.planner.expl_noise > 0:
                noise = self.config.planner.expl_noise * torch.randn_like(action)
                action = (action + noise).clamp(-1.0, 1.0)
        new_state = {**start, "action": action, "plan": shift(plan.mean, 0.0)}
        return Step(new_state, action.cpu().numpy().astype(np.float32), {})

    # Learning
    def update(self, batch: dict[str, np.ndarray]) -> Update:
        """One world-model step: reconstruction + reward + ELBO KL + latent overshooting."""
        with self.precision():
            data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
            metrics = self._update_tensors(data)
        self.updates += 1
        return Update({k: float(v) for k, v in metrics.items()})

    def _update_tensors(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """The model step on device tensors; metrics stay tensors until the step ends."""
        m, lc = self.config.model, self.config.loss
        post, prior, prev_action, losses = self.wm.sequence_losses(data, data["action"].float())
        losses["reward"] = lc.reward_scale * losses["reward"]
        if "recon_vector" in losses:
            losses["recon_vector"] = lc.vector_scale * losses["recon_vector"]
        is_first = data["is_first"].bool()
        kl, _, _ = kl_loss(
            m.kl,
            self.wm.rssm.kl,
            post["stats"],
            prior,
            free=m.free_bits,
            scale=m.kl_scale,
            per_step=m.free_per_step,
        )
        total = sum(losses.values()).mean() + kl.mean()
        if lc.overshooting > 1 and lc.overshooting_scale > 0:
            os_kl = overshooting_kl(
                self.wm.rssm,
                post,
                prev_action,
                is_first,
                lc.overshooting,
                m.free_bits,
                per_step=bool(m.free_per_step),
            )
            total = total + lc.overshooting_scale * os_kl
            losses["overshooting"] = os_kl
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        gnorm = nn.utils.clip_grad_norm_(self.wm.parameters(), self.config.optim.clip)
        step_if_finite(self.opt, gnorm)
        out = {f"loss/{k}": v.detach().mean() for k, v in losses.items()}
        out.update({"loss/kl": kl.detach().mean(), "loss/model": total.detach()})
        out["grad/model"] = gnorm
        return out

    # Report
    @torch.no_grad()
    def report(self, batch: dict[str, np.ndarray], context: int = 5) -> dict[str, np.ndarray]:
        """Open-loop predictions on replay windows ``[B, T]``: ``context`` observed steps, then
        the model alone under the recorded actions (``WorldModel.report``)."""
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        with self.precision():
            return self.wm.report(data, data["action"].float(), context)

    # Persistence
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name (checkpoint keys)."""
        return {"opt": self.opt}

    def state_dict(self) -> dict:
        return {"wm": self.wm.state_dict(), "opt": self.opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, d: dict) -> None:
        self.wm.load_state_dict(d["wm"])
        self.opt.load_state_dict(d["opt"])
        self.updates = int(d["updates"])
