"""Can a PlaNet run's model rank action sequences on gym:Pendulum-v1? Its planning objective.

CEM only needs the learned model to *rank* candidate action sequences the way the true returns
would. This script loads the latest checkpoint of a PlaNet run on gym:Pendulum-v1 and, from
states replayed out of the run's own buffer:

1. filters `--context` observations with the posterior, then predicts the next `--horizon`
   rewards open-loop (prior only) under the actions that were taken, and reports the error of
   the summed reward against the replayed sum (and the one-step error for comparison);
2. scores `--sequences` random action sequences from each start state with the model (the
   undiscounted sum of predicted rewards along prior samples) and with Pendulum-v1's exact
   equations from the replayed angle and velocity (the undiscounted true return), and reports
   the Spearman rank correlation between the two, and how much true return the model's best
   sequence loses against the truly best one (the regret of picking by the model);
3. plans with CEM on the model and on the exact equations and compares the plans' true returns;
4. measures how strongly the model's future depends on the action: the H-step predicted reward
   sum under the constant action +1 minus that under -1 (each the mean of `--samples` prior
   rollouts), against the same difference from the exact equations; and one step ahead, the
   decoded angular velocity under +1 minus under -1 against the true difference.

    python tools/planet_model_diagnose.py RUN_DIR --starts 100

Prints the command, the checkpoint's step, the settings and the figures. Reads only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

import worldmodels
from worldmodels.diagnostics.pendulum import MAX_TORQUE, oracle_objective, pendulum_step
from worldmodels.planners import CEM, CEMConfig


def replay_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """All replay chunks of a run concatenated in file order (chunks of one stream are
    consecutive; `is_first` marks every episode start)."""
    files = sorted((run_dir / "replay").glob("*.npz"))
    if not files:
        print(
            f"error: no replay chunks in {run_dir / 'replay'}; pass a run that has trained",
            file=sys.stderr,
        )
        raise SystemExit(2)
    parts = [dict(np.load(f)) for f in files]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def valid_starts(data: dict[str, np.ndarray], context: int, horizon: int) -> np.ndarray:
    """Indices t whose window t-context+1 .. t+horizon lies inside one episode."""
    first = data["is_first"].astype(bool)
    n = len(first)
    episode = np.cumsum(first)
    t = np.arange(context - 1, n - horizon)
    same = episode[t - context + 1] == episode[t + horizon]
    return t[same]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra**2).sum() * (rb**2).sum()))


def model_action_sensitivity(agent, start: dict, horizon: int, samples: int):
    """Per start state: |H-step predicted reward sum under constant +1 - under -1| and the
    one-step decoded angular velocity under +1 minus -1, each the mean of ``samples`` prior
    rollouts (no gradient)."""
    wm, rssm = agent.wm, agent.wm.rssm
    n, sign = len(start["deter"]), torch.tensor([1.0, -1.0])
    with torch.no_grad():
        st = {k: v.repeat_interleave(2 * samples, 0) for k, v in start.items()}
        a = sign.repeat_interleave(samples).repeat(n)[:, None]  # [n * 2 * samples, 1]
        sums, thdot1 = torch.zeros(len(a)), None
        for k in range(horizon):
            st = rssm.img_step(st, a)
            sums += wm.reward(rssm.feat(st)).pred()
            if k == 0:
                thdot1 = wm.vec_dec(rssm.feat(st)).pred()[:, 2]
    per = sums.reshape(n, 2, samples).mean(-1)
    dv = thdot1.reshape(n, 2, samples).mean(-1)
    return (per[:, 0] - per[:, 1]).abs().numpy(), (dv[:, 0] - dv[:, 1]).numpy()


def true_action_sensitivity(th0, thdot0, horizon: int, repeat: int):
    """The same two differences from Pendulum-v1's equations, from angles and velocities."""
    sign = torch.tensor([1.0, -1.0])
    const = sign[:, None, None].expand(2, horizon, 1)[None]  # [1, 2, H, 1]
    sens, dv = [], []
    for th_i, w_i in zip(th0, thdot0):
        v = oracle_objective(float(th_i), float(w_i), repeat)(const)[0]
        sens.append(abs(float(v[0] - v[1])))
        th = torch.full((2,), float(th_i), dtype=torch.float64)
        w = torch.full((2,), float(w_i), dtype=torch.float64)
        for _ in range(repeat):
            th, w, _ = pendulum_step(th, w, MAX_TORQUE * sign.double())
        dv.append(float(w[0] - w[1]))
    return np.array(sens), np.array(dv)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--starts", type=int, default=100, help="replayed start states")
    p.add_argument("--context", type=int, default=5, help="observations filtered before a start")
    p.add_argument("--horizon", type=int, default=12, help="open-loop steps (PlaNet's H)")
    p.add_argument("--sequences", type=int, default=256, help="random sequences per start")
    p.add_argument("--cem-starts", type=int, default=20, help="starts planned with CEM (0 = skip)")
    p.add_argument("--samples", type=int, default=8, help="prior rollouts per constant action")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    cfg_file = args.run_dir / "config.json"
    meta = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    if meta.get("agent") != "planet" or meta.get("env") != "gym:Pendulum-v1":
        print(
            f"error: {args.run_dir} is not a PlaNet run on gym:Pendulum-v1 (config.json: "
            f"agent {meta.get('agent')}, env {meta.get('env')}); pass such a run directory",
            file=sys.stderr,
        )
        return 2
    agent = worldmodels.Agent.load(str(args.run_dir), device="cpu")
    repeat = agent.config.run.action_repeat or 1  # 0 = the gym: suite's default, 1
    wm, rssm = agent.wm, agent.wm.rssm
    data = replay_arrays(args.run_dir)
    starts = valid_starts(data, args.context, args.horizon)
    if len(starts) == 0:
        print(
            "error: no replayed episode spans --context + --horizon steps; lower them",
            file=sys.stderr,
        )
        return 2
    starts = rng.choice(starts, size=min(args.starts, len(starts)), replace=False)
    C, H, S = args.context, args.horizon, args.sequences

    def window(key: str, lo: int, hi: int) -> torch.Tensor:
        return torch.as_tensor(np.stack([data[key][t + lo : t + hi] for t in starts]))

    with torch.no_grad():
        # Posterior over the context: obs t-C+1..t, previous actions a_{t-C}..a_{t-1}.
        obs = {"vector": window("vector", -C + 1, 1)}
        prev_act = window("action", -C, 0).float()
        is_first = torch.zeros(len(starts), C, dtype=torch.bool)
        is_first[:, 0] = True  # start the filter fresh at the window's first step
        post, _ = rssm.observe(wm.encode(obs), prev_act, is_first)
        start = {k: post[k][:, -1] for k in ("deter", "stoch")}

        # 1. Open-loop rewards under the replayed actions a_t..a_{t+H-1} vs rewards r_{t+1..t+H}.
        acts = window("action", 0, H).float()
        true_r = window("reward", 1, H + 1).float()
        state, pred_r = start, []
        for k in range(H):
            state = rssm.img_step(state, acts[:, k])
            pred_r.append(wm.reward(rssm.feat(state)).pred())
        pred_r = torch.stack(pred_r, 1)
        err_sum = (pred_r.sum(1) - true_r.sum(1)).abs()
        err_first = (pred_r[:, 0] - true_r[:, 0]).abs()

        # 2. Ranking of random sequences: model vs Pendulum-v1's equations.
        vec = window("vector", 0, 1)[:, 0].double()
        th0 = torch.atan2(vec[:, 1], vec[:, 0])
        thdot0 = vec[:, 2]
        rhos, regrets, spreads = [], [], []
        for i in range(len(starts)):
            a = torch.rand(S, H, 1) * 2 - 1
            truth = oracle_objective(float(th0[i]), float(thdot0[i]), repeat)(a[None])[0]
            st = {key: v[i : i + 1].repeat(S, *([1] * (v.dim() - 1))) for key, v in start.items()}
            model = torch.zeros(S)
            for k in range(H):
                st = rssm.img_step(st, a[:, k])
                model += wm.reward(rssm.feat(st)).pred()
            truth_np, model_np = truth.numpy(), model.numpy()
            rhos.append(spearman(model_np, truth_np))
            regrets.append(truth_np.max() - truth_np[model_np.argmax()])
            spreads.append(truth_np.max() - np.median(truth_np))

        # 3. CEM on the model vs CEM on the equations, each plan's true return.
        pc = agent.config.planner
        cfg = CEMConfig(H, pc.candidates, pc.top_k, pc.iterations, 1.0, False)
        model_plan, oracle_plan = [], []
        for i in range(min(args.cem_starts, len(starts))):
            st = {key: v[i : i + 1] for key, v in start.items()}
            gen = torch.Generator().manual_seed(args.seed + i)
            got = CEM(cfg).plan(agent._objective(st), 1, 1, generator=gen).mean
            score = oracle_objective(float(th0[i]), float(thdot0[i]), repeat)  # [1, P, H, 1]
            best = CEM(cfg).plan(score, 1, 1, generator=gen).mean
            model_plan.append(float(score(got[:, None])[0, 0]))
            oracle_plan.append(float(score(best[:, None])[0, 0]))

        # 4. Action sensitivity: constant +1 vs -1, model vs equations.
        model_sens, model_dv = model_action_sensitivity(agent, start, H, args.samples)
        true_sens, true_dv = true_action_sensitivity(th0, thdot0, H, repeat)

    print(f"$ python {' '.join(sys.argv)}")
    print(
        f"checkpoint: {args.run_dir} (agent updates {agent.updates}); action "
        f"repeat {repeat}; {len(starts)} replayed starts, context {C}, horizon {H}, "
        f"{S} random sequences each; {platform.processor() or platform.machine()}, 1 thread"
    )
    print(
        f"open-loop reward error, replayed actions: |sum of {H} predicted - true| median "
        f"{err_sum.median():.2f} (true |sum| median {true_r.sum(1).abs().median():.2f}); "
        f"first step median {err_first.median():.3f}"
    )
    rhos, regrets, spreads = np.array(rhos), np.array(regrets), np.array(spreads)
    print(
        f"rank agreement (Spearman) model vs truth over random sequences: median "
        f"{np.median(rhos):.3f} (10th percentile {np.percentile(rhos, 10):.3f}); regret of the "
        f"model's best sequence: median {np.median(regrets):.2f} vs best-minus-median spread "
        f"{np.median(spreads):.2f}"
    )
    if model_plan:
        gap = np.array(oracle_plan) - np.array(model_plan)
        print(
            f"CEM ({cfg.candidates}/{cfg.top_k}/{cfg.iterations}, cold start) from {len(gap)} "
            f"starts: true {H}-step return of the model's plan median {np.median(model_plan):.2f}, "
            f"of the exact-dynamics plan median {np.median(oracle_plan):.2f}; regret median "
            f"{np.median(gap):.2f}, 90th percentile {np.percentile(gap, 90):.2f}"
        )
    print(
        f"action sensitivity, constant +1 vs -1: |difference of {H}-step reward sums| median "
        f"{np.median(model_sens):.2f} (model, mean of {args.samples} prior rollouts) vs "
        f"{np.median(true_sens):.2f} (equations); one step, decoded angular velocity under +1 "
        f"minus -1: median {np.median(model_dv):.3f} vs {np.median(true_dv):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
