"""Check and time ``run.cuda_graphs``: the same agent, eager and graphed, on the same batches.

    python benchmarks/cuda_graphs.py --updates 30 --acts 200

For each agent (default presets at full size: dreamer (V3) and dreamerv2 on CartPole;
dreamerv1, planet and tdmpc2 on Pendulum), in one process per agent, all side by side, two
copies start from the same weights and seed: one runs eagerly, the other with
``run.cuda_graphs=true``. Both take the same replay batches. Printed per agent: ms per update
and per act for each, the speed-up, whether the graphs were captured, and the largest relative
difference of the update metrics (random draws are the same stream, so graphed and eager should
agree to rounding). On CPU the graphs are inactive and the two copies must agree exactly. The
last line, ``usable: AGENT ...``, names the agents whose graphs were captured (on CUDA) and
agree with eager within --tol; exit status 0 when all do.
"""

from __future__ import annotations

import argparse
import copy
import platform
import subprocess
import sys
import time

import numpy as np
import torch

from worldmodels.agents import build_config, get_agent_spec
from worldmodels.envs import make_env
from worldmodels.replay import random_replay
from worldmodels.train.run import resolve_device

CASES = [
    ("dreamer", "gym:CartPole-v1"),
    ("dreamerv1", "gym:Pendulum-v1"),
    ("dreamerv2", "gym:CartPole-v1"),
    ("planet", "gym:Pendulum-v1"),
    ("tdmpc2", "gym:Pendulum-v1"),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, n: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - start) / n * 1000


def check(agent_name: str, env_id: str, args, device: torch.device) -> tuple[str, bool]:
    """One agent, eager vs graphed: (markdown row, usable)."""
    env = make_env(env_id)
    presets = ["debug"] if args.debug else None
    agents = []
    for graphs in (False, True):
        cfg, _ = build_config(agent_name, presets, {"run.cuda_graphs": str(graphs).lower()})
        torch.manual_seed(0)
        cls = get_agent_spec(agent_name).load()[2]
        agents.append(cls(cfg, env.obs_space, env.act_space, device))
    agents[1].load_state_dict(copy.deepcopy(agents[0].state_dict()))
    rb = random_replay(env, 5000, np.random.default_rng(0))
    cfg = agents[0].config
    batches = [rb.sample(cfg.run.batch_size, cfg.run.batch_length) for _ in range(args.updates)]
    metrics, times = [], []
    for agent in agents:
        torch.manual_seed(1)
        if device.type == "cuda":
            torch.cuda.manual_seed(1)
        out = [agent.update(batches[i]) for i in range(min(5, args.updates))]  # warm-up
        it = iter(batches[len(out) :])
        ms_update = timed(
            lambda a=agent, it=it, out=out: out.append(a.update(next(it))),
            args.updates - len(out),
            device,
        )
        obs = {k: v[None] for k, v in env.reset(seed=0).items()}
        state = [agent.init_state(1)]

        def act(a=agent, state=state, obs=obs):
            state[0], _, _ = a.act(state[0], obs, "explore")

        for _ in range(5):
            act()
        ms_act = timed(act, args.acts, device)
        metrics.append(out)
        times.append((ms_update, ms_act))
    diff = 0.0
    for m0, m1 in zip(*metrics):
        for k in m0:
            diff = max(diff, abs(m0[k] - m1[k]) / max(abs(m0[k]), 1e-6))
    steps = [agents[1]._step, *agents[1]._act_steps.steps.values()]  # update, then acting
    captured = all(step.captured for step in steps)
    (ue, ae), (ug, ag) = times
    row = (
        f"| {agent_name} | {ue:.1f} | {ug:.1f} | {ue / ug:.1f} | {ae:.2f} | {ag:.2f} | "
        f"{ae / ag:.1f} | {captured} | {diff:.2e} |"
    )
    return row, (captured or device.type != "cuda") and diff <= args.tol


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--updates", type=int, default=30)
    p.add_argument("--acts", type=int, default=200)
    p.add_argument("--device", default="auto")
    p.add_argument("--agents", nargs="*", default=[a for a, _ in CASES])
    p.add_argument("--debug", action="store_true", help="debug-size models (a smoke test)")
    p.add_argument("--tol", type=float, default=0.05, help="max relative metric difference")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child process: check this agent only
    args = p.parse_args()
    device = resolve_device(args.device)
    if args.one:
        row, ok = check(args.one, dict(CASES)[args.one], args, device)
        print(row)
        print("ok" if ok else "not usable")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    debug = " --debug" if args.debug else ""
    print(f"$ python benchmarks/cuda_graphs.py --updates {args.updates} --acts {args.acts}{debug}")
    print(
        f"device {device} ({name}), torch {torch.__version__}; one process per agent, side by side"
    )
    print(
        "| agent | update eager ms | update graphed ms | x | act eager ms | act graphed ms | x "
        "| captured | max rel diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    # One process per agent: a failed capture leaves its process's CUDA state unusable
    names = [a for a, _ in CASES if a in args.agents]
    common = ["--updates", str(args.updates), "--acts", str(args.acts), "--device", args.device]
    common += ["--tol", str(args.tol)] + (["--debug"] if args.debug else [])
    procs = {
        a: subprocess.Popen(
            [sys.executable, __file__, "--one", a, *common],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in names
    }
    usable = []
    for a, proc in procs.items():
        out, err = proc.communicate()
        lines = out.strip().splitlines()
        if proc.returncode == 0 and len(lines) >= 2:
            print(lines[-2], flush=True)
            if lines[-1] == "ok":
                usable.append(a)
        else:
            cause = (err.strip().splitlines() or ["no output"])[-1][:200]
            print(f"| {a} | failed: {cause} | | | | | | False | |", flush=True)
    print("usable:", " ".join(usable))  # captured (on CUDA) and agreeing with eager within --tol
    return 0 if len(usable) == len(names) else 1


if __name__ == "__main__":
    raise SystemExit(main())
