"""World Models (Ha & Schmidhuber 2018): V (a convolutional VAE) compresses each frame to z, M (an
MDN-RNN) predicts the next z, the reward and the episode's end, and C (a linear controller on
[z, h]) is evolved by CMA-ES on returns of rollouts run entirely inside M (``controller.mode``
``dream``, the paper's Doom experiment) or of real episodes (``real``, its CarRacing one).

The run is a pipeline of declared stages (``Traits.stages``), each resumable: ``data`` collects
random rollouts, ``vae`` fits V on their frames, ``encode`` writes every frame's (mu, logvar)
to ``encode/series.npz``, ``mdnrnn`` fits M on those sequences, ``controller`` evolves C; the
staged mode then evaluates C in the real env.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...core import AgentBase, Stage, Step, Traits, Update
from ...envs.base import ActionSpace, Spec
from ...envs.vector import VectorEnv
from ...errors import UserError
from ...models.mdnrnn import MDNRNN, done_loss, done_prob, mdn_nll, repeated, sample_z
from ...models.vae import ConvVAE, frames_to_input, output_to_frames, vae_loss
from ...planners.cmaes import CMAES
from .config import WorldModelsConfig

THRESHOLD = 1.0 / 3.0
"""doomreal.py: a tanh output below -1/3 moves left, above 1/3 right, else nothing."""
COLLECT_SCALE = 0.01
"""carracing/extract.py: a random-weight controller's weights are standard Cauchy draws times a
scale drawn uniformly from [0, COLLECT_SCALE] for each episode."""
MID_START_POOL = 4096
"""Recorded mid-episode frames kept as dream starts (``controller.mid_starts``)."""


def image_key(obs_space: dict[str, Spec]) -> str | None:
    """The observation key holding ``[H, W, C]`` uint8 frames, if any."""
    for k, s in obs_space.items():
        if len(s.shape) == 3 and np.dtype(s.dtype) == np.uint8:
            return k
    return None


class WorldModelsAgent(AgentBase):
    """V + M + C of Ha & Schmidhuber (2018), trained as a staged pipeline."""

    name = "worldmodels"

    @classmethod
    def prepare(cls, config: WorldModelsConfig, env) -> None:
        """Refuse envs without 64x64 frames (V is the reference's 64x64 conv VAE)."""
        key = image_key(env.obs_space)
        if key is None:
            raise UserError(
                "worldmodels learns from pixels; this env has no image observation. "
                "fix: use a pixel env (e.g. doom:take_cover) or --obs pixels"
            )
        shape = tuple(env.obs_space[key].shape)
        if shape[:2] != (64, 64):
            raise UserError(
                f"worldmodels' VAE takes 64x64 frames; this env's '{key}' is {shape}. "
                "fix: use an env that renders 64x64 frames (doom:, or --obs pixels)"
            )
        c, space = config.controller, env.act_space
        names = [n.lower() for n in (getattr(env, "action_names", None) or ())]
        lr = sorted(names) == ["left", "none", "right"]
        if c.discrete == "auto" and space.discrete:
            c.discrete = "threshold" if lr else "argmax"
        if lr:
            c.threshold_actions = tuple(names.index(k) for k in ("none", "left", "right"))
        if c.discrete == "threshold" and space.discrete and space.n != 3:
            raise UserError(
                f"controller.discrete=threshold reads (none, left, right) off one output; this "
                f"env has {space.n} actions. fix: --set controller.discrete=argmax"
            )
        if c.continuous == "carracing" and (space.discrete or space.n != 3):
            kind = f"{space.n} discrete actions" if space.discrete else f"{space.n} dimensions"
            raise UserError(
                f"controller.continuous=carracing maps (steer, gas, brake); this env's action "
                f"has {kind}. fix: --set controller.continuous=tanh or use gym:CarRacing-v3"
            )

    def __init__(
        self,
        config: WorldModelsConfig,
        obs_space: dict[str, Spec],
        act_space: ActionSpace,
        device: torch.device | str = "cpu",
    ):
        self.config, self.obs_space, self.act_space = config, obs_space, act_space
        self.device = torch.device(device)
        key = image_key(obs_space)
        if key is None:
            raise UserError("worldmodels needs an image observation; fix: use a pixel env")
        self.key = key
        channels = int(obs_space[key].shape[-1])
        self.traits = Traits(
            prefill="policy",
            stages=(
                Stage("data", "collect", episodes=config.data.episodes, policy="agent"),
                Stage("vae", "fit"),
                Stage("encode", "fit"),
                Stage("mdnrnn", "fit"),
                Stage("controller", "fit"),
            ),
        )
        v, m, c = config.vae, config.mdnrnn, config.controller
        self.discrete = act_space.discrete
        self.n_act = act_space.n
        """M's action input is n_act wide: a one-hot (discrete) or the action vector."""
        self.vae = ConvVAE(v.z_dim, channels, v.depth).to(self.device)
        self.mdn = MDNRNN(v.z_dim, self.n_act, m.hidden, m.mixtures).to(self.device)
        self.vae_opt = torch.optim.Adam(self.vae.parameters(), lr=v.lr)
        self.mdn_opt = torch.optim.Adam(self.mdn.parameters(), lr=m.lr)
        self.threshold = act_space.discrete and c.discrete == "threshold"
        self.c_in = v.z_dim + m.hidden * (2 if c.inputs == "zch" else 1)
        self.c_out = 1 if self.threshold else self.n_act
        self.c_dim = (self.c_in + int(c.bias)) * self.c_out
        self.controller = torch.zeros(self.c_dim, device=self.device)
        self.initial_z = torch.zeros(0, 2, v.z_dim)
        """(mu, logvar) of recorded episodes' first frames: where dreams start."""
        self.mid_pool: dict[str, Tensor] | None = None
        """Recorded mid-episode dream starts (``controller.mid_starts``): (mu, logvar)
        ``[P, 2, Z]``, M's warmed-up memory h, c ``[P, H]`` and the step t ``[P]``; built from
        the encoded episodes and the trained M when the controller stage begins."""
        self.done: list[str] = []
        """Names of the fit stages finished."""
        self.progress: dict[str, Any] = {}
        """Where an unfinished fit stage stands (resumed from it)."""
        self.seed = int(torch.randint(2**31 - 1, ()).item())
        """Drawn from the run's seeded torch RNG; seeds the collection policy and CMA-ES."""
        self.rng = np.random.default_rng(self.seed)

    # Actions
    def _onehot(self, action: Tensor) -> Tensor:
        """M's action input ``[..., n_act]`` from env actions (indices or vectors)."""
        if self.discrete:
            return torch.nn.functional.one_hot(action.long(), self.n_act).float()
        return action.float()

    def controller_actions(self, params: Tensor, x: Tensor) -> Tensor:
        """C's env actions for inputs ``x`` ``[N, c_in]`` under parameters ``[N, c_dim]`` (one
        controller per row): indices ``[N]`` (discrete) or ``[N, A]`` in [-1, 1]."""
        c = self.config.controller
        if c.bias:
            x = torch.cat([x, torch.ones_like(x[:, :1])], -1)
        w = params.view(len(params), x.shape[-1], self.c_out)
        y = torch.einsum("ni,nio->no", x, w)
        if self.threshold:
            y = torch.tanh(y[:, 0])
            none, left, right = self.config.controller.threshold_actions
            return torch.where(y < -THRESHOLD, left, torch.where(y > THRESHOLD, right, none)).long()
        if self.discrete:
            return y.argmax(-1)
        y = torch.tanh(y)
        if c.continuous == "carracing":  # brake = clip(tanh, 0, 1) in [0, 1], as [-1, 1]
            y = torch.cat([y[:, :2], 2.0 * y[:, 2:].clamp(min=0.0) - 1.0], -1)
        return y

    def _c_input(self, z: Tensor, state: tuple[Tensor, Tensor]) -> Tensor:
        h, c = state
        if self.config.controller.inputs == "zch":
            return torch.cat([z, c, h], -1)
        return torch.cat([z, h], -1)

    # Acting
    def init_state(self, n: int) -> dict[str, Any]:
        """M's memory, the previous step's (z, action, restart) it has yet to consume, and the
        collection policy's held action and steps left to hold it (``held``) or its episode's
        random controller (``controller``)."""
        z = self.config.vae.z_dim
        h, c = self.mdn.initial(n, self.device)
        return {
            "h": h,
            "c": c,
            "z": torch.zeros(n, z, device=self.device),
            "a": torch.zeros(n, self.n_act, device=self.device),
            "restart": torch.ones(n, device=self.device),
            "held": np.zeros((n, *self._act_shape()), self._act_dtype()),
            "left": np.zeros(n, np.int64),
            "params": torch.zeros(n, self.c_dim, device=self.device),
        }

    def _act_shape(self) -> tuple[int, ...]:
        return () if self.discrete else (self.n_act,)

    def _act_dtype(self):
        return np.int64 if self.discrete else np.float32

    @property
    def trained(self) -> bool:
        return "controller" in self.done

    def _random_actions(self, state: dict, is_first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """extract.py's collection policy: a uniform random action held for 1..repeat_max
        steps (drawn anew at every episode start)."""
        held, left = state["held"].copy(), state["left"].copy()
        for i in range(len(left)):
            if is_first[i] or left[i] <= 0:
                if self.discrete:
                    held[i] = self.rng.integers(self.n_act)
                else:
                    held[i] = self.rng.uniform(-1.0, 1.0, self.n_act).astype(np.float32)
                left[i] = self.rng.integers(1, self.config.data.repeat_max + 1)
            left[i] -= 1
        return held, left

    def _random_controllers(self, state: dict, is_first: np.ndarray) -> Tensor:
        """carracing/extract.py's collection policy: every env's controller parameters, drawn
        anew at each episode start (standard Cauchy times a scale uniform in [0, 0.01])."""
        params = state["params"].clone()
        for i in np.flatnonzero(is_first):
            scale = self.rng.uniform(0.0, COLLECT_SCALE)
            draw = self.rng.standard_cauchy(self.c_dim) * scale
            params[i] = torch.as_tensor(draw, dtype=torch.float32, device=self.device)
        return params

    def _c_step(
        self,
        state: dict,
        obs: dict[str, np.ndarray],
        params: Tensor,
        generator: torch.Generator | None = None,
        encoded: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[dict, Tensor]:
        """One step of V + M + C with one controller per env (``params`` ``[n, c_dim]``): M
        consumes the previous step's (z, action), its memory restarts where an episode starts,
        V encodes the frame (z sampled from q(z|x), as doomreal.py; the noise from
        ``generator`` if given) and C acts on [z, (c,) h]; ``encoded``: V's (mu, logvar) of
        these frames where the caller has them already. Returns (state, actions)."""
        first = torch.as_tensor(np.asarray(obs["is_first"], bool), device=self.device)
        _, (h, c) = self.mdn.step(
            state["z"], state["a"], state["restart"], (state["h"], state["c"])
        )
        keep = (~first).float().unsqueeze(-1)
        h, c = h * keep, c * keep
        if encoded is None:
            encoded = self.vae.encode(frames_to_input(obs[self.key], self.device))
        mu, logvar = encoded
        if generator is None:
            eps = torch.randn_like(mu)
        else:
            eps = torch.randn(mu.shape, generator=generator, device=generator.device)
        z = mu + torch.exp(logvar / 2) * eps.to(self.device)
        action = self.controller_actions(params, self._c_input(z, (h, c)))
        new = {
            **state,
            "h": h,
            "c": c,
            "z": z,
            "a": self._onehot(action),
            "restart": first.float(),
        }
        return new, action

    @torch.no_grad()
    def act(self, state: dict, obs: dict[str, np.ndarray], mode: str) -> Step:
        """Before C is evolved (the ``data`` stage): the random collection policy
        (``data.policy``). After: :meth:`_c_step` with the evolved C; M's memory restarts
        with each episode."""
        is_first = np.asarray(obs["is_first"], bool)
        if not self.trained:
            if self.config.data.policy == "controller":
                params = self._random_controllers(state, is_first)
                new, action = self._c_step({**state, "params": params}, obs, params)
                return Step(new, action.cpu().numpy().astype(self._act_dtype()), {})
            held, left = self._random_actions(state, is_first)
            return Step({**state, "held": held, "left": left}, held.copy(), {})
        params = self.controller.expand(len(is_first), -1)
        new, action = self._c_step(state, obs, params)
        return Step(new, action.cpu().numpy().astype(self._act_dtype()), {})

    def update(self, batch: dict[str, np.ndarray]) -> Update:
        raise UserError("worldmodels trains in stages (worldmodels train runs them); no updates")

    # Stages
    def run_stage(self, stage: Stage, context: Any) -> dict[str, float]:
        fit = {
            "vae": self._fit_vae,
            "encode": self._encode,
            "mdnrnn": self._fit_mdnrnn,
            "controller": self._evolve,
        }
        if stage.name not in fit:
            return super().run_stage(stage, context)
        metrics = fit[stage.name](context)
        if not context.should_stop():
            self.done.append(stage.name)
            self.progress.pop(stage.name, None)
        return metrics

    def _saver(self, context: Any) -> Callable[[bool], None]:
        """Checkpoint through the staged mode every ``save_every_s`` (or at once when forced)."""
        last = [time.perf_counter()]

        def maybe_save(force: bool = False) -> None:
            if force or time.perf_counter() - last[0] >= self.config.save_every_s:
                context.save()
                last[0] = time.perf_counter()

        return maybe_save

    # V
    @staticmethod
    def _frame_chunks(replay, key: str) -> list[np.ndarray]:
        """The frames held, chunk by chunk (views, nothing copied)."""
        return [chunk[key] for seg in replay.segments() for chunk in seg]

    def _fit_vae(self, context: Any) -> dict[str, float]:
        """V on every collected frame, ``vae.epochs`` passes in a fresh random order each, or
        its first ``vae.max_updates`` batches."""
        v = self.config.vae
        chunks = self._frame_chunks(context.replay, self.key)
        sizes = np.array([len(c) for c in chunks])
        total = int(sizes.sum())
        if total == 0:
            raise UserError("the vae stage found no frames; fix: run the data stage first")
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        p = self.progress.setdefault("vae", {"epoch": 0, "batch": 0})
        per_epoch = math.ceil(total / v.batch_size)
        saver = self._saver(context)
        sums: dict[str, float] = {}
        last: dict[str, float] = {}
        count = 0
        while p["epoch"] < v.epochs:
            order = np.random.default_rng([p["epoch"], 17]).permutation(total)
            while p["batch"] < per_epoch:
                if v.max_updates and p["epoch"] * per_epoch + p["batch"] >= v.max_updates:
                    p["epoch"] = v.epochs  # the cap ends the stage
                    break
                if context.should_stop():
                    return {}
                idx = np.sort(order[p["batch"] * v.batch_size : (p["batch"] + 1) * v.batch_size])
                which = np.searchsorted(offsets, idx, side="right") - 1
                frames = np.stack([chunks[w][i - offsets[w]] for w, i in zip(which, idx)])
                x = frames_to_input(frames, self.device)
                x_hat, mu, logvar, _ = self.vae(x)
                loss, parts = vae_loss(x, x_hat, mu, logvar, v.kl_tolerance)
                self.vae_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.vae_opt.step()
                for k, val in {"loss": loss, **parts}.items():
                    sums[k] = sums.get(k, 0.0) + float(val.detach())
                count += 1
                p["batch"] += 1
                if count == 50:  # a row per 50 batches: their means
                    last = {k: s / count for k, s in sums.items()}
                    context.log({f"vae/{k}": v for k, v in last.items()})
                    sums, count = {}, 0
                saver()
            else:
                p["epoch"] += 1
                p["batch"] = 0
        return {k: s / count for k, s in sums.items()} if count else last

    # Encode
    def series_path(self, run_dir: Path) -> Path:
        return Path(run_dir) / "encode" / "series.npz"

    @torch.no_grad()
    def _encode(self, context: Any) -> dict[str, float]:
        """(mu, logvar) of every frame under the trained V, with the actions, rewards and
        episode flags, one array per stream: ``encode/series.npz`` (M's training data); the
        first frames' (mu, logvar) are where dreams start."""
        v = self.config.vae
        keys = ("action", "reward", "is_first", "is_last", "is_terminal")
        segments = context.replay.segments()
        # (mu, logvar) of every frame go into two arrays allocated once, not one small array per
        # batch: small long-lived allocations between the batches' large transient ones fragment
        # the C heap until it holds several times the frames (measured: 7.9 -> 23.7 GB, killed,
        # on 626k frames).
        total = sum(len(chunk[self.key]) for seg in segments for chunk in seg)
        out = {name: np.empty((total, v.z_dim), np.float16) for name in ("mu", "logvar")}
        series: list[dict[str, np.ndarray]] = []
        at = 0
        for seg in segments:
            start = at
            for chunk in seg:
                frames = chunk[self.key]
                for i in range(0, len(frames), 256):
                    mu, logvar = self.vae.encode(frames_to_input(frames[i : i + 256], self.device))
                    out["mu"][at : at + len(mu)] = mu.cpu().numpy()
                    out["logvar"][at : at + len(mu)] = logvar.cpu().numpy()
                    at += len(mu)
            series.append(
                {
                    "mu": out["mu"][start:at],
                    "logvar": out["logvar"][start:at],
                    **{k: np.concatenate([np.asarray(chunk[k]) for chunk in seg]) for k in keys},
                }
            )
        if not series:
            raise UserError("the encode stage found no frames; fix: run the data stage first")
        path = self.series_path(context.run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"{i}/{k}": a for i, s in enumerate(series) for k, a in s.items()})
        os.replace(tmp, path)
        firsts = [np.stack([s["mu"][s["is_first"]], s["logvar"][s["is_first"]]], 1) for s in series]
        self.initial_z = torch.as_tensor(np.concatenate(firsts).astype(np.float32))
        frames = sum(len(s["mu"]) for s in series)
        return {"frames": float(frames), "episodes": float(len(self.initial_z)), "z_dim": v.z_dim}

    # M
    def _fit_mdnrnn(self, context: Any) -> dict[str, float]:
        """M on the encoded episodes (rnn_train.py): each epoch shuffles the episodes, lays them
        end to end into ``batch_size`` streams and cuts those into sequences of ``seq_len``
        transitions; the LSTM state is carried along a stream and reset at episode starts; z is
        sampled from each frame's (mu, logvar) anew for every batch. The transition from an
        episode's last frame to the next episode's first is not trained on."""
        m = self.config.mdnrnn
        path = self.series_path(context.run_dir)
        if not path.exists():
            raise UserError(f"the mdnrnn stage needs {path}; fix: run the encode stage first")
        episodes = split_episodes(load_series(path))
        p = self.progress.setdefault("mdnrnn", {"epoch": 0, "batch": 0, "updates": 0})
        saver = self._saver(context)
        sums: dict[str, float] = {}
        last: dict[str, float] = {}
        count = 0
        while p["epoch"] < m.epochs:
            rng = np.random.default_rng([p["epoch"], 29])
            streams = make_streams(episodes, m.batch_size, rng)
            n_batches = (streams["mu"].shape[1] - 1) // m.seq_len
            if n_batches == 0:
                raise UserError(
                    f"mdnrnn.seq_len {m.seq_len} x batch_size {m.batch_size} exceeds the "
                    f"{sum(len(e['mu']) for e in episodes)} frames collected; fix: collect more "
                    "episodes (data.episodes) or lower mdnrnn.seq_len / mdnrnn.batch_size"
                )
            state = self.mdn.initial(m.batch_size, self.device)
            for b in range(n_batches):
                sl = slice(b * m.seq_len, (b + 1) * m.seq_len + 1)
                win = {k: torch.as_tensor(v[:, sl], device=self.device) for k, v in streams.items()}
                if b < p["batch"]:  # resumed mid-epoch: replay the state up to here
                    with torch.no_grad():
                        state = self._mdn_forward(win, state, rng)[1]
                    continue
                if context.should_stop():
                    return {}
                losses, state = self._mdn_forward(win, state, rng)
                lr = (m.lr - m.lr_min) * m.lr_decay ** p["updates"] + m.lr_min
                for g in self.mdn_opt.param_groups:
                    g["lr"] = lr
                self.mdn_opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                torch.nn.utils.clip_grad_value_(self.mdn.parameters(), m.grad_clip)
                self.mdn_opt.step()
                state = (state[0].detach(), state[1].detach())
                for k, val in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(val.detach())
                count += 1
                p["batch"] = b + 1
                p["updates"] += 1
                saver()
            last = {k: s / max(count, 1) for k, s in sums.items()}  # this epoch's means
            context.log({f"mdnrnn/{k}": v for k, v in last.items()})
            sums, count = {}, 0
            p["epoch"] += 1
            p["batch"] = 0
        return last

    def _mdn_forward(self, win: dict[str, Tensor], state, rng: np.random.Generator):
        """M's losses on one window ``{key: [B, L + 1, ...]}`` from ``state``."""
        m = self.config.mdnrnn
        mu, logvar = win["mu"].float(), win["logvar"].float()
        eps = torch.as_tensor(rng.standard_normal(mu.shape, dtype=np.float32), device=self.device)
        z = mu + torch.exp(logvar / 2) * eps
        a = self._onehot(win["action"][:, :-1])
        restart = win["is_first"][:, :-1].float()
        out, state = self.mdn(z[:, :-1], a, restart, state)
        valid = (~win["is_last"][:, :-1].bool()).float()  # [B, L]
        n = valid.sum().clamp(min=1.0)
        z_nll = (mdn_nll(out, z[:, 1:]).mean(-1) * valid).sum() / n
        done_t = win["is_terminal"][:, 1:].float()
        d = (done_loss(out.done_logit, done_t, m.done_factor) * valid).sum() / n
        r = ((out.reward - win["reward"][:, 1:].float()) ** 2 * valid).sum() / n
        loss = z_nll + d + m.reward_scale * r
        return {"loss": loss, "z_nll": z_nll, "done": d, "reward": r}, state

    # C
    @torch.no_grad()
    def dream(
        self,
        params: Tensor,
        temperature: float,
        generator: torch.Generator,
        max_steps: int | None = None,
        repeat: int = 1,
    ) -> tuple[Tensor, Tensor]:
        """Roll ``len(params)`` controllers out inside M, all on one tensor, each from a
        recorded episode's first frame (z sampled from its (mu, logvar)) with M's memory at
        zero, as an episode starts (doomrnn.py's DoomCoverRNNEnv). Each step C acts on
        [z, (c,) h], M consumes (z, action), predicts the reward and whether the episode ends,
        and z is sampled at ``temperature``. A dream ends where M predicts the end, or at
        ``max_steps`` like the real episode. ``repeat`` > 1: the N dreams are ``repeat`` blocks
        that share their random numbers (starts, samples and sampled ends), row i those of row
        i mod N / repeat. Returns (returns ``[N]``, lengths ``[N]``)."""
        c = self.config.controller
        if len(self.initial_z) == 0:
            raise UserError("no encoded first frames to dream from; fix: run the encode stage")
        max_steps = c.max_steps if max_steps is None else max_steps
        n = len(params)
        dev = generator.device
        draw = functools.partial(repeated, repeat=repeat, generator=generator, device=dev)
        pick = draw(functools.partial(torch.randint, len(self.initial_z)), (n,))
        start = self.initial_z.to(dev)[pick].to(self.device)
        eps = draw(torch.randn, start[:, 0].shape).to(self.device)
        z = start[:, 0] + torch.exp(start[:, 1] / 2) * eps
        state = self.mdn.initial(n, self.device)
        restart, not_first = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
        cap = torch.full((n,), max_steps, dtype=torch.long, device=self.device)
        if c.mid_starts > 0:
            z, state, restart, cap = self._mid_starts(z, state, restart, cap, draw)
        alive = torch.ones(n, dtype=torch.bool, device=self.device)
        ret = torch.zeros(n, device=self.device)
        length = torch.zeros(n, dtype=torch.long, device=self.device)
        for _ in range(max_steps):
            action = self.controller_actions(params, self._c_input(z, state))
            out, state = self.mdn.step(z, self._onehot(action), restart, state)
            ret += alive.float() * out.reward
            length += alive.long()
            p_done = done_prob(out)
            if c.done == "threshold":
                ended = p_done > 0.5
            else:
                ended = draw(torch.rand, (n,)).to(self.device) < p_done
            alive &= ~ended & (length < cap)
            if not bool(alive.any()):
                break
            z = sample_z(out, temperature, generator, repeat=repeat)
            restart = not_first
        return ret, length

    def _mid_starts(
        self,
        z: Tensor,
        state: tuple[Tensor, Tensor],
        restart: Tensor,
        cap: Tensor,
        draw: Callable[..., Tensor],
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
        """Replace a ``controller.mid_starts`` fraction of the dream starts (z, memory, restart,
        step cap ``[N]``) with recorded mid-episode frames of :attr:`mid_pool`; random numbers
        from ``draw(fn, shape)`` (the dream's)."""
        pool = self.mid_pool
        if pool is None:
            raise UserError(
                "controller.mid_starts needs the recorded mid-episode starts; fix: build them "
                "with build_mid_pool (the controller stage does) after the encode and mdnrnn "
                "stages"
            )
        n = len(z)
        mid = draw(torch.rand, (n,)) < self.config.controller.mid_starts
        j = draw(functools.partial(torch.randint, len(pool["t"])), (n,))
        eps = draw(torch.randn, z.shape).to(self.device)
        mid, j = mid.to(self.device), j.to(self.device)
        stats = pool["z"][j]
        z_mid = stats[:, 0] + torch.exp(stats[:, 1] / 2) * eps
        m1 = mid.unsqueeze(-1)
        z = torch.where(m1, z_mid, z)
        state = (torch.where(m1, pool["h"][j], state[0]), torch.where(m1, pool["c"][j], state[1]))
        restart = torch.where(mid, torch.zeros_like(restart), restart)
        left = (self.config.controller.max_steps - pool["t"][j]).clamp(min=1)
        cap = torch.where(mid, torch.minimum(cap, left), cap)
        return z, state, restart, cap

    @torch.no_grad()
    def build_mid_pool(self, episodes: list[dict[str, np.ndarray]]) -> None:
        """:attr:`mid_pool` from encoded episodes (``split_episodes``): ``MID_START_POOL``
        frames drawn uniformly (seeded by the agent's seed) from every episode's steps 1 .. its
        last but one (and below ``controller.max_steps``); for each, M's memory after consuming
        the episode's earlier steps (V's means, the recorded actions, ``restart`` at step 0),
        all episodes stepped side by side."""
        cap = self.config.controller.max_steps
        eps_ok = [e for e in episodes if len(e["mu"]) > 2 and bool(e["is_first"][0])]
        cands = [(i, t) for i, e in enumerate(eps_ok) for t in range(1, min(len(e["mu"]) - 1, cap))]
        if not cands:
            raise UserError(
                "controller.mid_starts found no recorded mid-episode frame (an episode's "
                "steps 1 .. its last but one, below controller.max_steps); fix: collect more "
                "episodes (data.episodes) or set controller.mid_starts=0"
            )
        rng = np.random.default_rng([self.seed, 31])
        take = rng.choice(len(cands), size=min(MID_START_POOL, len(cands)), replace=False)
        picks = sorted(cands[k] for k in take)
        used = sorted({i for i, _ in picks})
        row = {i: r for r, i in enumerate(used)}
        T = max(t for _, t in picks)
        z_dim = self.config.vae.z_dim
        a0 = np.asarray(eps_ok[used[0]]["action"])
        mu = np.zeros((len(used), T, z_dim), np.float32)
        act = np.zeros((len(used), T, *a0.shape[1:]), np.int64 if self.discrete else np.float32)
        for i in used:
            e = eps_ok[i]
            k = min(T, len(e["mu"]))
            mu[row[i], :k] = e["mu"][:k]
            act[row[i], :k] = np.asarray(e["action"][:k])
        mu, act = torch.as_tensor(mu, device=self.device), torch.as_tensor(act, device=self.device)
        by_t: dict[int, list[int]] = {}
        for k, (_, t) in enumerate(picks):
            by_t.setdefault(t, []).append(k)
        H = self.config.mdnrnn.hidden
        h_out = torch.zeros(len(picks), H, device=self.device)
        c_out = torch.zeros_like(h_out)
        state = self.mdn.initial(len(used), self.device)
        restart = torch.ones(len(used), device=self.device)
        for t in range(T):
            _, state = self.mdn.step(mu[:, t], self._onehot(act[:, t]), restart, state)
            restart = torch.zeros_like(restart)
            ks = by_t.get(t + 1, [])
            if ks:  # memory after consuming steps 0..t: the start of step t + 1
                rows = torch.as_tensor([row[picks[k][0]] for k in ks], device=self.device)
                h_out[ks], c_out[ks] = state[0][rows], state[1][rows]
        stats = [np.stack([eps_ok[i]["mu"][t], eps_ok[i]["logvar"][t]]) for i, t in picks]
        self.mid_pool = {
            "z": torch.as_tensor(np.stack(stats).astype(np.float32), device=self.device),
            "h": h_out,
            "c": c_out,
            "t": torch.as_tensor([t for _, t in picks], device=self.device),
        }

    def dream_fitness(
        self, solutions: np.ndarray, rollouts: int, temperature: float, seed: int
    ) -> np.ndarray:
        """Mean dream return of each candidate ``[P, c_dim]`` over ``rollouts`` dreams."""
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        params = torch.as_tensor(solutions, dtype=torch.float32, device=self.device)
        params = params.repeat_interleave(rollouts, 0)
        repeat = len(solutions) if self.config.controller.common_dreams else 1
        ret, _ = self.dream(params, temperature, gen, repeat=repeat)
        return ret.view(len(solutions), rollouts).mean(1).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def real_fitness(
        self,
        solutions: np.ndarray,
        rollouts: int,
        envs: VectorEnv,
        seed: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray | None:
        """Mean real return of each candidate ``[P, c_dim]`` over ``rollouts`` episodes
        (carracing/train.py). Episode ``k`` (candidate ``k // rollouts``) is reset with seed
        ``seed + k``; ``envs`` play them ``envs.num_envs`` at a time, C acting through
        :meth:`_c_step` (V's noise from a generator seeded ``seed``). An episode ends where the
        env ends it or after ``controller.max_steps`` steps. None if ``should_stop`` turned
        true on the way (the generation is then replayed on resume)."""
        c = self.config.controller
        params = torch.as_tensor(solutions, dtype=torch.float32, device=self.device)
        params = params.repeat_interleave(rollouts, 0)
        total, width = len(params), envs.num_envs
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        returns = np.zeros(total)
        for start in range(0, total, width):
            rows = np.arange(start, start + width)
            real = rows < total
            batch = params[torch.as_tensor(np.minimum(rows, total - 1), device=self.device)]
            obs = envs.reset(seed=int(seed) + start)
            state = self.init_state(width)
            alive = np.ones(width, bool)
            ret = np.zeros(width)
            for _ in range(c.max_steps):
                if should_stop is not None and should_stop():
                    return None
                state, action = self._c_step(state, obs, batch, gen)
                obs = envs.step(action.cpu().numpy().astype(self._act_dtype()))
                ret += np.where(alive, obs["reward"], 0.0)
                alive &= ~np.asarray(obs["is_last"], bool)
                if not (alive & real).any():
                    break
            returns[rows[real]] = ret[real]
        return returns.reshape(len(solutions), rollouts).mean(1)

    def _real_envs(self, context: Any) -> VectorEnv:
        """``controller.real_envs`` envs of the run (fewer where a generation plays fewer
        episodes), sized so that the episodes split into equal batches."""
        c = self.config.controller
        most = max(c.popsize * c.rollouts, c.eval_rollouts if c.eval_every else 1)
        batches = math.ceil(most / c.real_envs)
        n = math.ceil(most / batches)
        return VectorEnv([functools.partial(context.make_env, self.seed + i) for i in range(n)])

    def _evolve(self, context: Any) -> dict[str, float]:
        """C by CMA-ES (train.py): each generation every candidate's fitness is its mean return
        over ``rollouts`` dreams inside M (``controller.mode=dream``, doomrnn/) or real
        episodes (``real``, carracing/); every ``eval_every`` generations the mean of the
        search distribution is scored on ``eval_rollouts`` fresh rollouts and the best scored
        mean becomes C. Resumes from its last finished generation."""
        c = self.config.controller
        if "mdnrnn" not in self.done:
            raise UserError("the controller stage needs a trained M; fix: run the mdnrnn stage")
        envs = self._real_envs(context) if c.mode == "real" else None
        if c.mode == "dream" and c.mid_starts > 0 and self.mid_pool is None:
            self.build_mid_pool(split_episodes(load_series(self.series_path(context.run_dir))))
        try:
            return self._evolve_with(context, envs)
        finally:
            if envs is not None:
                envs.close()

    def _fitness(
        self, solutions: np.ndarray, rollouts: int, seed: int, envs: VectorEnv | None, context
    ) -> np.ndarray | None:
        """Mean return per candidate in the dream or the real env (``controller.mode``)."""
        c = self.config.controller
        if envs is None:
            return self.dream_fitness(solutions, rollouts, c.temperature, seed=seed)
        base = int(np.random.default_rng([self.seed, seed % 2**32]).integers(2**30))
        return self.real_fitness(solutions, rollouts, envs, base, context.should_stop)

    def _evolve_with(self, context: Any, envs: VectorEnv | None) -> dict[str, float]:
        c = self.config.controller
        tag = c.mode
        p = self.progress.get("controller")
        es = CMAES(self.c_dim, c.popsize, c.sigma0, seed=self.seed)
        if p is None:
            p = self.progress["controller"] = {
                "es": es_to_arrays(es.state_dict()),
                "best": -math.inf,
                "best_params": None,
            }
        else:
            es.load_state_dict(es_from_arrays(p["es"]))
        saver = self._saver(context)
        last: dict[str, float] = {}
        while es.generation < c.generations:
            if context.should_stop():
                return {}
            g = es.generation
            solutions = es.ask()
            fitness = self._fitness(solutions, c.rollouts, 1_000_003 * g, envs, context)
            if fitness is None:
                return {}
            es.tell(solutions, fitness)
            last = {
                "fitness_mean": float(fitness.mean()),
                "fitness_max": float(fitness.max()),
                "sigma": float(es.sigma),
            }
            if c.eval_every and (g + 1) % c.eval_every == 0 or g + 1 == c.generations:
                mean = np.asarray(es.mean)[None]
                if c.eval_every:
                    scores = self._fitness(mean, c.eval_rollouts, -1 - g, envs, context)
                    if scores is None:
                        return {}
                    score, cand = float(scores[0]), mean[0]
                else:
                    cand, score = es.best
                last[f"{tag}_eval"] = score
                if score > p["best"]:
                    p["best"], p["best_params"] = score, np.asarray(cand).copy()
            context.log({f"controller/{k}": v for k, v in last.items()})
            p["es"] = es_to_arrays(es.state_dict())
            saver(force=True)  # a kill loses at most the generation in progress
        if p["best_params"] is None:
            p["best_params"], p["best"] = np.asarray(es.mean), -math.inf
        self.controller = torch.as_tensor(p["best_params"], dtype=torch.float32).to(self.device)
        return {**last, f"{tag}_best": float(p["best"])}

    # Report
    @torch.no_grad()
    def report(self, batch: dict[str, np.ndarray], context: int = 5) -> dict[str, np.ndarray]:
        """Open loop on replay windows ``[B, T]``: V encodes ``context`` frames and M consumes
        them with the recorded actions; then M alone predicts z under the recorded actions (at
        ``controller.temperature``) and V decodes every z: ``image/real``, ``image/model``
        (the decoded z: V's reconstruction over the context) and ``image/error``."""
        frames = np.asarray(batch[self.key])
        B, T = frames.shape[:2]
        gen = torch.Generator(device=self.device).manual_seed(0)
        x = frames_to_input(frames.reshape(B * T, *frames.shape[2:]), self.device)
        mu, _ = self.vae.encode(x)
        mu = mu.view(B, T, -1)
        action = self._onehot(torch.as_tensor(np.asarray(batch["action"]), device=self.device))
        first = torch.as_tensor(np.asarray(batch["is_first"]), device=self.device).float()
        state = self.mdn.initial(B, self.device)
        restart = torch.ones(B, device=self.device)
        zs, z = [], mu[:, 0]
        for t in range(T):
            if t < context:
                z = mu[:, t]
            zs.append(z)
            out, state = self.mdn.step(z, action[:, t], restart, state)
            restart = first[:, t + 1] if t + 1 < T else restart
            z = sample_z(out, self.config.controller.temperature, gen)
        model = self.vae.decode(torch.stack(zs, 1).reshape(B * T, -1))
        model = output_to_frames(model).cpu().numpy().reshape(frames.shape)
        error = np.abs(frames.astype(np.int16) - model.astype(np.int16)).astype(np.uint8)
        return {"image/real": frames, "image/model": model, "image/error": error}

    # Persistence
    def state_dict(self) -> dict:
        return {
            "vae": self.vae.state_dict(),
            "mdn": self.mdn.state_dict(),
            "vae_opt": self.vae_opt.state_dict(),
            "mdn_opt": self.mdn_opt.state_dict(),
            "controller": self.controller.cpu(),
            "initial_z": self.initial_z,
            "done": list(self.done),
            "progress": self.progress,
            "rng": self.rng.bit_generator.state,
            "seed": self.seed,
        }

    def load_state_dict(self, d: dict) -> None:
        self.vae.load_state_dict(d["vae"])
        self.mdn.load_state_dict(d["mdn"])
        self.vae_opt.load_state_dict(d["vae_opt"])
        self.mdn_opt.load_state_dict(d["mdn_opt"])
        self.controller = torch.as_tensor(d["controller"]).float().to(self.device)
        self.initial_z = torch.as_tensor(d["initial_z"]).float()
        self.done = list(d["done"])
        self.progress = dict(d["progress"])
        self.rng.bit_generator.state = d["rng"]
        self.seed = int(d["seed"])

    # Play
    def _play_generator(self) -> torch.Generator:
        """The random numbers of played dreams (``worldmodels play-dream``), seeded by the
        agent's seed when first asked for; one stream over every dream of this agent."""
        gen = getattr(self, "_play_gen", None)
        if gen is None:
            gen = torch.Generator(device=self.device).manual_seed(self.seed)
            self._play_gen = gen
        return gen

    @torch.no_grad()
    def dream_start(self, obs: dict[str, np.ndarray]) -> dict[str, Tensor]:
        """A dream from one env's first observation (DoomCoverRNNEnv): z is V's mean of the
        frame, M's memory is zero and its first input is marked ``restart``."""
        mu, _ = self.vae.encode(frames_to_input(np.asarray(obs[self.key])[None], self.device))
        h, c = self.mdn.initial(1, self.device)
        zero = torch.zeros(1, device=self.device)
        restart = torch.ones(1, device=self.device)
        return {"z": mu, "h": h, "c": c, "restart": restart, "done": zero, "reward": zero}

    @torch.no_grad()
    def dream_step(self, latent: dict[str, Tensor], action: Any) -> dict[str, Tensor]:
        """M consumes (z, action, restart), predicts the step's reward and end, and the next z
        is sampled at ``controller.temperature``."""
        a = torch.as_tensor(np.asarray(action), device=self.device)[None]
        out, (h, c) = self.mdn.step(
            latent["z"], self._onehot(a), latent["restart"], (latent["h"], latent["c"])
        )
        z = sample_z(out, self.config.controller.temperature, self._play_generator())
        done = done_prob(out)
        restart = torch.zeros(1, device=self.device)
        return {"z": z, "h": h, "c": c, "restart": restart, "done": done, "reward": out.reward}

    @torch.no_grad()
    def dream_view(self, latent: dict[str, Tensor]) -> tuple[np.ndarray, float, float]:
        """V's decoding of z, M's predicted reward of the step that reached it (0 at the start)
        and one minus M's probability that the episode ended there (below 0.5 where the done
        logit is above 0: where the reference's dream ends)."""
        frame = output_to_frames(self.vae.decode(latent["z"]))[0].cpu().numpy()
        return frame, float(latent["reward"][0]), 1.0 - float(latent["done"][0])

    @torch.no_grad()
    def dream_action(self, latent: dict[str, Tensor]) -> Any:
        """C's action on [z, (c,) h], as in :meth:`dream`."""
        x = self._c_input(latent["z"], (latent["h"], latent["c"]))
        action = self.controller_actions(self.controller[None], x)[0]
        if self.discrete:
            return int(action)
        return action.float().cpu().numpy().astype(np.float32)


def es_to_arrays(state: dict[str, Any]) -> dict[str, Any]:
    """A :class:`CMAES` state in the checkpoint's types: its pickled strategy as uint8."""
    return {**state, "es": np.frombuffer(state["es"], np.uint8).copy()}


def es_from_arrays(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`es_to_arrays`."""
    return {**state, "es": np.asarray(state["es"], np.uint8).tobytes()}


def load_series(path: Path) -> list[dict[str, np.ndarray]]:
    """``encode/series.npz`` as one dict per stream."""
    with np.load(path) as f:
        streams: dict[int, dict[str, np.ndarray]] = {}
        for name in f.files:
            s, k = name.split("/", 1)
            streams.setdefault(int(s), {})[k] = f[name]
    return [streams[s] for s in sorted(streams)]


def split_episodes(series: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The whole episodes of each stream (a stream's partial first or last episode included:
    its transitions are real)."""
    out = []
    for s in series:
        starts = np.flatnonzero(s["is_first"])
        bounds = np.concatenate([[0], starts, [len(s["is_first"])]])
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b > a:
                out.append({k: v[a:b] for k, v in s.items()})
    return out


def make_streams(
    episodes: list[dict[str, np.ndarray]], batch_size: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Shuffle ``episodes``, lay them end to end and cut the result into ``batch_size`` equal
    streams ``{key: [batch_size, L, ...]}`` (rnn_train.py's create_batches); a stream that
    starts mid-episode is marked ``is_first`` there (M's memory starts at zero)."""
    order = rng.permutation(len(episodes))
    cat = {k: np.concatenate([episodes[i][k] for i in order]) for k in episodes[0]}
    length = len(cat["mu"]) // batch_size
    if length == 0:
        raise UserError(
            f"mdnrnn.batch_size {batch_size} exceeds the {len(cat['mu'])} frames collected; "
            "fix: collect more episodes (data.episodes) or lower mdnrnn.batch_size"
        )
    out = {
        k: v[: length * batch_size].reshape(batch_size, length, *v.shape[1:])
        for k, v in cat.items()
    }
    out["is_first"] = out["is_first"].copy()
    out["is_first"][:, 0] = True
    return out
