"""Typed dataclass configs: presets with provenance, ``--set a.b=value``, JSON round trip."""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from .errors import UserError


@dataclass
class RunConfig:
    """Settings of the training loop shared by every agent."""

    steps: int = 30_000
    """Environment steps to train for (summed over parallel envs)."""
    num_envs: int = 1
    """Environments stepped in parallel during collection."""
    train_ratio: float = 64.0
    """Replayed steps per environment step (DreamerV3's definition): updates per env step =
    train_ratio / (batch_size * batch_length)."""
    batch_size: int = 16
    batch_length: int = 64
    prefill: int = 1_000
    """Env steps collected with a random policy before the first update."""
    replay_capacity: int = 1_000_000
    replay_chunk: int = 1024
    """Steps per replay chunk file; a crash loses at most the unflushed chunk."""
    eval_every: int = 5_000
    eval_episodes: int = 5
    board_eval_games: int = 20
    """board: envs, agents that respect legal masks: games per opponent and seat at every eval
    (vs random and vs the perfect / negamax player, moving first and second); 0 = off."""
    stop_at_return: float | None = None
    """Stop early once an evaluation's mean return reaches this (e.g. 475 on CartPole)."""
    log_every: int = 1_000
    save_every_s: float = 120.0
    """Seconds between checkpoints (also written at every eval and at the end)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N | mps."""
    threads: int = 1
    """torch intra-op threads on CPU; 0 = every core this process may use. 1 is fastest for
    small batches and for two runs side by side; Dreamer defaults to 0 (see DreamerConfig.run)."""
    compile: bool = True
    """torch.compile the agent's hot inner steps (falls back to eager with a warning if the
    compiler is unavailable); 1.6x on DreamerV3's imagination step on CPU (docs/results.md)."""
    cuda_graphs: bool = False
    """Dreamer, PlaNet and TD-MPC2: replay each update and each acting step (CEM / MPPI
    planning included) as one CUDA graph after 3 eager warm-up calls (nn/graphs.py), removing
    the per-kernel launch overhead that bounds small models on a GPU. No effect on CPU. Dreamer
    needs optim.optimizer=adam. Off by default until checked on a GPU
    (benchmarks/cuda_graphs.py)."""
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    """Matrix products in ``bf16`` under autocast (states, losses, optimiser in float32), or all
    ``fp32``; ``auto`` = bf16 where the device does bf16 natively (CUDA; a CPU with AMX or
    AVX512-BF16), else fp32 (nn/precision.py). 2.2x on a DreamerV1 update on an AMX CPU.
    Dreamer and PlaNet; TD-MPC2 and MuZero compute in float32 (bf16 is refused)."""
    obs: str = "vector"
    """vector | pixels."""
    action_repeat: int = 0
    """Simulator steps per agent step, rewards summed (gym: and dmc: envs); 0 = the suite's
    default (dmc: 2, as TD-MPC2 and Dreamer on DMC; others: 1). ``steps``, ``train_ratio``,
    ``eval_every`` and ``prefill`` count agent steps; the simulator runs action_repeat times
    as many."""
    tensorboard: bool = True
    """Write TensorBoard events when tensorboard is installed."""


#: Settings a resumed run may change: where and how fast it runs, how long, how often it is
#: evaluated and saved. Everything else would change the experiment the run directory records.
RESUME_SETTINGS = (
    "run.steps",
    "run.device",
    "run.threads",
    "run.compile",
    "run.cuda_graphs",
    "run.stop_at_return",
    "run.eval_every",
    "run.eval_episodes",
    "run.log_every",
    "run.save_every_s",
    "run.tensorboard",
)


