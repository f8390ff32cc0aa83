"""MuZero (Schrittwieser et al. 2020): a learned model searched with MCTS, trained on unrolls.

Acting: h(o_t) gives the root; `planners.mcts` searches all B roots in one batch through g and f;
the visit distribution and root value go to replay with the step (``Step.extras``).
Learning: windows of ``run.batch_length`` steps, sampled by priority; the model is unrolled K
steps from the first one with the replayed actions and trained on the search policies, n-step
value targets (optionally reanalysed with the latest network) and the observed rewards.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...core import AgentBase, Sampling, Step, Traits, Update, check_stop
from ...core.probe import latent_distance
from ...envs.base import ActionSpace, Spec
from ...errors import UserError
from ...math.returns import n_step_value_targets
from ...math.support import scale_gradient, support_loss
from ...models.muzero import Inference, MuZeroNetwork
from ...nn.optim import step_if_finite
from ...planners.mcts import (
    GumbelMCTSConfig,
    MCTSConfig,
    MCTSOutput,
    RootOutput,
    gumbel_muzero_search,
    muzero_search,
    select_action,
    visit_temperature,
)
from ...replay import AGE_KEY
from .config import MuZeroConfig


def run_updates(run) -> float:
    """Updates a run of ``run.steps`` makes at its train ratio (the loop updates from the end of
    the prefill on: (steps - prefill) * train_ratio / (batch_size * batch_length)), at least 1."""
    collected = max(run.steps - run.prefill, 0)
    return max(collected * run.train_ratio / (run.batch_size * run.batch_length), 1.0)


def negative_cosine(x: Tensor, y: Tensor, eps: float = 1e-5) -> Tensor:
    """[..., D] x, y -> [...] -<x/|x|, y/|y|> (norms floored at eps, as the reference's
    ``F.normalize``): -1 when they point the same way."""
    x = x / x.norm(dim=-1, keepdim=True).clamp(min=eps)
    y = y / y.norm(dim=-1, keepdim=True).clamp(min=eps)
    return -(x * y).sum(-1)


def value_prefix_targets(reward: Tensor, horizon: int) -> Tensor:
    """[B, K+1] rewards u_k (index 0 unused) -> [B, K+1] value-prefix targets: at step k the
    undiscounted sum of u_j over the steps j <= k since the last reset, the LSTM restarting
    after every step that is a multiple of ``horizon`` (EfficientZero's targets; index 0 is 0)."""
    out = torch.zeros_like(reward)
    total = torch.zeros_like(reward[:, 0])
    for k in range(1, reward.shape[1]):
        total = total + reward[:, k]
        out[:, k] = total
        if k % horizon == 0:
            total = torch.zeros_like(total)
    return out


class MuZeroAgent(AgentBase):
    """MuZero with the config axes of MuZeroConfig; EfficientZero's axes are refused for now.

    Traits: the search collects from the first step (no random prefill, as the paper), replay
    is sampled by priority when ``train.priority_alpha > 0``, illegal moves are never played
    where the observation has a ``legal`` mask, and the env's symmetries are asked for when
    ``train.augment_symmetries`` is on."""

    name = "muzero"

    def __init__(
        self,
        config: MuZeroConfig,
        obs_space: dict[str, Spec],
        act_space: ActionSpace,
        device: torch.device | str = "cpu",
    ):
        self.check_env(config, obs_space, act_space)
        m, s, t = config.model, config.search, config.train
        if t.consistency > 0 and m.projection[1] != m.projection[3]:
            raise UserError(
                f"model.projection {tuple(m.projection)}: pred_out (4th) must equal proj_out "
                "(2nd), the consistency loss compares the two"
            )
        if len(s.temperatures) != len(s.temperature_steps) + 1:
            raise UserError(
                f"search.temperatures needs one more entry than search.temperature_steps "
                f"(got {len(s.temperatures)} and {len(s.temperature_steps)})"
            )
        if config.optim.lr_decay_rate <= 0 or config.optim.lr_decay_steps < 0:
            raise UserError(
                "optim.lr_decay_rate must be positive and optim.lr_decay_steps positive or 0 "
                "(rate 1 = constant learning rate; steps 0 = the run's total updates)"
            )
        if t.num_unroll_steps < 1 or t.td_steps < 1:
            raise UserError("train.num_unroll_steps and train.td_steps must be at least 1")
        if config.run.batch_length < t.num_unroll_steps + 1:
            raise UserError(
                f"run.batch_length {config.run.batch_length} is shorter than the unroll "
                f"(num_unroll_steps + 1 = {t.num_unroll_steps + 1}); fix: set run.batch_length="
                f"{t.num_unroll_steps + 1 + t.td_steps} (K + 1 + td_steps)"
            )
        self.config, self.obs_space, self.act_space = config, obs_space, act_space
        self.device = torch.device(device)
        self.num_actions = act_space.n
        self.key = "image" if "image" in obs_space else "vector"
        self.two_player = (
            "to_play" in obs_space if t.two_player == "auto" else t.two_player == "yes"
        )
        self.sign = -1.0 if self.two_player else 1.0
        self.gamma = t.discount if t.discount is not None else (1.0 if self.two_player else 0.997)
        image = m.network == "resnet" or (m.network == "auto" and self.key == "image")
        self.mse = m.scalar_loss == "mse" or (m.scalar_loss == "auto" and self.two_player)
        self.net = MuZeroNetwork(
            obs_space[self.key].shape,
            self.num_actions,
            image=image,
            support_size=0 if self.mse else m.support_size,
            latent=m.latent,
            units=m.units,
            layers=m.layers,
            head_layers=m.head_layers,
            channels=m.channels,
            blocks=m.blocks,
            reduced_channels=m.reduced_channels,
            downsample=m.downsample,
            norm=m.norm,
            act=m.act,
            value_prefix=m.value_prefix,
            lstm_hidden=m.lstm_hidden,
            projection=tuple(m.projection) if t.consistency > 0 else None,
        ).to(self.device)
        if t.target_update_interval < 1:
            raise UserError(
                f"train.target_update_interval must be at least 1, got {t.target_update_interval}"
            )
        if t.reanalyse_network == "target" and t.value_bootstrap != "target":
            raise UserError(
                "train.reanalyse_network=target needs the target network of "
                "train.value_bootstrap=target; fix: set both, or reanalyse with the online one"
            )
        self.target_net: MuZeroNetwork | None = None
        if t.value_bootstrap == "target":
            self.target_net = copy.deepcopy(self.net).requires_grad_(False)
        o = config.optim
        if o.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(
                self.net.parameters(), o.lr, momentum=o.momentum, weight_decay=o.weight_decay
            )
        else:
            self.opt = torch.optim.Adam(self.net.parameters(), o.lr, weight_decay=o.weight_decay)
        self.traits = Traits(
            prefill="policy",
            sampling=Sampling(t.priority_alpha, t.priority_beta)
            if t.priority_alpha > 0
            else Sampling(),
            legal_actions=True,
            symmetries=t.augment_symmetries,
        )
        self.updates = 0
        self.env_steps = 0  # the run's env steps at the last set_progress
        self._symmetries: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def set_progress(self, env_steps: int) -> None:
        """The run's env steps before an update (``ProgressAware``): the clock the off-policy
        correction ages replayed windows by."""
        self.env_steps = int(env_steps)

    def td_steps(self, data: dict[str, Tensor]) -> int | Tensor:
        """The n-step horizon: ``train.td_steps``, or with the off-policy correction one per
        window, clip(td_steps - age // (auto_td_steps_ratio x run.steps), 1, td_steps), the age
        counted in env steps from the window's first step (EfficientZero). The clock is the run's
        env steps (``set_progress``), or the newest step of the batch where none was given."""
        t = self.config.train
        if not t.off_policy_correction:
            return t.td_steps
        if AGE_KEY not in data:
            raise UserError(
                f"train.off_policy_correction needs the replay's '{AGE_KEY}' key (the env step "
                "each step was stored at); fix: train from a replay written by `worldmodels "
                "train`, or leave the correction off"
            )
        stored = data[AGE_KEY][:, 0].long()
        # Before any set_progress (an offline run, a direct call), the newest sampled step is now.
        now = self.env_steps if self.env_steps > 0 else int(stored.max())
        age = (now - stored).clamp(min=0)
        auto = max(int(t.auto_td_steps_ratio * self.config.run.steps), 1)
        return (t.td_steps - age // auto).clamp(1, t.td_steps)

    def set_symmetries(self, symmetries) -> None:
        """The env's :attr:`~worldmodels.envs.base.Env.symmetries` (given when
        ``traits.symmetries``): each update draws one of them per replayed window."""
        if not self.config.train.augment_symmetries:
            return
        self.check_symmetries(self.config, symmetries)
        obs = np.stack([np.asarray(s.obs, dtype=np.int64) for s in symmetries])
        act = np.stack([np.asarray(s.action, dtype=np.int64) for s in symmetries])
        self._symmetries = (obs, act, np.argsort(act, axis=1))

    def augment(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A copy of the replayed ``[B, L, ...]`` windows, each under one random symmetry
        (observations, legal masks, search policies and actions alike; rewards, values and
        flags are invariant)."""
        obs, act, inv = self._symmetries
        k = torch.randint(len(obs), (batch["action"].shape[0],)).numpy()
        out = dict(batch)
        out[self.key] = np.take_along_axis(batch[self.key], obs[k][:, None, :], axis=2)
        for name in ("legal", "policy"):
            if name in batch:
                out[name] = np.take_along_axis(batch[name], act[k][:, None, :], axis=2)
        out["action"] = np.take_along_axis(inv[k], batch["action"].astype(np.int64), axis=1)
        return out

    @staticmethod
    def check_symmetries(config: MuZeroConfig, symmetries) -> None:
        """Refuse ``train.augment_symmetries`` on an env without symmetries, in one line."""
        if config.train.augment_symmetries and not symmetries:
            raise UserError(
                "train.augment_symmetries needs an env that declares board symmetries with "
                "vector observations (board:tic_tac_toe, board:connect_four); "
                "fix: drop --set train.augment_symmetries=true or use such an env"
            )

    @classmethod
    def prepare(cls, config: MuZeroConfig, env) -> None:
        """At run creation, before anything is written: check the env for the config's needs."""
        cls.check_env(config, env.obs_space, env.act_space)
        cls.check_symmetries(config, env.symmetries)

    @staticmethod
    def check_env(config: MuZeroConfig, obs_space: dict[str, Spec], act_space: ActionSpace) -> None:
        """Refuse, with one UserError line, an env this config cannot play (before a run starts)."""
        if not act_space.discrete:
            raise UserError(
                "muzero searches discrete actions; this env has continuous actions. "
                "fix: use a discrete env (e.g. gym:CartPole-v1, board:tic_tac_toe) or dreamerv3"
            )
        if "vector" not in obs_space and "image" not in obs_space:
            raise UserError(
                f"muzero needs a 'vector' or 'image' observation, got {list(obs_space)}"
            )
        if config.model.network == "resnet" and "image" not in obs_space:
            raise UserError("model.network=resnet needs image observations; fix: --obs pixels")

    # Search
    def _step(
        self, node, action: Tensor, net: MuZeroNetwork | None = None
    ) -> tuple[Tensor, Inference, Any]:
        """One model step of ``net`` (default: the online network) from a search node:
        (reward [N], the network's outputs at the child, the child node).

        Without a value prefix a node is the hidden state. With one it is a dict: the hidden
        state, the LSTM state (h, c), the predicted value prefix and the depth. The LSTM
        restarts from zero below every node whose depth is a multiple of
        ``model.lstm_horizon_len``, so the reward of the edge is the child's prefix minus its
        parent's, or the child's prefix itself below such a node (EfficientZero's tree)."""
        eps, net = self.config.model.h_eps, net or self.net
        if not self.config.model.value_prefix:
            out = net.recurrent_inference(node, action)
            return net.scalar(out.reward_logits, eps), out, out.hidden
        H = self.config.model.lstm_horizon_len
        reset = node["depth"] % H == 0
        state = tuple(torch.where(reset[:, None], 0.0, x) for x in (node["h"], node["c"]))
        out = net.recurrent_inference(node["hidden"], action, state)
        prefix = net.scalar(out.reward_logits, eps)
        reward = prefix - torch.where(reset, 0.0, node["prefix"].to(prefix.dtype))
        h, c = out.reward_state
        child = {"hidden": out.hidden, "h": h, "c": c, "prefix": prefix, "depth": node["depth"] + 1}
        return reward, out, child

    def _recurrent_fn(self, node, action: Tensor, net: MuZeroNetwork | None = None):
        """The search's model: (s, a) -> (r, gamma, policy logits, v, s'); see :meth:`_step`."""
        reward, out, child = self._step(node, action, net)
        value = (net or self.net).scalar(out.value_logits, self.config.model.h_eps)
        return reward, torch.full_like(value, self.gamma), out.policy_logits, value, child

    def _root_node(self, hidden: Tensor):
        """The search's root embedding for ``hidden`` [N, ...]: the state itself, or with a
        value prefix a dict with a zero LSTM state, prefix 0 and depth 0."""
        if not self.config.model.value_prefix:
            return hidden
        n = hidden.shape[0]
        h, c = self.net.initial_reward_state(n, hidden)
        zero = torch.zeros(n, dtype=hidden.dtype, device=hidden.device)
        depth = torch.zeros(n, dtype=torch.long, device=hidden.device)
        return {"hidden": hidden, "h": h, "c": c, "prefix": zero, "depth": depth}

    @torch.no_grad()
    def search(
        self, obs: Tensor, legal: Tensor, explore: bool, net: MuZeroNetwork | None = None
    ) -> MCTSOutput:
        """[N, obs...] observations, [N, A] bool legal -> MCTSOutput of N batched searches with
        ``net`` (default: the online network)."""
        net = net or self.net
        return self._search(net.initial_inference(obs), legal, explore, net)

    def _search(
        self,
        root_inf: Inference,
        legal: Tensor,
        explore: bool,
        net: MuZeroNetwork | None = None,
    ) -> MCTSOutput:
        """:meth:`search` from the network's outputs at the N roots."""
        s, net = self.config.search, net or self.net
        value = net.scalar(root_inf.value_logits, self.config.model.h_eps)
        root = RootOutput(root_inf.policy_logits, value, self._root_node(root_inf.hidden))

        # the online network's model is `_recurrent_fn` itself (tests replace it); others bind
        recurrent_fn = self._recurrent_fn
        if net is not self.net:
            recurrent_fn = partial(self._recurrent_fn, net=net)

        # A finished game has no legal move (its action is ignored): search it unmasked.
        legal = legal | ~legal.any(-1, keepdim=True)
        sims = s.num_simulations if explore or not s.eval_simulations else s.eval_simulations
        if s.kind == "gumbel":
            cfg = GumbelMCTSConfig(
                num_simulations=sims,
                max_num_considered_actions=s.max_num_considered_actions,
                gumbel_scale=1.0 if explore else 0.0,
                two_player=self.two_player,
            )
            return gumbel_muzero_search(root, recurrent_fn, cfg, legal_actions=legal)
        cfg = MCTSConfig(
            num_simulations=sims,
            pb_c_init=s.pb_c_init,
            pb_c_base=s.pb_c_base,
            root_dirichlet_alpha=s.root_dirichlet_alpha,
            root_exploration_fraction=s.root_exploration_fraction if explore else 0.0,
            two_player=self.two_player,
            known_bounds=(-1.0, 1.0) if self.two_player else None,
            unvisited_value=s.unvisited_value,
        )
        temperature = self.temperature() if explore else 0.0
        return muzero_search(root, recurrent_fn, cfg, legal_actions=legal, temperature=temperature)

    def temperature(self) -> float:
        """Visit-count temperature at the current update count (search.temperature_steps)."""
        s = self.config.search
        bounds = (*s.temperature_steps, math.inf)
        return visit_temperature(self.updates, tuple(zip(bounds, s.temperatures)))

    # Acting
    def init_state(self, batch_size: int) -> dict:
        """MuZero reads one observation per move; the state only counts each game's moves (for
        ``search.temperature_moves``)."""
        return {"moves": np.zeros(batch_size, dtype=np.int64)}

    def _legal(self, obs: dict[str, Any], n: int) -> Tensor:
        if "legal" in obs:
            return torch.as_tensor(np.asarray(obs["legal"]), device=self.device).bool()
        return torch.ones(n, self.num_actions, dtype=torch.bool, device=self.device)

    @torch.no_grad()
    def act(self, state: dict, obs: dict[str, np.ndarray], mode: str) -> Step:
        """Search from each observation; the extras stored in replay are the search policy
        ``[N, A]`` and the root value ``[N]``."""
        x = torch.as_tensor(np.asarray(obs[self.key]), device=self.device)
        n = x.shape[0]
        explore = mode == "explore"
        out = self.search(x, self._legal(obs, n), explore=explore)
        action = out.action
        # Move number within each game: 0 at the game's first observation.
        moves = state["moves"]
        if "is_first" in obs:
            moves = np.where(np.asarray(obs["is_first"], dtype=bool), 0, moves)
        late = self.config.search.temperature_moves
        if explore and late > 0 and self.config.search.kind == "muzero":
            greedy = select_action(out.visit_counts, 0.0, prior=out.tree.children_prior[:, 0])
            past = torch.as_tensor(moves >= late, device=action.device)
            action = torch.where(past, greedy, action)
        policy = out.action_weights.float().cpu().numpy()
        root_value = out.root_value.float().cpu().numpy()
        extras = {"policy": policy, "root_value": root_value}
        return Step({**state, "moves": moves + 1}, action.cpu().numpy().astype(np.int64), extras)

    @torch.no_grad()
    def imagine_return(
        self,
        state: dict,
        obs: dict[str, np.ndarray],
        horizon: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """The return the model predicts for the agent's eval behaviour from ``obs``
        (``Imaginer``): for ``horizon`` steps search from the imagined hidden state as
        ``act(mode="eval")`` does, take the greedy action and add the predicted reward of
        g(s, a); no termination is predicted, and past the first step every move is legal (the
        model predicts no legal masks): ``[N]``. ``should_stop`` is asked before each search
        (``EvalInterrupted`` when it answers True)."""
        x = torch.as_tensor(np.asarray(obs[self.key]), device=self.device)
        inf, legal = self.net.initial_inference(x), self._legal(obs, x.shape[0])
        node = self._root_node(inf.hidden)
        total = torch.zeros(x.shape[0], device=self.device)
        for _ in range(horizon):
            check_stop(should_stop)
            action = self._search(inf, legal, explore=False).action
            reward, inf, node = self._step(node, action)
            total = total + reward.float()
            legal = torch.ones_like(legal)
        return total.cpu().numpy()

    # Learning
    def _reanalyse(self, data: dict[str, Tensor], policy: Tensor, root_value: Tensor) -> None:
        """Recompute the stored search policy and value of the first ``train.reanalyse_ratio``
        of the rows by a fresh batched search (MuZero Reanalyze; EfficientZero's policy
        reanalysis), in place on ``policy`` [B, L, A] and ``root_value`` [B, L]. The search runs
        with ``train.reanalyse_network`` (online or target) and, with ``train.reanalyse_noise``,
        the root's Dirichlet noise (as EfficientZero). Only the positions the targets read are
        searched: all L with stored-value bootstraps, else the K + 1 unrolled ones."""
        t = self.config.train
        B, L = root_value.shape
        rows = int(math.ceil(t.reanalyse_ratio * B))
        if rows <= 0:
            return
        cols = L if t.value_bootstrap == "search" else min(t.num_unroll_steps + 1, L)
        obs = data[self.key][:rows, :cols].flatten(0, 1)
        legal = (
            data["legal"][:rows, :cols].flatten(0, 1).bool()
            if "legal" in data
            else torch.ones(rows * cols, self.num_actions, dtype=torch.bool, device=self.device)
        )
        net = self.target_net if t.reanalyse_network == "target" else self.net
        out = self.search(obs, legal, explore=t.reanalyse_noise, net=net)
        policy[:rows, :cols] = out.action_weights.float().view(rows, cols, -1)
        root_value[:rows, :cols] = out.root_value.float().view(rows, cols)

    def targets(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """Replayed [B, L] window -> unroll targets for k = 0..K (MuZero Eq. 1-3).

        value [B, K+1] n-step targets z; reward [B, K+1] u (index 0 unused; with a value prefix
        the prefix sums of u, see :func:`value_prefix_targets`); policy [B, K+1, A];
        alive [B, K+1] (o_k is in o_0's episode; past its end the targets are absorbing zeros);
        policy_mask [B, K+1] (alive and not the episode's last step, where no move is made).
        """
        t = self.config.train
        policy, root_value = data["policy"].float().clone(), data["root_value"].float().clone()
        if t.reanalyse_ratio > 0:
            self._reanalyse(data, policy, root_value)
        if self.target_net is not None:  # fresh bootstraps from the target network
            obs = data[self.key].flatten(0, 1)
            value_logits = self.target_net.initial_inference(obs).value_logits
            root_value = self.target_net.scalar(value_logits, self.config.model.h_eps)
            root_value = root_value.float().view(policy.shape[:2])
        last, first = data["is_last"].bool(), data["is_first"].bool()
        td = self.td_steps(data)
        z = n_step_value_targets(
            data["reward"], root_value, last, data["is_terminal"], self.gamma, td, self.sign
        )
        K = t.num_unroll_steps
        ended = torch.cumsum((last[:, :K] | first[:, 1 : K + 1]).long(), 1) > 0
        alive = torch.cat([torch.ones_like(ended[:, :1]), ~ended], 1).float()
        reward = data["reward"][:, : K + 1].float() * alive
        if self.config.model.value_prefix:
            reward = value_prefix_targets(reward, self.config.model.lstm_horizon_len)
        return {
            "value": z[:, : K + 1] * alive,
            "reward": reward,
            "policy": policy[:, : K + 1],
            "alive": alive,
            "policy_mask": alive * (~last[:, : K + 1]).float(),
            "td_steps": torch.as_tensor(td, dtype=torch.float32).mean(),
        }

    def unroll(
        self, obs: Tensor, actions: Tensor, hidden_states: list[Tensor] | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """o_0 [B, obs...], a^1..a^K [B, K] -> value [B, K+1, 2S+1], policy [B, K+1, A] and
        reward [B, K, 2S+1] logits. The hidden state g passes on to the next g has its gradient
        scaled by ``train.dynamics_gradient_scale`` (MuZero pseudocode: 1/2, applied after each
        recurrent_inference); the root state from h is not scaled, so h gets the step-k losses'
        gradient times scale^(k-1). With a value prefix the reward logits are the prefix's, the
        LSTM starting from zero and reset after every step k that is a multiple of
        ``model.lstm_horizon_len`` (EfficientZero). ``hidden_states``, when given, receives
        s^1..s^K as g returned them (for the consistency loss)."""
        m = self.config.model
        inf = self.net.initial_inference(obs)
        hidden, state = inf.hidden, None
        values, policies, rewards = [inf.value_logits], [inf.policy_logits], []
        for k in range(actions.shape[1]):
            if m.value_prefix:
                inf = self.net.recurrent_inference(hidden, actions[:, k], state)
            else:
                inf = self.net.recurrent_inference(hidden, actions[:, k])
            hidden = scale_gradient(inf.hidden, self.config.train.dynamics_gradient_scale)
            if m.value_prefix:
                state = None if (k + 1) % m.lstm_horizon_len == 0 else inf.reward_state
            if hidden_states is not None:
                hidden_states.append(inf.hidden)
            values.append(inf.value_logits)
            policies.append(inf.policy_logits)
            rewards.append(inf.reward_logits)
        return torch.stack(values, 1), torch.stack(policies, 1), torch.stack(rewards, 1)

    def update(self, batch: dict[str, np.ndarray]) -> Update:
        """One gradient step on the K-step unroll; new priorities |v^0 - z_0| when the batch was
        sampled by priority (it has ``index``).

        l = sum_k scale_k (l^p(pi_k, p^k) + w_v l^v(z_k, v^k) + l^r(u_k, r^k)), scale_0 = 1
        (1/K with ``train.loss_scale=uniform``), scale_k = 1/K, the gradient between
        consecutive g steps halved (not the one from the first g into h), each sample weighted by
        its importance weight (MuZero Appendix G).
        """
        t, eps = self.config.train, self.config.model.h_eps
        source = self.augment(batch) if self._symmetries is not None else batch
        data = {k: torch.as_tensor(v, device=self.device) for k, v in source.items()}
        K = t.num_unroll_steps
        with torch.no_grad():
            tgt = self.targets(data)
        action = data["action"].long()
        weight = data["weight"].float() if "weight" in data else None

        # Unroll the model from o_0 with the replayed actions
        states: list[Tensor] | None = [] if t.consistency > 0 else None
        value_logits, policy_logits, reward_logits = self.unroll(
            data[self.key][:, 0], action[:, :K], states
        )

        # Losses per step, scaled 1 (or 1/K) at k = 0 and 1/K after
        value_l = self._scalar_loss(value_logits, tgt["value"])  # [B, K+1]
        reward_l = self._scalar_loss(reward_logits, tgt["reward"][:, 1:])  # [B, K]
        log_p = torch.log_softmax(policy_logits.float(), -1)
        policy_l = -(tgt["policy"] * log_p).sum(-1) * tgt["policy_mask"]  # [B, K+1]
        scale = self.step_scales()
        per_sample = (scale * (t.value_loss_weight * value_l + policy_l)).sum(1) + (
            scale[1:] * reward_l
        ).sum(1)
        consistency_l = None
        if states is not None:  # EfficientZero's self-supervised consistency, k = 1..K
            consistency_l = self._consistency_loss(states, data[self.key][:, 1 : K + 1])
            consistency_l = consistency_l * tgt["alive"][:, 1:]  # [B, K]
            per_sample = per_sample + t.consistency * (scale[1:] * consistency_l).sum(1)
        total = (per_sample * weight).mean() if weight is not None else per_sample.mean()
        lr = self.learning_rate()
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        gnorm = nn.utils.clip_grad_norm_(self.net.parameters(), self.config.optim.clip)
        step_if_finite(self.opt, gnorm)
        self.updates += 1
        if self.target_net is not None and self.updates % t.target_update_interval == 0:
            self.target_net.load_state_dict(self.net.state_dict())

        # New priorities |v^0 - z_0| (Appendix G)
        with torch.no_grad():
            v0 = self.net.scalar(value_logits[:, 0].detach(), eps)
            err = (v0 - tgt["value"][:, 0]).abs()
        priorities = (err + 1e-6).cpu().numpy() if "index" in batch else None
        metrics = {} if weight is None else {"replay/weight_mean": float(weight.mean())}
        metrics = {
            **metrics,
            "loss/value": float(value_l.detach().mean()),
            "loss/reward": float(reward_l.detach().mean()),
            "loss/policy": float(policy_l.detach().mean()),
            **(
                {"loss/consistency": float(consistency_l.detach().mean())}
                if consistency_l is not None
                else {}
            ),
            **({"value/td_steps": float(tgt["td_steps"])} if "td_steps" in tgt else {}),
            "loss/total": float(total.detach()),
            "grad/norm": float(gnorm),
            "value/target": float(tgt["value"][:, 0].mean()),
            "value/pred": float(v0.mean()),
            "value/abs_error": float(err.mean()),
            "search/temperature": self.temperature(),
            "optim/lr": lr,
        }
        return Update(metrics, priorities)

    def step_scales(self) -> Tensor:
        """[K + 1] scale of each unrolled step's losses: 1, 1/K, ..., 1/K (pseudocode) or 1/K
        at every step (``train.loss_scale=uniform``, EfficientZero)."""
        K = self.config.train.num_unroll_steps
        scale = torch.full((K + 1,), 1.0 / K, device=self.device)
        if self.config.train.loss_scale == "pseudocode":
            scale[0] = 1.0
        return scale

    def _consistency_loss(self, states: list[Tensor], obs: Tensor) -> Tensor:
        """EfficientZero's SimSiam loss: g's states s^1..s^K and the observations o_1..o_K
        [B, K, obs...] -> [B, K] negative cosine between the prediction head's output on s^k
        and the projection of h(o_k). The observation branch is a target: computed without
        gradient (the reference detaches it), so neither h nor the projector learn from it.
        Each step is projected on its own, so the projector's batch norm sees one step's batch
        (as the reference's per-step calls)."""
        losses = []
        for k, state in enumerate(states):  # one projection per step: batch norm per step
            online = self.net.project(state, predict=True)
            with torch.no_grad():
                target = self.net.project(self.net.represent(obs[:, k]), predict=False)
            losses.append(negative_cosine(online.float(), target.float()))
        return torch.stack(losses, 1)

    def _scalar_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """[..., 2S+1] (or [..., 1]) outputs, [...] targets -> [...] cross-entropy with the
        two-hot of h(target), or the squared error of a scalar head (board games)."""
        if self.mse:
            return (logits[..., 0].float() - target.float()) ** 2
        m = self.config.model
        return support_loss(logits, target, m.support_size, m.h_eps)

    def learning_rate(self) -> float:
        """lr * lr_decay_rate ** (updates / lr_decay_steps) (MuZero pseudocode), the exponent
        floored with ``lr_decay_staircase``; lr_decay_steps 0 = :func:`run_updates`, so the rate
        is reached at the run's end. With ``warmup_steps`` W the lr is lr * u / W for the
        first W updates u = 0..W-1 (EfficientZero's ``adjust_lr``: the first update has lr 0)
        and the decay counts u - W (over the run's updates less W when lr_decay_steps is 0)."""
        o = self.config.optim
        if self.updates < o.warmup_steps:
            return o.lr * self.updates / o.warmup_steps
        steps = o.lr_decay_steps or max(run_updates(self.config.run) - o.warmup_steps, 1)
        exponent = (self.updates - o.warmup_steps) / steps
        if o.lr_decay_staircase:
            exponent = math.floor(exponent)
        return o.lr * o.lr_decay_rate**exponent

    # Report
    @torch.no_grad()
    def report(self, batch: dict[str, np.ndarray], context: int = 5) -> dict[str, np.ndarray]:
        """A latent probe, not a prediction of observations (MuZero has no decoder):
        ``latent/distance`` ``[B, T]``, the normalised distance (``core.probe.latent_distance``:
        mean squared difference over the hidden state's elements / mean squared element of the
        represented states) between s_t rolled open loop from h(o_{context-1}) with the
        recorded actions, s_{t+1} = g(s_t, a_t), and h(o_t) of the true observation; zero over
        the context. MuZero never trains g's states to match h of later observations (only
        reward, value and policy), so a large distance does not mean a bad model."""
        T = batch["action"].shape[1]
        if not 0 < context < T:
            raise ValueError(f"report needs 0 < context < window length {T}, got {context}")
        obs = torch.as_tensor(batch[self.key], device=self.device)
        action = torch.as_tensor(batch["action"], device=self.device).long()
        B = obs.shape[0]
        encoded = self.net.represent(obs.flatten(0, 1)).reshape(B, T, -1)
        states, s = [encoded[:, :context]], self.net.represent(obs[:, context - 1])
        for t in range(context, T):
            s = self.net.dynamics(s, action[:, t - 1])[0]
            states.append(s.reshape(B, 1, -1))
        rolled = torch.cat(states, 1)
        return {
            "latent/distance": latent_distance(
                rolled.float().cpu().numpy(), encoded.float().cpu().numpy(), context
            )
        }

    # Persistence
    def state_dict(self) -> dict:
        d = {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "updates": self.updates}
        if self.target_net is not None:
            d["target_net"] = self.target_net.state_dict()
        return d

    def load_state_dict(self, d: dict) -> None:
        self.net.load_state_dict(d["net"])
        if self.target_net is not None:
            self.target_net.load_state_dict(d.get("target_net", d["net"]))
        self.opt.load_state_dict(d["opt"])
        self.updates = int(d["updates"])
