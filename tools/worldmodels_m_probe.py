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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--episodes", type=int, default=300, help="recorded episodes to read")
    p.add_argument("--dreams", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
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
