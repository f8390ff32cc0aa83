"""The World Models paper's iterative training procedure on a finished run (its section
"Iterative Training Procedure"): play the real env with the evolved C, add those episodes to
M's data, train M further on all of it, evolve C anew inside that M, and repeat.

    python benchmarks/worldmodels_iterate.py runs/wm/takecover-cpu-0 --out runs/wm/iter \\
        --rounds 3 --episodes 400 --m-updates 450 --set controller.common_dreams=true

C's fitness stays the dream's alone; the real episodes are data for M, as the random rollouts
are. Each round: ``--episodes`` real episodes with C's parameters plus Gaussian noise (its
scale drawn per episode uniformly from [0, ``--noise``]; V's z sampled as when C plays), their
frames encoded by the run's V; ``--m-updates`` more M updates (the run's mdnrnn settings) on the
run's episodes and every round's so far; C evolved from scratch in that M with the run's CMA-ES
settings (and the ``--set`` overrides, ``controller.*``); C scored in ``--dream-episodes``
dreams and ``--real-episodes`` real episodes. Writes ``OUT/round_K/`` (series, M, C) and
``OUT/result.json``; a rerun continues after the last finished round. The run directory is not
touched. Round 0 is the start: the run's M and either the run's C or ``--controller FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from worldmodels_m_variant import _Log  # noqa: E402

from worldmodels.agents.worldmodels.agent import load_series  # noqa: E402
from worldmodels.config import apply_overrides, parse_set_args, validate  # noqa: E402
from worldmodels.errors import UserError  # noqa: E402
from worldmodels.models.vae import frames_to_input  # noqa: E402
from worldmodels.train.parts import evaluate  # noqa: E402
from worldmodels.train.run import eval_envs, load_agent  # noqa: E402

KEYS = ("mu", "logvar", "action", "reward", "is_first", "is_last", "is_terminal")


@torch.no_grad()
def record_episodes(agent, envs, obs: dict, n_episodes: int, policy) -> tuple[dict, list[float]]:
    """``n_episodes`` whole episodes of ``envs`` (from their first observations ``obs``) as one
    stream of series arrays (V's (mu, logvar) per frame), and their returns. ``policy(obs,
    first, mu, logvar)`` gives each env's action (numpy); the envs are closed at the end."""
    rows: list[dict[str, list]] = [{k: [] for k in KEYS} for _ in range(envs.num_envs)]
    done: list[dict[str, np.ndarray]] = []
    while len(done) < n_episodes:
        first = np.asarray(obs["is_first"], bool)
        for i in np.flatnonzero(first):
            rows[i] = {k: [] for k in KEYS}
        mu, logvar = agent.vae.encode(frames_to_input(obs[agent.key], agent.device))
        act = policy(obs, first, mu, logvar)
        mu16 = mu.cpu().numpy().astype(np.float16)
        logvar16 = logvar.cpu().numpy().astype(np.float16)
        for i, r in enumerate(rows):
            r["mu"].append(mu16[i])
            r["logvar"].append(logvar16[i])
            r["action"].append(act[i])
            for k in ("reward", "is_first", "is_last", "is_terminal"):
                r[k].append(obs[k][i])
            if obs["is_last"][i] and r["is_first"][0] and len(done) < n_episodes:
                done.append({k: np.asarray(v) for k, v in r.items()})
        obs = envs.step(act)
    envs.close()
    dtypes = {"action": agent._act_dtype(), "reward": np.float32, "is_first": bool,
              "is_last": bool, "is_terminal": bool}  # fmt: skip
    stream = {k: np.concatenate([e[k] for e in done]) for k in KEYS}
    stream = {k: v.astype(dtypes.get(k, v.dtype)) for k, v in stream.items()}
    return stream, [float(e["reward"].sum()) for e in done]


def collect(agent, n_episodes: int, noise: float, seed: int) -> tuple[dict, list[float]]:
    """``n_episodes`` whole real episodes under C plus per-episode noise, as one stream of
    series arrays (V's (mu, logvar) per frame), and their returns."""
    envs = eval_envs(agent.run_info, 16, seed_offset=seed)
    rng = np.random.default_rng(seed)
    obs = envs.reset(seed=agent.run_info.seed + seed)
    state = agent.init_state(envs.num_envs)
    params = agent.controller.expand(envs.num_envs, -1).clone()

    def policy(obs, first, mu, logvar):
        nonlocal state
        for i in np.flatnonzero(first):
            scale = rng.uniform(0.0, noise)
            d = torch.as_tensor(rng.standard_normal(agent.c_dim), dtype=torch.float32)
            params[i] = agent.controller + scale * d
        state, action = agent._c_step(state, obs, params, encoded=(mu, logvar))
        return action.cpu().numpy()

    return record_episodes(agent, envs, obs, n_episodes, policy)


