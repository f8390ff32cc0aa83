"""What a World Models run's M knows about the end of an episode, and what its dreams show:
python tools/worldmodels_m_probe.py RUN_DIR [--episodes 300] [--dreams 3] [--out DIR].

1. Teacher-forced: M reads the recorded episodes' z (the encoded means) and actions, and its
   end probability is tabulated by the elapsed step for steps 40 or more before the end (high
   values there would mean M times episodes rather than seeing what ends them), and for the last
   steps before a death.
2. Open loop: ``--dreams`` dreams of 400 steps from recorded first frames at the run's
   temperature, once under the evolved C and once under uniform random actions; for each the
   first step where P(end) > 0.5, and a strip of V's decoding every 8 steps
   (``OUT/dream_controller.png``, ``OUT/dream_random.png``) to see whether fireballs appear.
3. Open loop before deaths: from ``--before`` steps before each recorded death M predicts
   ``--horizon`` steps on its own z under the real actions; the squared error of V's decoding
   against the real z's, beside holding the last real frame, and a strip of the first deaths
   (``OUT/open_loop_deaths.png``, real frames over M's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.worldmodels.agent import load_series, split_episodes
from worldmodels.models.mdnrnn import done_prob, sample_z
from worldmodels.models.vae import output_to_frames
from worldmodels.train.run import load_agent


@torch.no_grad()
def teacher_forced(agent, episodes: list[dict]) -> np.ndarray:
    """Rows (elapsed step, steps to the end or -1 if the episode was cut, P(end))."""
    rows = []
    for ep in episodes:
        z = torch.as_tensor(ep["mu"].astype(np.float32), device=agent.device)
        actions = torch.as_tensor(ep["action"].astype(np.int64), device=agent.device)
        a = agent._onehot(actions)
        state, restart = agent.mdn.initial(1, agent.device), torch.ones(1, device=agent.device)
        T, died = len(z), bool(ep["is_terminal"][-1])
        for t in range(T - 1):
            out, state = agent.mdn.step(z[t : t + 1], a[t : t + 1], restart, state)
            restart = torch.zeros_like(restart)
            rows.append((t, T - 2 - t if died else -1, float(done_prob(out)[0])))
    return np.array(rows)


@torch.no_grad()
def dream(agent, n: int, temperature: float, controller: bool, seed: int):
    """``n`` open-loop dreams of 400 steps: (P(end) [400, n], V's frames every 8 steps)."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    pick = torch.randint(len(agent.initial_z), (n,), generator=gen, device=agent.device)
    start = agent.initial_z.to(agent.device)[pick]
    z = start[:, 0] + torch.exp(start[:, 1] / 2) * torch.randn(
        start[:, 0].shape, generator=gen, device=agent.device
    )
    state = agent.mdn.initial(n, agent.device)
    restart = torch.ones(n, device=agent.device)
    params = agent.controller.expand(n, -1)
    ends, frames = [], []
    for t in range(400):
        if controller:
            action = agent.controller_actions(params, agent._c_input(z, state))
        else:
            action = torch.randint(agent.n_act, (n,), generator=gen, device=agent.device)
        if t % 8 == 0:
            frames.append(output_to_frames(agent.vae.decode(z)).cpu().numpy())
        out, state = agent.mdn.step(z, agent._onehot(action), restart, state)
        ends.append(done_prob(out).cpu().numpy())
        z = sample_z(out, temperature, gen)
        restart = torch.zeros_like(restart)
    return np.array(ends), frames


@torch.no_grad()
def open_loop(agent, episodes: list[dict], before: int, horizon: int, tau: float, seed: int):
    """M's open-loop prediction of the frames that kill: for each recorded death, M reads the
    real z and actions up to ``before`` steps before the end, then predicts ``horizon`` steps
    from its own z under the real actions. Returns squared errors ``[3, horizon]`` in pixels
    (mean per frame, V's decoding of the real z as truth) of M's most likely z (tau 0), of z
    sampled at ``tau``, and of holding the last real frame; and the decoded strips of the first
    three deaths (real over M's most likely)."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    errors, strips = [], []
    for ep in episodes:
        T = len(ep["mu"])
        t0 = T - 1 - before
        if not bool(ep["is_terminal"][-1]) or t0 < 1 or t0 + horizon > T:
            continue
        z = torch.as_tensor(ep["mu"].astype(np.float32), device=agent.device)
        a = agent._onehot(torch.as_tensor(ep["action"].astype(np.int64), device=agent.device))
        state, restart = agent.mdn.initial(1, agent.device), torch.ones(1, device=agent.device)
        for t in range(t0):  # warm up on the real z; the last output predicts z[t0]
            out, state = agent.mdn.step(z[t : t + 1], a[t : t + 1], restart, state)
            restart = torch.zeros_like(restart)
        real = output_to_frames(agent.vae.decode(z[t0 : t0 + horizon])).float()
        held = real[:1].expand_as(real)
        rows = [held]
        for temp in (0.0, tau):
            st, zt, preds = state, z[t0 : t0 + 1], []
            for k in range(horizon):
                o, st = agent.mdn.step(zt, a[t0 + k : t0 + k + 1], restart, st)
                zt = sample_z(o, temp, gen)
                preds.append(zt)
            rows.append(output_to_frames(agent.vae.decode(torch.cat(preds))).float())
        # predictions are of z[t0 + 1 ..]: compare with the real frames one step later
        truth = output_to_frames(agent.vae.decode(z[t0 + 1 : t0 + 1 + horizon])).float()
        n = len(truth)
        err = [((r[:n] - truth) ** 2).mean(dim=(1, 2, 3)) for r in (rows[1], rows[2], held)]
        errors.append(torch.stack(err).cpu().numpy())
        if len(strips) < 3:
            top = np.concatenate(list(truth.byte().cpu().numpy()), 1)
            bottom = np.concatenate(list(rows[1][:n].byte().cpu().numpy()), 1)
            strips.append(np.concatenate([top, bottom], 0))
    if not errors:
        return np.zeros((3, 0)), 0, strips
    return np.mean(errors, 0), len(errors), strips


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--episodes", type=int, default=300, help="recorded episodes to read")
    p.add_argument("--dreams", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--before", type=int, default=24, help="open loop: steps before a death")
    p.add_argument("--horizon", type=int, default=24, help="open loop: steps predicted")
    p.add_argument("--out", type=Path, help="where the dream strips go (default: RUN/probe)")
    args = p.parse_args()
    torch.set_num_threads(1)
    agent = load_agent(args.run, device="cpu")
    episodes = split_episodes(load_series(agent.series_path(args.run)))[: args.episodes]
    rows = teacher_forced(agent, episodes)
    print(f"teacher-forced over {len(episodes)} recorded episodes:")
    far = rows[(rows[:, 1] >= 40) | (rows[:, 1] < 0)]
    for lo in range(0, int(far[:, 0].max()) + 1, 50):
        m = (far[:, 0] >= lo) & (far[:, 0] < lo + 50)
        if m.sum() >= 100:
            print(
                f"  steps {lo:4d}-{lo + 49:4d}, the end 40+ steps away: mean P(end) "
                f"{far[m, 2].mean():.4f}, P > 0.5 on {100 * np.mean(far[m, 2] > 0.5):.2f} % "
                f"(n {int(m.sum())})"
            )
    for k in (0, 1, 2, 5, 10, 20):
        m = rows[:, 1] == k
        if m.any():
            print(f"  {k:2d} steps before a death: mean P(end) {rows[m, 2].mean():.3f}")
    out = args.out or args.run / "probe"
    out.mkdir(parents=True, exist_ok=True)
    tau = agent.config.controller.temperature
    from PIL import Image

    err, n, strips = open_loop(agent, episodes, args.before, args.horizon, tau, args.seed)
    print(
        f"open loop from {args.before} steps before {n} deaths, squared error per pixel "
        f"against V's decoding of the real z (M's most likely z / sampled at tau {tau} / the "
        "last real frame held):"
    )
    for k in range(0, err.shape[1], max(1, err.shape[1] // 8)):
        print(f"  step {k + 1:3d}: {err[0, k]:7.1f} / {err[1, k]:7.1f} / {err[2, k]:7.1f}")
    if strips:
        Image.fromarray(np.concatenate(strips, 0)).save(out / "open_loop_deaths.png")

    for name, controller in (("controller", True), ("random", False)):
        if controller and not agent.trained:
            continue
        ends, frames = dream(agent, args.dreams, tau, controller, args.seed)
        for i in range(args.dreams):
            fired = np.flatnonzero(ends[:, i] > 0.5)
            first = int(fired[0]) if len(fired) else None
            print(
                f"dream {i} under {name} actions (tau {tau}): first P(end) > 0.5 at step "
                f"{first}, largest P(end) {ends[:, i].max():.3f}"
            )
        strip = np.concatenate(
            [np.concatenate([f[i] for f in frames[:25]], 1) for i in range(args.dreams)], 0
        )
        Image.fromarray(strip).save(out / f"dream_{name}.png")
    print(f"dream strips (every 8th step, one row a dream): {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