def _type_of(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def field_names(cfg: Any, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a (nested) dataclass config."""
    out = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            out += field_names(value, prefix + f.name + ".")
        else:
            out.append(prefix + f.name)
    return out


def _parse_value(text: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse_value(text, arg, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"bad value for {key}: {text!r}")
    if origin is typing.Literal:
        if text in args:
            return text
        raise UserError(f"bad value for {key}: {text!r}; choose one of {', '.join(map(str, args))}")
    if origin in (tuple, list):
        items = [t for t in text.strip("()[]").split(",") if t.strip()]
        inner = args[0] if args else str
        vals = [_parse_value(t.strip(), inner, key) for t in items]
        return tuple(vals) if origin is tuple else vals
    if typ is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UserError(f"bad value for {key}: {text!r} is not a bool; use true or false")
    if typ is int:
        try:
            f = float(text)
        except ValueError:
            raise UserError(f"bad value for {key}: {text!r} is not an int") from None
        if f != int(f):
            raise UserError(f"bad value for {key}: {text!r} is not an int")
        return int(f)
    if typ is float:
        try:
            return float(text)
        except ValueError:
            raise UserError(f"bad value for {key}: {text!r} is not a float") from None
    if typ is str:
        return text
    raise UserError(f"cannot set {key} from the command line (type {typ})")


def _check_value(value: Any, typ: Any, key: str) -> Any:
    """Coerce a Python value (from a preset or JSON) to the field type, or raise UserError."""
    if isinstance(value, str) and typ is not str:
        return _parse_value(value, typ, key)
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(typ):
            return None
        for arg in typing.get_args(typ):
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, key)
            except UserError:
                pass
        raise UserError(f"bad value for {key}: {value!r} does not match {typ}")
    if origin is typing.Literal:
        if value in typing.get_args(typ):
            return value
        raise UserError(f"bad value for {key}: {value!r}; choose one of {typing.get_args(typ)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"bad value for {key}: {value!r} is not a sequence")
        inner = typing.get_args(typ)[0] if typing.get_args(typ) else Any
        vals = [v if inner is Any else _check_value(v, inner, key) for v in value]
        return tuple(vals) if origin is tuple else vals
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"bad value for {key}: {value!r} is not a bool")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise UserError(f"bad value for {key}: {value!r} is not an int")
        return int(value)
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"bad value for {key}: {value!r} is not a float")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise UserError(f"bad value for {key}: {value!r} is not a string")
        return value
    return value


def _locate(cfg: Any, key: str) -> tuple[Any, str]:
    parts = key.split(".")
    obj = cfg
    for i, part in enumerate(parts):
        names = {f.name for f in fields(obj)}
        if part not in names:
            close = difflib.get_close_matches(key, field_names(cfg), n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UserError(f"unknown config key '{key}'{hint} (worldmodels list shows presets)")
        if i == len(parts) - 1:
            return obj, part
        obj = getattr(obj, part)
        if not is_dataclass(obj):
            raise UserError(f"unknown config key '{key}': '{part}' is not a section")
    raise AssertionError


def set_value(cfg: Any, key: str, value: Any) -> None:
    """Set a dotted key on a nested dataclass config, checking the key and the type."""
    obj, name = _locate(cfg, key)
    typ = _type_of(type(obj), name)
    if is_dataclass(getattr(obj, name)):
        raise UserError(f"'{key}' is a section; set one of its keys, e.g. {key}.<name>=...")
    setattr(obj, name, _check_value(value, typ, key))


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> None:
    """Apply ``{dotted.key: value}`` overrides in order (values may be strings from the CLI)."""
    for key, value in overrides.items():
        set_value(cfg, key, value)


def parse_set_args(items: list[str]) -> dict[str, str]:
    """Parse ``['a.b=1', 'c=x']`` from ``--set`` flags into a dict."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"bad --set '{item}': write --set key=value, e.g. --set run.steps=1000")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def to_dict(cfg: Any) -> dict:
    """Nested dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: dict) -> Any:
    """Build a config of ``cls`` from ``to_dict`` output, checking every key and type.

    A key absent from ``data`` takes the class default, except the keys of the class's
    ``ABSENT_MEANS`` table: fields added after runs were already written, whose absence from
    an older config.json means the value those runs were trained with (which may differ from
    today's default). Without it, an old run directory would load with new sizes and fail."""
    cfg = cls()
    flat: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + k + ".")
            else:
                flat[prefix + k] = v

    walk(data, "")
    for key, value in getattr(cls, "ABSENT_MEANS", {}).items():
        flat.setdefault(key, value)
    apply_overrides(cfg, flat)
    return cfg


#: Run settings of every agent's ``debug`` preset: tiny batches, short prefill, no compile.
DEBUG_RUN: dict[str, Any] = {
    "run.batch_size": 4,
    "run.batch_length": 8,
    "run.train_ratio": 32,
    "run.prefill": 100,
    "run.eval_every": 500,
    "run.eval_episodes": 1,
    "run.log_every": 100,
    "run.replay_chunk": 64,
    "run.compile": False,
    "run.threads": 1,
}


@dataclass(frozen=True)
class Preset:
    """A named set of overrides with where its values come from."""

    name: str
    overrides: dict[str, Any]
    source: str
    """Paper, version and table the values come from, and what differs."""
    kind: str = "agent"
    """agent | size | cpu | debug: what the preset sets."""
    extends: tuple[str, ...] = field(default_factory=tuple)
    by_obs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides for one observation kind (``run.obs``: vector | pixels), applied right after
    the preset's own, before later presets and ``--set``: a reference's per-domain configs."""


def resolve_presets(
    presets: dict[str, Preset], names: list[str], obs: str | None = None
) -> dict[str, Any]:
    """Merge presets (and what they extend) left to right into one override dict; ``obs``
    (the run's observation kind) selects each preset's ``by_obs`` overrides."""
    merged: dict[str, Any] = {}
    for name in names:
        if name not in presets:
            close = difflib.get_close_matches(name, list(presets), n=3, cutoff=0.4)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UserError(
                f"unknown preset '{name}'{hint} (available: {', '.join(sorted(presets))})"
            )
        preset = presets[name]
        merged.update(resolve_presets(presets, list(preset.extends), obs))
        merged.update(preset.overrides)
        merged.update(preset.by_obs.get(obs or "", {}))
    return merged
