"""Frame rate of ``worldmodels play-dream``'s server, without a browser.

    python benchmarks/play_dream_fps.py --frames 200 --threads 1 2

Times ``--frames`` frames of the server's work per frame (``DreamSession.step``: one imagined
step of the RSSM, the image decoder, the reward and continue heads, the real env step; then
``DreamSession.message``: the PNG of the dream, and of the real frame when shown, as JSON) for
DreamerV3 at the debug, default (size1m) and cpu sizes, and Dreamer V1 and V2 at their
default sizes, on ``--env`` with 64x64 pixel observations. The agents are freshly initialised:
a trained model of the same size does the same arithmetic. Two ways of playing: a person
watching the dream alone, and the agent driving with the real env shown beside it. Prints the
command, the machine, and per case the frames per second (frames over wall time) and the
median milliseconds per frame.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import torch

from worldmodels.agents import build_config, get_agent_spec
from worldmodels.bench.machine import cpu_model
from worldmodels.envs import make_env
from worldmodels.train.run import env_kwargs, set_threads
from worldmodels.viz.play_dream import DreamSession, time_frames

CASES = [
    ("dreamerv3 debug", "dreamerv3", ["debug"]),
    ("dreamerv3 size1m (default)", "dreamerv3", []),
    ("dreamerv3 cpu", "dreamerv3", ["cpu"]),
    ("dreamerv2 (default size)", "dreamerv2", []),
    ("dreamerv1 (default size)", "dreamerv1", []),
]


def session(agent_name: str, presets: list[str], env_id: str) -> tuple[DreamSession, int]:
    cfg, _ = build_config(agent_name, presets, {"run.obs": "pixels"})
    env = make_env(env_id, obs="pixels", seed=0, **env_kwargs(cfg.run))
    cls = get_agent_spec(agent_name).load()[2]
    cls.prepare(cfg, env)
    agent = cls(cfg, env.obs_space, env.act_space, "cpu")
    params = sum(p.numel() for p in agent.wm.parameters()) + sum(
        p.numel() for p in agent.actor.parameters()
    )
    return DreamSession(agent, env), params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="gym:CartPole-v1")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--cases", nargs="+", help="case names to run (default all)")
    args = p.parse_args()
    print("$", " ".join([os.path.basename(sys.executable)] + sys.argv))
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}; ")
    print(f"python {platform.python_version()}; env {args.env} (64x64 pixels)")
    print("| model | parameters | threads | playing | fps | ms/frame (median) |")
    print("|---|---|---|---|---|---|")
    for name, agent_name, presets in CASES:
        if args.cases and name not in args.cases and agent_name not in args.cases:
            continue
        s, params = session(agent_name, presets, args.env)
        for threads in args.threads:
            set_threads(threads)
            for playing, mode, real in (
                ("human, dream only", "human", False),
                ("agent, dream + real", "agent", True),
            ):
                s.mode, s.show_real = mode, real
                s.reset()
                time_frames(s, 10)  # warm-up
                r = time_frames(s, args.frames)
                print(
                    f"| {name} | {params / 1e6:.2f}M | {threads} | {playing} | {r['fps']:.0f} | "
                    f"{r['ms_median']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
