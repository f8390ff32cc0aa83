"""Command line: ``worldmodels train|collect|eval|play|ablate|plot|dream|play-dream|report|list``.

Bad input: one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .config import RESUME_SETTINGS
from .errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldmodels", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an agent (or --resume a run directory)")
    t.add_argument("agent", nargs="?", help="agent name, e.g. dreamerv3 (see `worldmodels list`)")
    t.add_argument("--env", help="environment id suite:name, e.g. gym:CartPole-v1")
    t.add_argument("--preset", action="append", default=[], help="named preset (repeatable)")
    t.add_argument("--steps", type=int, help="environment steps (run.steps)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--run-dir", help="run directory (default runs/<agent>-<env>-<seed>-<time>)")
    t.add_argument("--obs", choices=["vector", "pixels"], help="what the agent sees (run.obs)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N (run.device)")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set run.train_ratio=256",
    )
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    t.add_argument(
        "--dataset",
        metavar="DIR",
        help="train offline from a dataset written by `worldmodels collect` (no env is built "
        "for training; --env, if given, evaluates; --steps counts updates)",
    )

    c = sub.add_parser("collect", help="write episodes of a policy as a dataset")
    c.add_argument("--env", help="environment id suite:name (default: the --policy run's env)")
    c.add_argument(
        "--policy", default="random", help="random, or a run directory whose agent acts greedily"
    )
    c.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="exploration noise: Gaussian std on continuous actions, the probability of a "
        "uniform action on discrete ones",
    )
    c.add_argument("--episodes", type=int, required=True, help="whole episodes to collect")
    c.add_argument("--out", required=True, help="dataset directory (new or empty)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--obs", choices=["vector", "pixels"], help="what is recorded (default vector)")
    c.add_argument("--envs", type=int, default=1, help="environments stepped side by side")
    c.add_argument("--action-repeat", type=int, default=0, help="0 = the suite's default")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="evaluate a run's latest checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="acting setting for this evaluation, e.g. --set search.eval_simulations=200",
    )
    e.add_argument(
        "--games",
        type=int,
        default=100,
        help="board: envs: games vs random and vs the perfect player, per seat (0 = skip)",
    )

    g = sub.add_parser("play", help="play a board-game run's agent in the terminal")
    g.add_argument("run_dir")
    seat = g.add_mutually_exclusive_group()
    seat.add_argument("--first", dest="first", action="store_true", default=True, help="(default)")
    seat.add_argument("--second", dest="first", action="store_false", help="the agent opens")
    g.add_argument("--device", default="auto")

    a = sub.add_parser("ablate", help="a base preset and each single-axis change, over seeds")
    a.add_argument("agent", help="agent name, e.g. dreamer")
    a.add_argument("--env", required=True, help="environment id suite:name")
    a.add_argument("--preset", action="append", default=[], help="base preset(s), e.g. dreamerv3")
    a.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one single-axis change (repeatable): latent, kl, heads, retnorm, actor_grad, "
        "critic_target, core, unimix, or any dotted config key",
    )
    a.add_argument("--seeds", type=int, default=3)
    a.add_argument("--steps", type=int, help="environment steps per run")
    a.add_argument("--episodes", type=int, default=10, help="final eval episodes per run")
    a.add_argument("--out", help="output directory (default runs/ablate-<agent>-<env>)")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a.add_argument(
        "--progress", action="store_true", help="write each run's progress bar into its log"
    )
    a.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once, one process each; the rest queue"
    )
    a.add_argument(
        "--budget",
        type=float,
        default=math.inf,
        metavar="SECONDS",
        help="stop the runs still training after this long (they save a checkpoint; the same "
        "command continues them)",
    )

    pl = sub.add_parser("plot", help="learning curves of run directories, grouped over seeds")
    pl.add_argument("runs", nargs="+", help="run directories, or a directory holding them")
    pl.add_argument("--out", default="curves.png", help="figure file: .png, .pdf or .svg")
    pl.add_argument("--metric", default="eval/return_mean", help="a key of metrics.jsonl")
    pl.add_argument("--target", type=float, help="draw a dashed line at this value")
    pl.add_argument("--title")

    d = sub.add_parser(
        "dream", help="open-loop predictions of a run's model next to the truth (video, plots)"
    )
    d.add_argument("run_dir")
    d.add_argument("--sequences", type=int, default=6, help="windows shown (video columns)")
    d.add_argument("--context", type=int, default=5, help="observed steps of each window")
    d.add_argument("--horizon", type=int, default=45, help="imagined steps after the context")
    d.add_argument("--out", metavar="DIR", help="output directory (default RUN/dream)")
    d.add_argument(
        "--dataset", metavar="DIR", help="draw windows from this dataset instead of the replay"
    )

    pd = sub.add_parser(
        "play-dream",
        help="drive a Dreamer pixel run's world model with the keyboard in a local web page",
    )
    pd.add_argument("run_dir")
    pd.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks a free port")
    pd.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    pd.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    pd.add_argument("--device", default="auto")
    pd.add_argument(
        "--threads", type=int, default=1, help="torch threads on CPU (default 1; 0 = all cores)"
    )

    r = sub.add_parser(
        "report",
        help="one self-contained HTML page on runs: config, evals, curves, throughput, "
        "imagined-vs-real gap, open-loop media",
    )
    r.add_argument("runs", nargs="+", help="run directories, or a directory holding them")
    r.add_argument("--out", default="report.html", help="the HTML file (default report.html)")

    sub.add_parser("list", help="agents, presets, env suites and installed extras")
    return p


def _resume_overrides(info, args) -> None:
    """Apply --steps, --device and --set (run settings only) to a resumed run and record them
    in its config.json."""
    from .checkpoint import atomic_write_text
    from .config import apply_overrides, validate

    overrides = train_overrides(args)
    bad = [k for k in overrides if k not in RESUME_SETTINGS]
    if bad:
        raise UserError(
            f"{bad[0]} cannot change when resuming (it would change the experiment); "
            f"--set on --resume takes only {', '.join(RESUME_SETTINGS)}"
        )
    if overrides:
        from .train.run import resolve_device

        apply_overrides(info.config, overrides)
        validate(info.config)  # ranges, before config.json is rewritten
        resolve_device(info.config.run.device)  # a device this machine lacks fails before writing
        text = json.dumps(info.to_json(), indent=2)
        atomic_write_text(Path(info.run_dir) / "config.json", text)


def _reporter(info):
    """``viz.report.write_run_report`` for a run with ``run.report_every`` (the ``viz`` extra
    checked before the first step), else None."""
    if not info.config.run.report_every:
        return None
    from .viz.report import check_extras, write_run_report

    check_extras("run.report_every")
    return write_run_report


def _cmd_train(args) -> int:
    from .train.loop import Trainer
    from .train.run import load_run, lock_run_dir, new_run, unlock_run_dir

    if args.resume:
        if args.agent or args.env or args.preset or args.obs:
            raise UserError(
                "--resume takes the run directory; drop the agent, --env, --preset and --obs "
                "(the run's config.json is used; --steps, --device and --set of run settings "
                "may change)"
            )
        if args.dataset:
            raise UserError("--resume takes the run directory; drop --dataset (it is recorded)")
        info = load_run(args.resume)
        if not (Path(args.resume) / "checkpoints" / "latest.json").exists():
            print(
                f"{args.resume} has no checkpoint yet: starting it over in place from its "
                "config.json (its replay is kept)",
                file=sys.stderr,
            )
        lock_run_dir(args.resume)  # before config.json is rewritten
        try:
            _resume_overrides(info, args)
            trainer = Trainer(
                info, resume=True, progress=not args.no_progress, reporter=_reporter(info)
            )
        except BaseException:
            unlock_run_dir(args.resume)  # a refused resume leaves the run free
            raise
    else:
        if not args.agent:
            raise UserError(
                "name an agent, e.g. `worldmodels train dreamerv3 --env gym:CartPole-v1`"
                " (or --resume RUN_DIR)"
            )
        if not args.env and not args.dataset:
            raise UserError(
                "missing --env; e.g. --env gym:CartPole-v1 (worldmodels list shows the suites), "
                "or --dataset DIR to train offline"
            )
        info = new_run(
            args.agent,
            args.env,
            seed=args.seed,
            presets=args.preset,
            overrides=train_overrides(args),
            run_dir=args.run_dir,
            dataset=args.dataset,
        )
        print(f"run directory: {info.run_dir}", file=sys.stderr)
        trainer = Trainer(info, progress=not args.no_progress, reporter=_reporter(info))
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        print(
            f"stopped; checkpoint saved. resume: worldmodels train --resume {info.run_dir}",
            file=sys.stderr,
        )
        return 130
    if not result:
        print(f"trained offline, no env to evaluate in; run directory: {info.run_dir}")
        return 0
    print(
        f"final eval: return {result['return_mean']:.1f} ± {result['return_std']:.1f} "
        f"(min {result['return_min']:.1f}, max {result['return_max']:.1f}) over "
        f"{result['episodes']} episodes; run directory: {info.run_dir}"
    )
    return 0


def _cmd_collect(args) -> int:
    from .train.collect import collect

    schema = collect(
        args.env,
        args.out,
        episodes=args.episodes,
        policy=args.policy,
        noise=args.noise,
        seed=args.seed,
        obs=args.obs,
        num_envs=args.envs,
        action_repeat=args.action_repeat,
        progress=not args.no_progress,
    )
    print(
        f"dataset: {schema['episodes']} episodes, {schema['steps']} steps of {schema['env']} "
        f"in {args.out}; train from it: worldmodels train AGENT --dataset {args.out}"
    )
    return 0


def train_overrides(args) -> dict:
    """Config overrides of a `train` command: --steps, --obs, --device, then --set (a resume
    accepts only the run settings among them)."""
    from .config import parse_set_args

    overrides = {}
    if args.steps is not None:
        overrides["run.steps"] = args.steps
    if args.obs:
        overrides["run.obs"] = args.obs
    if args.device:
        overrides["run.device"] = args.device
    overrides.update(parse_set_args(args.set))
    return overrides


def _cmd_eval(args) -> int:
    from .config import parse_set_args
    from .train.games import board_evaluation, board_summary, plays_board
    from .train.loop import evaluate_run
    from .train.parts import gap_summary

    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1 (got {args.episodes})")
    overrides = parse_set_args(args.set)
    agent, result = evaluate_run(args.run_dir, args.episodes, args.seed, args.device, overrides)
    info = agent.run_info
    if args.games < 0:
        raise UserError(f"--games must be at least 0 (got {args.games})")
    board = args.games > 0 and plays_board(agent, info.env)
    if board:
        result.update(board_evaluation(agent, info.env, args.games, seed=args.seed))
    result["env_steps"] = int(agent.counters.get("env_steps", 0))
    result["run_dir"] = str(args.run_dir)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{info.agent} on {info.env} after {result['env_steps']} env steps: "
            f"return {result['return_mean']:.1f} ± {result['return_std']:.1f} "
            f"(min {result['return_min']:.1f}, max {result['return_max']:.1f}) "
            f"over {args.episodes} episodes"
        )
        if "return_gap" in result:
            print(gap_summary(result, info.config.run.gap_horizon))
        if board:
            print(f"board games ({args.games} per opponent and seat): {board_summary(result)}")
    return 0


def _cmd_play(args) -> int:
    from .train.games import board_game_name, play_human
    from .train.run import load_agent, load_run

    info = load_run(args.run_dir)
    game = board_game_name(info.env)
    if game is None:
        raise UserError(f"play needs a run on a board: env; {args.run_dir} trained on {info.env}")
    agent = load_agent(args.run_dir, device=args.device)

    def read() -> str:
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line

    play_human(agent, game, human_first=args.first, read=read, write=print)
    return 0


def _cmd_ablate(args) -> int:
    from .ablate import run_ablation
    from .config import parse_set_args

    if not args.axis:
        raise UserError("name at least one --axis, e.g. --axis kl=balanced")
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {args.seeds})")
    out = args.out or f"runs/ablate-{args.agent}-{args.env.replace(':', '_')}"
    rows = run_ablation(
        args.agent,
        args.env,
        args.axis,
        presets=args.preset,
        seeds=args.seeds,
        steps=args.steps,
        out=out,
        episodes=args.episodes,
        extra=parse_set_args(args.set),
        progress=args.progress,
        jobs=args.jobs,
        budget=args.budget,
    )
    if rows is None:
        return 1
    print(Path(out, "ablation.md").read_text())
    return 0


def _cmd_plot(args) -> int:
    from .logging.plot import plot_runs

    rows = plot_runs(args.runs, args.out, metric=args.metric, target=args.target, title=args.title)
    for r in rows:
        last, best = r["last"], r["best"]
        print(
            f"{r['group']}: seeds {r['seeds']}, last {args.metric} median {last['median']:.1f} "
            f"[{last['min']:.1f}, {last['max']:.1f}] at steps {r['last_step']}, best median "
            f"{best['median']:.1f} [{best['min']:.1f}, {best['max']:.1f}]"
        )
    print(f"wrote {args.out}")
    return 0


def _cmd_dream(args) -> int:
    from .viz.dream import dream_media, write_media

    media = dream_media(args.run_dir, args.sequences, args.context, args.horizon, args.dataset)
    for path in write_media(media, args.out or Path(args.run_dir) / "dream"):
        print(path)
    return 0


def _cmd_play_dream(args) -> int:
    from .viz.play_dream import play_dream

    play_dream(args.run_dir, args.host, args.port, args.fps, args.device, args.threads)
    return 0


def _cmd_report(args) -> int:
    from .viz.report import write_report

    path, size = write_report(args.runs, args.out)
    print(f"wrote {path} ({size / 1e6:.1f} MB)")
    return 0


def _cmd_list(args) -> int:
    from .agents import AGENTS
    from .envs import list_suites

    print("agents:")
    width = max(map(len, AGENTS))
    for name, spec in AGENTS.items():
        print(f"  {name:{width}s} {spec.description}")
    seen = set()
    for spec in AGENTS.values():
        if spec.family in seen:
            continue
        seen.add(spec.family)
        _, presets, _ = spec.load()
        print(f"presets ({spec.family}):")
        for p in presets.values():
            print(f"  {p.name:14s} [{p.kind}] {p.source}")
    print("env suites:")
    for s in list_suites():
        mark = "installed" if s["installed"] else f"pip install 'worldmodels[{s['extra']}]'"
        print(f"  {s['name']:8s} {s['description']} ({mark})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``worldmodels`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "collect":
            return _cmd_collect(args)
        if args.command == "eval":
            return _cmd_eval(args)
        if args.command == "play":
            return _cmd_play(args)
        if args.command == "ablate":
            return _cmd_ablate(args)
        if args.command == "plot":
            return _cmd_plot(args)
        if args.command == "dream":
            return _cmd_dream(args)
        if args.command == "play-dream":
            return _cmd_play_dream(args)
        if args.command == "report":
            return _cmd_report(args)
        return _cmd_list(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