def save_series(path: Path, series: list[dict[str, np.ndarray]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{f"{i}/{k}": a for i, s in enumerate(series) for k, a in s.items()})
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a worldmodels run whose controller stage has finished")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--episodes", type=int, default=400, help="real episodes collected per round")
    p.add_argument("--noise", type=float, default=0.1, help="largest per-episode noise on C")
    p.add_argument("--m-updates", type=int, default=450, help="M updates per round")
    p.add_argument("--controller", type=Path, help="round 0's C (a controller.pt)")
    p.add_argument("--set", nargs="*", default=[], help="controller.* overrides")
    p.add_argument("--real-episodes", type=int, default=100)
    p.add_argument("--dream-episodes", type=int, default=256)
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        overrides = parse_set_args(args.set)
        if any(not k.startswith("controller.") for k in overrides):
            raise UserError("only controller.* can be set; fix: drop the other --set keys")
        agent = load_agent(args.run, device="cpu")
        if "controller" not in agent.done:
            raise UserError(f"{args.run} has no evolved C yet; fix: let its controller stage end")
        apply_overrides(agent.config, overrides)
        validate(agent.config)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result_path = args.out / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {
        "run": str(args.run), "set": args.set, "episodes": args.episodes,
        "m_updates": args.m_updates, "noise": args.noise, "rounds": []}  # fmt: skip
    series = load_series(agent.series_path(args.run))
    if args.controller is not None:
        agent.controller = torch.load(args.controller)
    tau = agent.config.controller.temperature
    base_seed = agent.seed
    for k in range(1, args.rounds + 1):
        out = args.out / f"round_{k}"
        if (out / "done").exists():
            series.append(load_series(out / "encode" / "series.npz")[-1])
            agent.mdn.load_state_dict(torch.load(out / "mdn.pt"))
            agent.controller = torch.load(out / "controller.pt")
            print(f"round {k}: done earlier")
            continue
        t0 = time.perf_counter()
        torch.manual_seed(k)
        stream, returns = collect(agent, args.episodes, args.noise, 20_000 + 1_000 * k)
        t_collect = time.perf_counter() - t0
        series.append(stream)
        save_series(out / "encode" / "series.npz", series)
        print(f"round {k}: {args.episodes} real episodes of C + noise, mean return "
              f"{np.mean(returns):.1f}, {len(stream['mu'])} frames, {t_collect:.0f} s")  # fmt: skip
        m = agent.config.mdnrnn
        frames = sum(len(s["mu"]) for s in series)
        per_epoch = max(1, (frames // m.batch_size - 1) // m.seq_len)
        m.epochs = max(1, round(args.m_updates / per_epoch))
        agent.progress["mdnrnn"] = {"epoch": 0, "batch": 0, "updates": 0}
        ctx = _Log(out)
        t0 = time.perf_counter()
        m_metrics = agent._fit_mdnrnn(ctx)
        t_m = time.perf_counter() - t0
        torch.save(agent.mdn.state_dict(), out / "mdn.pt")
        agent.progress.pop("controller", None)
        agent.seed = base_seed + k  # CMA-ES's seed: a new one each round, the same on a rerun
        t0 = time.perf_counter()
        agent._evolve(ctx)
        t_c = time.perf_counter() - t0
        torch.save(agent.controller, out / "controller.pt")
        params = agent.controller[None].cpu().numpy()
        dream = float(agent.dream_fitness(params, args.dream_episodes, tau, seed=123_457)[0])
        envs = eval_envs(agent.run_info, args.real_episodes)
        real = evaluate(agent, envs, args.real_episodes, seed=agent.run_info.seed + 50_000)
        envs.close()
        row = {"round": k, "collect_return": float(np.mean(returns)), "frames": frames,
               "m_epochs": m.epochs, "m_metrics": m_metrics, "dream_return": dream,
               "real_return": real["return_mean"], "real_std": real["return_std"],
               "collect_s": t_collect, "m_s": t_m, "evolve_s": t_c}  # fmt: skip
        result["rounds"].append(row)
        result_path.write_text(json.dumps(result, indent=1))
        (out / "done").touch()
        print(json.dumps({k: v for k, v in row.items() if k != "m_metrics"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
