"""A World Models run's M trained on more random rollouts, with a held-out set that says when
M stops generalising, then C evolved inside it and scored in the real env.

    python benchmarks/worldmodels_more_data.py runs/wm/takecover-cpu-0 --out runs/wm/more \\
        --episodes 1500 --heldout 200 --epochs 30 --set controller.common_dreams=true

Collects ``--episodes`` more episodes of the run's random collection policy (data.policy),
encoded by the run's V as they are played (V's (mu, logvar) per frame; no pixels are kept),
and ``--heldout`` episodes more that M never trains on. A fresh M (the run's mdnrnn settings
and the ``--set`` overrides) then trains on the run's episodes and the new ones, one epoch at a
time; after each epoch its losses on the held-out episodes are logged and its weights kept.
The epoch with the lowest held-out loss (``--select``: ``done``, M's end-of-episode loss, or
``total``) is M; C is evolved inside it with the run's CMA-ES settings and scored in
``--dream-episodes`` dreams and ``--real-episodes`` real episodes. Every phase resumes: the
collection by chunks of 250 episodes, M by epochs, C by CMA-ES generations. Writes
``OUT/collect/``, ``OUT/m/epoch_K.pt``, ``OUT/controller.pt`` and ``OUT/result.json``; the run
directory is not touched.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from worldmodels_iterate import record_episodes, save_series  # noqa: E402
from worldmodels_m_variant import _Log, with_new_m  # noqa: E402

from worldmodels.agents.worldmodels.agent import load_series, make_streams, split_episodes  # noqa: E402
from worldmodels.config import apply_overrides, parse_set_args, validate  # noqa: E402
from worldmodels.envs.vector import VectorEnv  # noqa: E402
from worldmodels.errors import UserError  # noqa: E402
from worldmodels.train.parts import evaluate  # noqa: E402
from worldmodels.train.run import eval_envs, load_agent, run_env  # noqa: E402

CHUNK = 250
ENVS = 32


def collect_random(agent, n_episodes: int, seed: int) -> dict[str, np.ndarray]:
    """``n_episodes`` whole episodes of the run's collection policy, as one stream of series
    arrays (V's (mu, logvar) of every frame)."""
    info = agent.run_info
    n = min(ENVS, n_episodes)
    envs = VectorEnv([functools.partial(run_env, info, info.seed + seed + i) for i in range(n)])
    agent.rng = np.random.default_rng(seed)
    obs = envs.reset(seed=info.seed + seed)
    state = agent.init_state(n)

    def policy(obs, first, mu, logvar):
        nonlocal state
        if agent.config.data.policy == "held":
            state["held"], state["left"] = agent._random_actions(state, first)
            return state["held"]
        state["params"] = agent._random_controllers(state, first)
        state, act = agent._c_step(state, obs, state["params"], encoded=(mu, logvar))
        return act.cpu().numpy()

    return record_episodes(agent, envs, obs, n_episodes, policy)[0]


@torch.no_grad()
def heldout_losses(agent, episodes: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """M's mean losses over ``episodes`` laid into the training's streams and sequences."""
    m = agent.config.mdnrnn
    rng = np.random.default_rng(0)
    frames = sum(len(e["mu"]) for e in episodes)
    batch = max(1, min(m.batch_size, frames // (m.seq_len + 1)))
    streams = make_streams(episodes, batch, rng)
    n_batches = (streams["mu"].shape[1] - 1) // m.seq_len
    if n_batches == 0:
        raise UserError(f"{frames} held-out frames hold no M sequence; fix: raise --heldout")
    state = agent.mdn.initial(batch, agent.device)
    sums: dict[str, float] = {}
    for b in range(n_batches):
        sl = slice(b * m.seq_len, (b + 1) * m.seq_len + 1)
        win = {k: torch.as_tensor(v[:, sl], device=agent.device) for k, v in streams.items()}
        losses, state = agent._mdn_forward(win, state, rng)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {k: v / max(n_batches, 1) for k, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a worldmodels run whose encode stage has finished")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--episodes", type=int, default=1500, help="random episodes added for M")
    p.add_argument("--heldout", type=int, default=200, help="random episodes M never trains on")
    p.add_argument("--epochs", type=int, default=30, help="M's epochs over all its episodes")
    p.add_argument("--select", choices=("done", "total"), default="done")
    p.add_argument("--set", nargs="*", default=[], help="mdnrnn.* and controller.* overrides")
    p.add_argument("--real-episodes", type=int, default=100)
    p.add_argument("--dream-episodes", type=int, default=256)
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        if args.episodes < 0 or args.heldout < 1 or args.epochs < 1:
            raise UserError("--episodes >= 0, --heldout >= 1 and --epochs >= 1; fix: raise them")
        overrides = parse_set_args(args.set)
        bad = [k for k in overrides if not k.startswith(("mdnrnn.", "controller."))]
        if bad:
            raise UserError(f"only mdnrnn.* and controller.* can be set; fix: drop {bad[0]}")
        base = load_agent(args.run, device="cpu")
        if "encode" not in base.done:
            raise UserError(f"{args.run} has no encoded frames yet; fix: let its encode stage end")
        cfg = base.config
        apply_overrides(cfg, overrides)
        validate(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out
    (out / "collect").mkdir(parents=True, exist_ok=True)
    result_path = out / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {
        "run": str(args.run), "set": args.set, "episodes": args.episodes,
        "heldout": args.heldout, "epochs": [], "timing_s": {}}  # fmt: skip

    def save_result() -> None:
        tmp = result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, result_path)

    # the new episodes, chunk by chunk, and the held-out ones
    t0 = time.perf_counter()
    chunks = [("heldout.npz", args.heldout, 90_000)]
    for k in range(-(-args.episodes // CHUNK)):
        size = min(CHUNK, args.episodes - k * CHUNK)
        chunks.append((f"chunk_{k}.npz", size, 100_000 + 1_000 * k))
    for name, size, seed in chunks:
        path = out / "collect" / name
        if not path.exists():
            stream = collect_random(base, size, seed)
            save_series(path, [stream])
            print(f"{name}: {size} episodes, {len(stream['mu'])} frames, "
                  f"mean return {stream['reward'].sum() / size:.1f}", flush=True)  # fmt: skip
    result["timing_s"].setdefault("collect", time.perf_counter() - t0)
    heldout = split_episodes(load_series(out / "collect" / "heldout.npz"))
    series = load_series(base.series_path(args.run))
    for name, _, _ in chunks[1:]:
        series += load_series(out / "collect" / name)
    encoded = base.series_path(out)
    if not result["epochs"] or not encoded.exists():  # M trains on what was collected
        save_series(encoded, series)
    frames = sum(len(s["mu"]) for s in series)
    result["frames"] = frames

    # a fresh M, one epoch at a time, scored on the held-out episodes after each
    agent = with_new_m(base, cfg)
    ctx = _Log(out)
    mdir = out / "m"
    mdir.mkdir(exist_ok=True)
    done_epochs = len(result["epochs"])
    if done_epochs:
        state = torch.load(mdir / f"epoch_{done_epochs}.pt")
        agent.mdn.load_state_dict(state["mdn"])
        agent.mdn_opt.load_state_dict(state["opt"])
        agent.progress["mdnrnn"] = state["progress"]
    print(f"M: {len(series)} streams, {frames} frames; held-out {len(heldout)} episodes")
    m = agent.config.mdnrnn
    for epoch in range(done_epochs + 1, args.epochs + 1):
        t0 = time.perf_counter()
        m.epochs = epoch
        train = agent._fit_mdnrnn(ctx)
        held = heldout_losses(agent, heldout)
        row = {"epoch": epoch, "updates": agent.progress["mdnrnn"]["updates"],
               "train": train, "heldout": held, "s": time.perf_counter() - t0}  # fmt: skip
        tmp = mdir / f"epoch_{epoch}.tmp"
        torch.save({"mdn": agent.mdn.state_dict(), "opt": agent.mdn_opt.state_dict(),
                    "progress": dict(agent.progress["mdnrnn"])}, tmp)  # fmt: skip
        os.replace(tmp, mdir / f"epoch_{epoch}.pt")
        result["epochs"].append(row)
        save_result()
        print(f"epoch {epoch}: train done {train['done']:.4f} z {train['z_nll']:.4f}; "
              f"held-out done {held['done']:.4f} z {held['z_nll']:.4f} "
              f"({row['s']:.0f} s)", flush=True)  # fmt: skip
    key = "loss" if args.select == "total" else "done"
    best = min(result["epochs"][: args.epochs], key=lambda r: r["heldout"][key])
    result["m_epoch"] = best["epoch"]
    agent.mdn.load_state_dict(torch.load(mdir / f"epoch_{best['epoch']}.pt")["mdn"])
    agent.done.append("mdnrnn")
    print(f"M: epoch {best['epoch']} (held-out {key} {best['heldout'][key]:.4f})")

    # C inside that M, scored in dreams and in the real env
    if "real_return" not in result:
        progress = out / "controller_progress.pt"
        if progress.exists():
            agent.progress["controller"] = torch.load(progress, weights_only=False)

        class _Ctx(_Log):
            @staticmethod
            def save() -> None:
                tmp = progress.with_suffix(".tmp")
                torch.save(agent.progress.get("controller"), tmp)
                os.replace(tmp, progress)

        t0 = time.perf_counter()
        agent._evolve(_Ctx(out))
        result["timing_s"]["controller"] = time.perf_counter() - t0
        torch.save(agent.controller, out / "controller.pt")
        tau = cfg.controller.temperature
        params = agent.controller[None].cpu().numpy()
        result["dream_return"] = float(
            agent.dream_fitness(params, args.dream_episodes, tau, seed=123_457)[0]
        )
        envs = eval_envs(agent.run_info, args.real_episodes)
        real = evaluate(agent, envs, args.real_episodes, seed=agent.run_info.seed + 50_000)
        envs.close()
        result |= {"tau": tau, "real_return": real["return_mean"],
                   "real_std": real["return_std"], "real_episodes": args.real_episodes}  # fmt: skip
        save_result()
    print(json.dumps({k: v for k, v in result.items() if k != "epochs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
