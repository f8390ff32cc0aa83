"""Does a fresh PlaNet model learn how the action moves Pendulum, given plenty of data?

A new PlaNet agent (the preset, plus any ``--set``) is trained offline on ``--data`` steps of
uniformly random actions on gym:Pendulum-v1 (action repeat 2, as PlaNet's Pendulum runs in
docs/results.md), with the run's batch size and length. Every ``--every`` updates it prints the
model's action sensitivity on 64 probe windows of that data
(:mod:`worldmodels.diagnostics.planet_model`, figure 4): the median
|12-step predicted reward sum under constant +1 minus under -1| against the same from
Pendulum's equations, and the one-step decoded angular velocity difference.

    python tools/planet_sensitivity_from_random.py --data 20000 --updates 1500 --every 250

``--eval-episodes N`` then lets the trained agent plan (CEM, eval mode) on N real Pendulum
episodes, side by side, and prints their returns: does a model learned from random data alone
already steer the pendulum?
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time

import numpy as np
import torch

from worldmodels.agents import build_config
from worldmodels.agents.planet import PlaNetAgent
from worldmodels.config import parse_set_args
from worldmodels.diagnostics.planet_model import model_action_sensitivity, true_action_sensitivity
from worldmodels.envs import make_env
from worldmodels.envs.vector import VectorEnv
from worldmodels.replay import random_replay
from worldmodels.train.loop import evaluate
from worldmodels.train.run import EVAL_BATCH


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=int, default=20000, help="random-action agent steps")
    p.add_argument("--updates", type=int, default=1500)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--probes", type=int, default=64)
    p.add_argument("--samples", type=int, default=8, help="prior rollouts per constant action")
    p.add_argument("--preset", nargs="*", default=None, help="extra presets, e.g. debug")
    p.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    p.add_argument("--eval-episodes", type=int, default=0, help="real episodes at the end")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    env = make_env("gym:Pendulum-v1", action_repeat=2)
    cfg, names = build_config("planet", args.preset, parse_set_args(args.set))
    agent = PlaNetAgent(cfg, env.obs_space, env.act_space)
    replay = random_replay(env, args.data, np.random.default_rng(args.seed))
    probe = replay.sample(args.probes, 8)  # filter steps 0..5, start at step 5
    H = 12
    vec = probe["vector"][:, 5].astype(np.float64)
    th0, thdot0 = np.arctan2(vec[:, 1], vec[:, 0]), vec[:, 2]
    true_sens, true_dv = true_action_sensitivity(th0, thdot0, H, 2)
    wm, rssm = agent.wm, agent.wm.rssm
    act = torch.as_tensor(probe["action"][:, :6]).float()
    prev = torch.cat([torch.zeros_like(act[:, :1]), act[:, :-1]], 1)
    is_first = torch.zeros(args.probes, 6, dtype=torch.bool)
    is_first[:, 0] = True

    print(f"$ python {' '.join(sys.argv)}")
    print(
        f"presets {names}, --set {args.set}; {args.data} random steps at repeat 2; batch "
        f"{cfg.run.batch_size} x {cfg.run.batch_length}; {args.probes} probes; "
        f"{platform.processor() or platform.machine()}, 1 thread; equations: sensitivity median "
        f"{np.median(true_sens):.2f}, one-step velocity difference {np.median(true_dv):.3f}",
        flush=True,
    )
    t0 = time.time()
    for i in range(1, args.updates + 1):
        m = agent.update(replay.sample(cfg.run.batch_size, cfg.run.batch_length)).metrics
        if i % args.every == 0 or i == args.updates:
            with torch.no_grad():
                obs = {"vector": torch.as_tensor(probe["vector"][:, :6]).float()}
                post, _ = rssm.observe(wm.encode(obs), prev, is_first)
            start = {k: post[k][:, -1] for k in ("deter", "stoch")}
            sens, dv = model_action_sensitivity(agent, start, H, args.samples)
            print(
                f"updates {i}: sensitivity median {np.median(sens):.2f}, one-step velocity "
                f"difference {np.median(dv):.3f}; kl {m['loss/kl']:.2f}, overshooting "
                f"{m['loss/overshooting']:.2f}, reward {m['loss/reward']:.2f}, reconstruction "
                f"{m['loss/recon_vector']:.3f}; {time.time() - t0:.0f} s",
                flush=True,
            )
    if args.eval_episodes > 0:
        t1 = time.time()
        n = min(args.eval_episodes, EVAL_BATCH)  # evaluate() reseeds each env on reset
        envs = VectorEnv([functools.partial(make_env, "gym:Pendulum-v1", action_repeat=2)] * n)
        try:
            r = evaluate(agent, envs, args.eval_episodes, seed=10_000)
        finally:
            envs.close()
        print(
            f"eval ({args.eval_episodes} episodes, CEM in eval mode): return "
            f"{r['return_mean']:.1f} +- {r['return_std']:.1f} (min {r['return_min']:.1f}, "
            f"max {r['return_max']:.1f}); {time.time() - t1:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
