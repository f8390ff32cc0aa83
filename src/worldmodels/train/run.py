"""Run directories: creating one from a command, reading one back, building its agent and envs."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..agents import build_config, get_agent_spec
from ..checkpoint import atomic_write_text
from ..config import (
    FALSE_WORDS,
    TRUE_WORDS,
    apply_overrides,
    check_seed,
    load_config,
    to_dict,
    validate,
)
from ..envs import make_env
from ..envs.base import ActionSpace, Spec
from ..envs.vector import VectorEnv
from ..errors import UserError


@dataclass
class RunInfo:
    """What identifies a run: agent, env, seed, presets, resolved config and where it lives."""

    agent: str
    env: str | None
    """The env id; None only for an offline run that has no env to evaluate in."""
    seed: int
    presets: list[str]
    config: Any
    run_dir: Path
    dataset: str | None = None
    """Offline runs: the dataset directory it trains from (no env is built for training)."""

    @property
    def config_hash(self) -> str:
        text = json.dumps(to_dict(self.config), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {
            "library": "worldmodels",
            "version": __version__,
            "agent": self.agent,
            "env": self.env,
            "seed": self.seed,
            "presets": self.presets,
            "dataset": self.dataset,
            "config": to_dict(self.config),
        }


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_threads(threads: int) -> int:
    """Set torch intra-op threads; 0 = every usable core. Returns the count in effect."""
    if threads < 0:
        raise UserError(f"run.threads must be >= 0 (0 = all cores), got {threads}")
    torch.set_num_threads(threads or usable_cores())
    return torch.get_num_threads()


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable device is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for but CUDA is not available; use --device auto")
    return device


def default_run_dir(agent: str, env: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe_env = env.replace(":", "_").replace("/", "_")
    return Path("runs") / f"{agent}-{safe_env}-{seed}-{stamp}"


def new_run(
    agent: str,
    env: str | None,
    *,
    seed: int = 0,
    presets: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    dataset: str | Path | None = None,
) -> RunInfo:
    """Resolve the config, check the env id (or the dataset of an offline run), create the run
    directory and write config.json."""
    check_seed(seed)
    cfg, names = build_config(agent, presets, overrides)
    cls = get_agent_spec(agent).load()[2]
    if dataset is not None:
        from ..replay.dataset import open_dataset

        data = open_dataset(dataset)  # a bad dataset fails before anything is written
        dataset = str(Path(dataset).resolve())
        if env is not None and env != data.env:
            raise UserError(
                f"--env {env} differs from the env the dataset was collected on ({data.env}); "
                f"fix: --env {data.env}, or leave --env out to train without evaluation"
            )
        cls.prepare(cfg, data)  # the dataset has the env's spaces and episode length
    else:
        if env is None:
            raise UserError("missing --env; e.g. --env gym:CartPole-v1 (or --dataset DIR)")
        # Fail early on a bad env id, extra or action repeat, and on an env the agent cannot
        # use; the agent records settings it reads off the env in config.json.
        probe = make_env(env, obs=cfg.run.obs, seed=seed, **env_kwargs(cfg.run))
        try:
            cls.prepare(cfg, probe)
        finally:
            probe.close()
        if cfg.run.eval_env_options:  # evaluation's own settings fail now, not at the 1st eval
            spaces = (probe.obs_space, probe.act_space)
            probe = make_env(env, obs=cfg.run.obs, seed=seed, **env_kwargs(cfg.run, True))
            try:
                if (probe.obs_space, probe.act_space) != spaces:
                    raise UserError(
                        "run.eval_env_options change the observations or actions (eval "
                        f"{probe.obs_space}, {probe.act_space}; training {spaces[0]}, "
                        f"{spaces[1]}); fix: give evaluation only settings that keep them"
                    )
            finally:
                probe.close()
    path = Path(run_dir) if run_dir else default_run_dir(agent, env or "offline", seed)
    if (path / "config.json").exists():
        raise UserError(
            f"{path} already holds a run; fix: resume it with `worldmodels train --resume {path}` "
            "or choose another --run-dir"
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        what = "is a directory that holds no run" if path.is_dir() else "is a file"
        raise UserError(f"{path} {what}; fix: choose a new or empty --run-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create {path} ({e.strerror}); fix: choose another --run-dir"
        ) from None
    info = RunInfo(agent, env, seed, names, cfg, path, None if dataset is None else str(dataset))
    atomic_write_text(path / "config.json", json.dumps(info.to_json(), indent=2))
    return info


_LOCKS: dict[str, Any] = {}


def lock_run_dir(run_dir: str | Path) -> None:
    """Hold ``RUN/.lock`` for the rest of this process, so that two trainers never write one run
    directory (the second would interleave replay chunks and checkpoints). The OS drops the lock
    when the process ends, even on a crash, so no stale lock is left behind. A second call in the
    same process is a no-op; where ``fcntl`` is missing (Windows) nothing is locked."""
    path = Path(run_dir).resolve()
    if str(path) in _LOCKS:
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    path.mkdir(parents=True, exist_ok=True)
    f = open(path / ".lock", "a+")  # noqa: SIM115 (held until the process exits)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise UserError(
            f"{path} is in use by another worldmodels process (pid {pid}); fix: wait for it to "
            f"end or stop it (kill -TERM {pid} saves a checkpoint), then resume"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _LOCKS[str(path)] = f


def unlock_run_dir(run_dir: str | Path) -> None:
    """Release the lock :func:`lock_run_dir` took (when a run ends inside a longer process)."""
    f = _LOCKS.pop(str(Path(run_dir).resolve()), None)
    if f is not None:
        f.close()


def load_run(run_dir: str | Path) -> RunInfo:
    """Read a run directory's config.json back into a RunInfo (checking every key and type)."""
    path = Path(run_dir)
    cfg_path = path / "config.json"
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; give the run directory printed by train")
    if not cfg_path.exists():
        raise UserError(
            f"{path} is not a run directory (no config.json); give the directory "
            "that `worldmodels train` printed"
        )
    try:
        data = json.loads(cfg_path.read_text())
        spec = get_agent_spec(data["agent"])
        cls, _, _ = spec.load()
        cfg = load_config(cls, data, cfg_path)  # unknown keys, seed, types and ranges
        return RunInfo(
            data["agent"],
            data["env"],
            int(data["seed"]),
            list(data["presets"]),
            cfg,
            path,
            data.get("dataset"),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(
            f"{cfg_path} is corrupt ({type(e).__name__}: {e}); fix: restore it or start a new run"
        ) from None


RESERVED_ENV_OPTIONS = {
    "obs": "--obs",
    "seed": "--seed",
    "action_repeat": "--set run.action_repeat=N",
}
"""``make_env`` arguments a run sets itself: not settable through ``env_options``."""


def _option_value(key: str, text: str, field: str) -> Any:
    """One ``env_options`` value: a bool (true/false, yes/no, on/off, as ``--set``), None
    (none/null), an int, a float, ``HxW`` (or one int) for ``size``, else the text itself."""
    low = text.strip().lower()
    if not low:
        raise UserError(f"{field}: {key}= has no value; fix: e.g. {key}=true or {key}=0")
    if key == "size":
        parts = low.split("x")
        try:
            dims = [int(p) for p in parts]
        except ValueError:
            dims = []
        if len(dims) not in (1, 2):
            raise UserError(f"{field}: size={text!r} is not HxW; fix: e.g. size=96x96 or size=64")
        return (dims[0], dims[-1])
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(low)
        except ValueError:
            pass
    if low in TRUE_WORDS or low in FALSE_WORDS:
        return low in TRUE_WORDS
    return text.strip()


def parse_env_options(entries: Any, field: str = "run.env_options") -> dict[str, Any]:
    """``('grayscale=true', 'size=96x96')`` -> ``{'grayscale': True, 'size': (96, 96)}``."""
    out: dict[str, Any] = {}
    for entry in entries:
        key, sep, text = str(entry).partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(
                f"{field}: {entry!r} is not key=value; fix: e.g. "
                f"--set {field}=repeat_action_probability=0,size=96x96"
            )
        if key in RESERVED_ENV_OPTIONS:
            raise UserError(
                f"{field}: {key} is the run's own setting; fix: use {RESERVED_ENV_OPTIONS[key]}"
            )
        out[key] = _option_value(key, text, field)
    return out


def env_kwargs(run: Any, evaluation: bool = False) -> dict[str, Any]:
    """``make_env`` keyword arguments a RunConfig sets: ``action_repeat`` unless it is 0
    (``make_env`` checks the value), then ``env_options``, then for evaluation envs
    ``eval_env_options``."""
    out: dict[str, Any] = {"action_repeat": run.action_repeat} if run.action_repeat != 0 else {}
    out.update(parse_env_options(run.env_options))
    if evaluation:
        out.update(parse_env_options(run.eval_env_options, "run.eval_env_options"))
    return out


def run_env(info: RunInfo, seed: int, evaluation: bool = False):
    """One env of a run: its env id, observation mode and env settings, seeded ``seed``
    (``evaluation``: with ``run.eval_env_options`` on top)."""
    return make_env(
        info.env, obs=info.config.run.obs, seed=seed, **env_kwargs(info.config.run, evaluation)
    )


EVAL_BATCH = 16
"""Most evaluation episodes played side by side (one env each, one batched ``act``)."""


def eval_envs(info: RunInfo, episodes: int, seed_offset: int = 10_000) -> VectorEnv:
    """min(episodes, EVAL_BATCH) envs of the run for ``train.loop.evaluate``."""
    n = max(1, min(int(episodes), EVAL_BATCH))
    return VectorEnv(
        [functools.partial(run_env, info, info.seed + seed_offset + i, True) for i in range(n)]
    )


def make_envs(info: RunInfo, num_envs: int) -> tuple[VectorEnv, VectorEnv]:
    """Training envs (``num_envs``) and the evaluation envs (:func:`eval_envs` for
    ``run.eval_episodes``), seeded from the run seed."""
    train = VectorEnv([functools.partial(run_env, info, info.seed + i) for i in range(num_envs)])
    return train, eval_envs(info, info.config.run.eval_episodes)


def build_agent(
    info: RunInfo, obs_space: dict[str, Spec], act_space: ActionSpace, device: torch.device
):
    """Instantiate the agent class of ``info.agent`` with its resolved config."""
    _, _, cls = get_agent_spec(info.agent).load()
    return cls(info.config, obs_space, act_space, device)


def load_agent(run_dir: str | Path, device: str = "auto", overrides: dict[str, Any] | None = None):
    """Load the latest checkpointed agent of a run directory (``worldmodels.Agent.load``).

    ``overrides`` (``--set`` syntax) change acting settings for this load only, e.g.
    ``{"search.eval_simulations": "200"}``; ones that change the saved weights' shapes fail."""
    from ..checkpoint import check_meta, load_checkpoint

    info = load_run(run_dir)
    if overrides:
        apply_overrides(info.config, overrides)
        validate(info.config)
    dev = resolve_device(device)
    if info.dataset is not None:
        from ..replay.dataset import open_dataset

        data = open_dataset(info.dataset)
        agent = build_agent(info, data.obs_space, data.act_space, dev)
    else:
        env = run_env(info, info.seed)
        agent = build_agent(info, env.obs_space, env.act_space, dev)
        env.close()
    state, meta = load_checkpoint(Path(run_dir) / "checkpoints", map_location=dev)
    check_meta(meta, version=__version__, agent=info.agent)
    try:
        agent.load_state_dict(state["agent"])
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        first = lines[0]
        if not overrides:
            detail = lines[1] if len(lines) > 1 else first  # line 0 is PyTorch's header
            raise UserError(
                f"the checkpoint in {run_dir} does not fit the networks its config.json "
                f"describes ({detail[:160]}); config.json was edited, or both were written by "
                "another version of worldmodels; fix: restore config.json, load the run with "
                "that version, or train a new run"
            ) from None
        raise UserError(
            f"--set {' '.join(overrides)} changes the saved networks ({first}); "
            "fix: override only acting settings such as search.eval_simulations"
        ) from None
    agent.run_info = info
    agent.counters = state.get("counters", {})
    return agent
