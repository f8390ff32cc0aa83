"""PlaNet: the RSSM world model planned with CEM in latent space, no learned policy."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...envs.base import ActionSpace, Spec
from ...errors import UserError
from ...models.rssm import overshooting_kl
from ...nn.precision import Precision
from ...planners import CEM, CEMConfig
from ..dreamer.agent import WorldModel, kl_loss
from .config import PlaNetConfig


class PlaNetAgent:
    """Hafner et al. 2019: world model = Dreamer's with PlaNet's axes; acting = CEM on rewards."""

    name = "planet"

    def __init__(
        self,
        config: PlaNetConfig,
        obs_space: dict[str, Spec],
        act_space: ActionSpace,
        device: torch.device | str = "cpu",
    ):
        if act_space.discrete:
            raise UserError(
                "planet plans continuous actions with CEM; this env has discrete actions. "
                "fix: use a continuous env (e.g. gym:Pendulum-v1) or a Dreamer agent"
            )
        self.config, self.obs_space, self.act_space = config, obs_space, act_space
        self.device = torch.device(device)
        self.precision = Precision(config.run.precision, self.device)
        self.act_dim = act_space.n
        self.wm = WorldModel(config, obs_space, self.act_dim).to(self.device)
        self.opt = torch.optim.Adam(self.wm.parameters(), config.optim.lr, eps=config.optim.eps)
        p = config.planner
        self.cem = CEM(CEMConfig(p.horizon, p.candidates, p.top_k, p.iterations, 1.0, p.warm_start))
        self.updates = 0

    # Acting
    def init_state(self, batch_size: int) -> dict[str, Tensor]:
        state = self.wm.rssm.initial(batch_size, self.device)
        state["action"] = torch.zeros(batch_size, self.act_dim, device=self.device)
        self.cem.reset(batch_size)
        return state

    def _objective(self, start: dict[str, Tensor]):
        """Sum of predicted rewards of candidate sequences ``[B, P, H, A]`` from ``start``."""
        rssm, H = self.wm.rssm, self.config.planner.horizon

        def objective(actions: Tensor) -> Tensor:
            B, P = actions.shape[:2]
            state = {k: v.repeat_interleave(P, 0) for k, v in start.items()}
            flat = actions.reshape(B * P, H, -1)
            total = torch.zeros(B * P, device=actions.device)
            for t in range(H):
                state = rssm.img_step(state, flat[:, t])
                total = total + self.wm.reward(rssm.feat(state)).pred()
            return total.reshape(B, P)

        return objective

    @torch.no_grad()
    def act(
        self, state: dict[str, Tensor], obs: dict[str, np.ndarray], mode: str = "explore"
    ) -> tuple[dict[str, Tensor], np.ndarray, dict[str, Any]]:
        """Filter the observation, plan with CEM from the posterior, return the first action."""
        with self.precision():
            return self._act(state, obs, mode)

    def _act(self, state, obs, mode):
        is_first = torch.as_tensor(np.asarray(obs["is_first"]), device=self.device).bool()
        obs_t = {k: torch.as_tensor(np.asarray(obs[k]), device=self.device) for k in self.obs_space}
        embed = self.wm.encode(obs_t)
        latent = self.wm.rssm.obs_step(state, state["action"], embed, is_first)
        start = {"deter": latent["deter"], "stoch": latent["stoch"]}
        B = is_first.shape[0]
        if self.cem.warm.batch_size != B:
            self.cem.reset(B)
        elif is_first.any():
            self.cem.reset(mask=is_first)
        plan = self.cem.plan(self._objective(start), B, self.act_dim, self.device, mode="eval")
        action = plan.action
        if mode == "explore" and self.config.planner.expl_noise > 0:
            noise = self.config.planner.expl_noise * torch.randn_like(action)
            action = (action + noise).clamp(-1.0, 1.0)
        new_state = {**start, "action": action}
        return new_state, action.cpu().numpy().astype(np.float32), {}

    # Learning
    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One world-model step: reconstruction + reward + ELBO KL + latent overshooting."""
        with self.precision():
            return self._update(batch)

    def _update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        m, lc = self.config.model, self.config.loss
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        post, prior, prev_action, losses = self.wm.sequence_losses(data, data["action"].float())
        losses["reward"] = lc.reward_scale * losses["reward"]
        is_first = data["is_first"].bool()
        kl, _, _ = kl_loss(
            m.kl, self.wm.rssm.kl, post["stats"], prior, free=m.free_bits, scale=m.kl_scale
        )
        total = sum(losses.values()).mean() + kl.mean()
        if lc.overshooting > 1 and lc.overshooting_scale > 0:
            os_kl = overshooting_kl(
                self.wm.rssm, post, prev_action, is_first, lc.overshooting, m.free_bits
            )
            total = total + lc.overshooting_scale * os_kl
            losses["overshooting"] = os_kl
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        gnorm = nn.utils.clip_grad_norm_(self.wm.parameters(), self.config.optim.clip)
        self.opt.step()
        self.updates += 1
        out = {f"loss/{k}": float(v.detach().mean()) for k, v in losses.items()}
        out.update({"loss/kl": float(kl.detach().mean()), "loss/model": float(total.detach())})
        out["grad/model"] = float(gnorm)
        return {k: float(v) for k, v in out.items()}

    # Persistence
    def state_dict(self) -> dict:
        return {"wm": self.wm.state_dict(), "opt": self.opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, d: dict) -> None:
        self.wm.load_state_dict(d["wm"])
        self.opt.load_state_dict(d["opt"])
        self.updates = int(d["updates"])
