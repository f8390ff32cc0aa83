"""Typed dataclass configs: presets with provenance, ``--set a.b=value``, JSON round trip, and
:func:`validate`, the range check of a resolved config.

Ranges are declared next to the fields, as a table per config class::

    CHECKS: ClassVar[dict[str, str]] = {"steps": ">= 1", "eval_every": ">= 0", "gamma": "(0, 1]"}

An explicit table rather than rules guessed from field names: a field's range follows from its
docstring (``head_units`` 0 = ``units``, ``eval_every`` 0 = off, a layer count of 0 is a linear
head), which no name pattern knows, and a table reads like the docstrings it restates. A rule is
one or more clauses joined by ``and``:

- ``>= 1``, ``> 0``, ``<= 1``, ``< 1``: a comparison with a number;
- ``[0, 1]``, ``(0, 1]``, ...: an interval, ``(`` / ``)`` open, ``[`` / ``]`` closed;
- ``<= candidates``, ``> vmin``: a comparison with another field of the same class;
- ``multiple of simnorm_dim``: an int divisible by another field of the same class;
- ``any``: no range (the value must still be finite).

Conventions: counts and sizes ``>= 1``; counts and intervals where 0 means off or "the default"
``>= 0``; probabilities, fractions and EMA rates ``[0, 1]``; learning rates, eps and clip norms
``> 0``; discounts ``(0, 1]``; loss weights and noise scales ``>= 0``. Every int and float field
has an entry (tests/test_config_validation.py checks), and :func:`validate` also checks that every
float is finite (NaN and inf are refused everywhere), that ``None`` appears only where the type
allows it (and is then not range-checked), that ints are ints and that ``Literal`` fields hold
one of their choices. Elements of tuple fields are checked one by one. A subclass inherits its
bases' tables (``PlanConfig`` lists ``MPPIConfig``'s fields), and a class may give the rules of a
section by dotted key (``"model.num_q": ">= 1"`` in ``TDMPC2Config`` for the model config that
models/tdmpc2.py defines); such an entry wins over the section class's own.

:func:`load_config` reads a run's config.json back: keys this version does not know are refused
with the version that wrote them, then the values are type- and range-checked. :func:`validate`
runs wherever a config is resolved: at the end of ``agents.build_config`` (after presets and
overrides), in :func:`load_config` (``train.run.load_run``), and after the ``--set`` overrides
of ``train --resume`` and ``eval``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

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
    """Env steps between evaluations; 0 = off (only the final evaluation)."""
    eval_episodes: int = 5
    gap_horizon: int = 50
    """Model exploitation, measured at every evaluation by agents that imagine or plan: the
    return their model predicts for their own greedy behaviour over this many steps from the
    start of an eval episode, next to the real return of the same steps (``eval/imagined_return``,
    ``eval/real_return``, ``eval/return_gap``); 0 = off. Each imagined step costs about one
    ``act`` step for one env (a whole plan or search for PlaNet, TD-MPC2 and MuZero). At the
    default sizes on a 2-core CPU: TD-MPC2 5 s (6 % of a Pendulum eval), MuZero 2 s and Dreamer
    0.5 s (6-10 % of an eval of 500-step CartPole episodes, 30 % of Dreamer's Pendulum eval);
    where episodes are short (early CartPole) it can cost more than the eval itself. PlaNet's
    default is 20 (``PlaNetConfig.run``)."""
    gap_episodes: int = 1
    """How many eval episodes (the first ones) ``gap_horizon`` measures."""
    report_every: int = 0
    """Agent steps (updates offline) between reports written during training; 0 = off. At
    every multiple of it, and at the end of training, the run writes into its directory
    ``dream/`` (the open-loop video and plots of ``worldmodels dream``) and ``report.html``
    (``worldmodels report`` of the run itself), from the agent and replay in memory: 3 windows
    of 5 observed steps and 45 imagined ones, or the longest horizon that fits the episodes
    held. Until the replay holds a window that fits, nothing is written (the log says why,
    once). Each file is written to a temp file and renamed, so a crash never leaves half of
    one, and a resumed run goes on at the next multiple; the training itself is the same as
    without reports. Needs the ``viz`` extra; settable on a resume. A report costs 1.5 s
    (``--preset debug``) to 2 s (default size) for DreamerV3 on CartPole pixels on a busy
    2-core CPU, mostly plots and video encoding: 0.5 % and 0.14 % of the training time of
    5000 steps (docs/viz.md)."""
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
    obs: str = "vector"
    """vector | pixels."""
    action_repeat: int = 0
    """Simulator steps per agent step, rewards summed (gym: and dmc: envs); 0 = the suite's
    default (dmc: 2, as TD-MPC2 and Dreamer on DMC; others: 1). ``steps``, ``train_ratio``,
    ``eval_every`` and ``prefill`` count agent steps; the simulator runs action_repeat times
    as many."""
    env_options: tuple[str, ...] = ()
    """Settings of the env as ``key=value`` entries, given to ``make_env`` as keyword arguments
    (each suite's settings are listed in its module docstring, e.g. ``worldmodels.envs.atari``):
    ``--set run.env_options=repeat_action_probability=0,grayscale=true,size=96x96``. Values
    read as true/false, ints, floats, ``HxW`` for ``size`` (or one int for a square), else
    text."""
    eval_env_options: tuple[str, ...] = ()
    """``key=value`` entries that evaluation envs take instead of (or besides) those of
    ``env_options``, e.g. ``episodic_life=false,clip_rewards=false`` so that evaluations score
    whole games when training envs end episodes at a lost life (EfficientZero's protocol)."""
    tensorboard: bool = True
    """Write TensorBoard events when tensorboard is installed."""

    CHECKS: ClassVar[dict[str, str]] = {
        "steps": ">= 1",
        "num_envs": ">= 1",
        "train_ratio": "> 0",
        "batch_size": ">= 1",
        "batch_length": ">= 1",
        "prefill": ">= 0",
        "replay_capacity": ">= 1",
        "replay_chunk": ">= 1",
        "eval_every": ">= 0",
        "eval_episodes": ">= 1",
        "gap_horizon": ">= 0",
        "gap_episodes": ">= 1",
        "report_every": ">= 0",
        "board_eval_games": ">= 0",
        "stop_at_return": "any",
        "log_every": ">= 1",
        "save_every_s": ">= 0",
        "threads": ">= 0",
        "action_repeat": ">= 0",
    }


#: Settings a resumed run may change: where and how fast it runs, how long, how often it is
#: evaluated and saved. Everything else would change the experiment the run directory records.
RESUME_SETTINGS = (
    "run.steps",
    "run.device",
    "run.threads",
    "compile",
    "run.stop_at_return",
    "run.eval_every",
    "run.eval_episodes",
    "run.gap_horizon",
    "run.gap_episodes",
    "run.report_every",
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


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
"""How a bool is written on the command line (``--set``, ``run.env_options``), any case."""


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
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
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


# Validation -------------------------------------------------------------------------------------

#: Options of ``worldmodels train`` that set a config key: the fix of a bad value names them.
CLI_FLAGS = {"run.steps": "--steps", "run.device": "--device", "run.obs": "--obs"}

#: Largest seed: the loop offsets the run seed (by env steps and episode counts) and passes it to
#: simulators that take 32-bit seeds (dm_control's RandomState).
MAX_SEED = 2**31 - 1

_NUMBER = r"[-+]?(?:inf|\d[\d_]*\.?\d*(?:e[-+]?\d+)?)"
_INTERVAL = re.compile(rf"^([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])$")
_COMPARE = re.compile(r"^(>=|>|<=|<)\s*(\S+)$")
_MULTIPLE = re.compile(r"^multiple of\s+([a-z_]\w*)$")


@dataclass(frozen=True)
class _Clause:
    text: str
    """How the clause reads in an error, e.g. ``in (0, 1]``, ``<= candidates``."""
    tests: tuple[tuple[str, float | str], ...]
    """(operator, bound): a number, or the name of a field of the same class."""


@functools.cache
def parse_rule(rule: str) -> tuple[_Clause, ...]:
    """The clauses of one ``CHECKS`` rule (grammar in the module docstring); ValueError if it
    does not parse (a mistake in a table, found by the tests)."""
    if rule.strip() == "any":
        return ()
    clauses = []
    for part in (c.strip() for c in rule.split(" and ")):
        if m := _INTERVAL.match(part):
            lo_op = ">=" if m[1] == "[" else ">"
            hi_op = "<=" if m[4] == "]" else "<"
            tests = ((lo_op, float(m[2])), (hi_op, float(m[3])))
            clauses.append(_Clause(f"in {part}", tests))
        elif m := _COMPARE.match(part):
            bound: float | str
            try:
                bound = float(m[2])
            except ValueError:
                if not re.fullmatch(r"[a-z_]\w*", m[2]):
                    raise ValueError(f"bad bound {m[2]!r} in rule {rule!r}") from None
                bound = m[2]
            clauses.append(_Clause(part, ((m[1], bound),)))
        elif m := _MULTIPLE.match(part):
            clauses.append(_Clause(f"a {part}", (("%", m[1]),)))
        else:
            raise ValueError(f"cannot parse rule {rule!r} (clause {part!r})")
    return tuple(clauses)


def checks_of(cls: type) -> dict[str, str]:
    """The ``CHECKS`` table of a config class merged with its bases' (a subclass's entry wins)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass).get("CHECKS", {}))
    return out


def _section_checks(checks: dict[str, str], name: str) -> dict[str, str]:
    """The entries ``name.key`` of a table, as ``key``: rules a config class declares for a
    section whose class is defined elsewhere (TDMPC2Config for models/tdmpc2.py's model)."""
    return {k[len(name) + 1 :]: v for k, v in checks.items() if k.startswith(name + ".")}


def field_rules(cfg: Any, prefix: str = "", outer: dict[str, str] | None = None) -> dict:
    """``{dotted key: rule or None}`` for every int and float field (tuples of them included) of
    a nested dataclass config: the rules :func:`validate` applies; None = no entry."""
    checks = {**checks_of(type(cfg)), **(outer or {})}
    out: dict[str, str | None] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            sub = _section_checks(checks, f.name)
            out.update(field_rules(value, prefix + f.name + ".", sub))
            continue
        typ = _type_of(type(cfg), f.name)
        args = typing.get_args(typ)
        inner = [typ, *args, *(a for arg in args for a in typing.get_args(arg))]
        if any(t in (int, float) for t in inner):
            out[prefix + f.name] = checks.get(f.name)
    return out


def _passes(value: float, op: str, bound: float) -> bool:
    if op == ">=":
        return value >= bound
    if op == ">":
        return value > bound
    if op == "<=":
        return value <= bound
    if op == "<":
        return value < bound
    if op == "%":
        return bound > 0 and value % bound == 0
    raise AssertionError(op)


def _failed_clause(value: float, clauses: tuple[_Clause, ...], obj: Any) -> _Clause | None:
    """The first clause ``value`` breaks (bounds that name a field read it from ``obj``)."""
    for clause in clauses:
        for op, bound in clause.tests:
            b = getattr(obj, bound) if isinstance(bound, str) else bound
            if b is not None and not _passes(value, op, b):
                return clause
    return None


def _describe(clauses: tuple[_Clause, ...], obj: Any, prefix: str) -> str:
    """A rule as an error shows it, fields named in full with their values:
    ``>= 1 and <= planner.candidates (32)``."""
    parts = []
    for clause in clauses:
        text = clause.text
        for _, bound in clause.tests:
            if isinstance(bound, str):
                text = re.sub(
                    rf"\b{bound}\b", f"{prefix}{bound} ({_fmt(getattr(obj, bound))})", text
                )
        parts.append(text)
    return " and ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(_fmt(v) for v in value)
    return str(value) if isinstance(value, str) else repr(value)


def _type_ok(value: Any, typ: Any) -> bool:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if typ is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (tuple, list):
        inner = args[0] if args else Any
        return isinstance(value, (tuple, list)) and all(_type_ok(v, inner) for v in value)
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is str:
        return isinstance(value, str)
    return True


def _type_name(typ: Any) -> str:
    """A field type as an error names it: ``an int``, ``one of rms, layer, none``, ..."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return f"one of {', '.join(map(str, args))}"
    if origin in (tuple, list):
        return f"a list of ({_type_name(args[0]) if args else 'values'})"
    names = {int: "an int", float: "a number", bool: "true or false", str: "a string"}
    return names.get(typ, "None" if typ is type(None) else str(typ))


def _fix(key: str, value: Any, where: str | Path | None) -> str:
    """How to set ``key`` to ``value``: a command-line option, or an edit of the file ``where``."""
    if where is not None:
        return f"set {key} to {_fmt(value)} in that file, or start a new run"
    if key in CLI_FLAGS:
        return f"{CLI_FLAGS[key]} {_fmt(value)}"
    return f"--set {key}={_fmt(value)}"


def _suggest(
    value: float, default: Any, clauses: tuple[_Clause, ...], obj: Any, integer: bool
) -> Any:
    """A value that passes ``clauses``: the default, else the rule's bound nearest ``value``."""

    def ok(c: float) -> bool:
        return math.isfinite(c) and _failed_clause(c, clauses, obj) is None

    if isinstance(default, (int, float)) and not isinstance(default, bool) and ok(default):
        return default
    bounds = []
    for clause in clauses:
        for _, bound in clause.tests:
            b = getattr(obj, bound) if isinstance(bound, str) else bound
            if isinstance(b, (int, float)) and math.isfinite(b):
                bounds.append(int(b) if integer and b == int(b) else b)
    bounds = [b for b in bounds if ok(b)]
    return min(bounds, key=lambda b: abs(b - value)) if bounds else None


def validate(cfg: Any, where: str | Path | None = None) -> None:
    """Check every value of a resolved (nested dataclass) config against its class's ``CHECKS``
    (module docstring) and its type; raise one UserError line naming the dotted key, the value,
    the allowed range and the fix, e.g. ``run.steps must be >= 1, got -5; fix: --steps 30000``.

    ``where``: the file the values were read from (a run's config.json); the error then names it
    and the fix edits it. None: they came from presets and overrides; the fix is a ``--set``."""
    try:
        defaults = type(cfg)()
    except TypeError:
        defaults = None
    _validate(cfg, defaults, "", where, {})


def _validate(
    obj: Any, defaults: Any, prefix: str, where: str | Path | None, outer: dict[str, str]
) -> None:
    cls = type(obj)
    checks = {**checks_of(cls), **outer}
    head = f"{where}: " if where is not None else ""
    for f in fields(obj):
        key = prefix + f.name
        value = getattr(obj, f.name)
        default = getattr(defaults, f.name, None) if defaults is not None else None
        if is_dataclass(value):
            _validate(value, default, key + ".", where, _section_checks(checks, f.name))
            continue
        typ = _type_of(cls, f.name)
        if not _type_ok(value, typ):
            fix = _fix(key, default, where)
            raise UserError(f"{head}{key} must be {_type_name(typ)}, got {value!r}; fix: {fix}")
        if value is None or isinstance(value, (bool, str)):
            continue
        items = list(enumerate(value)) if isinstance(value, (tuple, list)) else [(None, value)]
        clauses = parse_rule(checks.get(f.name, "any"))
        for i, item in items:
            if not isinstance(item, (int, float)):
                continue
            name = key if i is None else f"{key}[{i}]"
            if not math.isfinite(item):
                fix = _fix(key, default, where)
                raise UserError(f"{head}{name} must be a finite number, got {item!r}; fix: {fix}")
            if _failed_clause(item, clauses, obj) is None:
                continue
            desc = _describe(clauses, obj, prefix)
            if i is None:
                integer = typ is int or int in typing.get_args(typ)
                good = _suggest(item, default, clauses, obj, integer)
            else:
                ok = isinstance(default, (tuple, list)) and all(
                    _failed_clause(d, clauses, obj) is None for d in default
                )
                good = default if ok else None
            fix = _fix(key, good, where) if good is not None else f"set {key} to a value {desc}"
            raise UserError(f"{head}{name} must be {desc}, got {_fmt(item)}; fix: {fix}")


def check_seed(seed: Any, where: str | Path | None = None) -> int:
    """The run seed if it is an int in [0, MAX_SEED], else a UserError (``where``: the
    config.json it was read from; None: it came from ``--seed``)."""
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED:
        return seed
    if where is None:
        raise UserError(f"--seed must be an int in [0, {MAX_SEED}], got {seed!r}; fix: --seed 0")
    raise UserError(
        f'{where}: seed must be an int in [0, {MAX_SEED}], got {seed!r}; fix: set "seed" to 0 '
        "in that file, or start a new run"
    )


def unknown_keys(cls: type, data: dict) -> list[str]:
    """Dotted keys of ``to_dict`` output ``data`` that are not fields of config class ``cls``."""
    cfg = cls()
    known = set(field_names(cfg))
    sections = {k.rsplit(".", 1)[0] for k in known if "." in k}
    out: list[str] = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            key = prefix + str(k)
            if isinstance(v, dict) and key not in known:
                walk(v, key + ".")  # a section, or an unknown one whose keys are listed
            elif key not in known and key not in sections:
                out.append(key)

    walk(data, "")
    return out


#: Keys that moved within the config since they were written: old dotted key -> new dotted key.
#: A run that wrote the old key loads with its value under the new one; an agent without the new
#: field never honoured the setting, so the key is dropped.
MOVED: dict[str, str] = {"run.compile": "compile", "run.precision": "precision"}


def _move_keys(cls: type, config: dict) -> dict:
    """``config`` (nested ``to_dict`` output) with the :data:`MOVED` keys at their new place."""
    known = set(field_names(cls()))
    config = copy.deepcopy(config)
    for old, new in MOVED.items():
        *path, leaf = old.split(".")
        section = config
        for part in path:
            section = section.get(part) if isinstance(section, dict) else None
        if not isinstance(section, dict) or leaf not in section:
            continue
        value = section.pop(leaf)
        if new in known:
            *npath, nleaf = new.split(".")
            target = config
            for part in npath:
                target = target.setdefault(part, {})
            target.setdefault(nleaf, value)
    return config


def load_config(cls: type, data: dict, where: str | Path) -> Any:
    """The config of a run's config.json (``data``: the whole file, ``where``: its path).

    Keys that moved (:data:`MOVED`) are read at their new place. Keys this version does not
    know are refused with the version that wrote the file; a key
    absent from it takes the class default or its ``ABSENT_MEANS`` value (:func:`from_dict`);
    the seed and every value are then checked (:func:`check_seed`, :func:`validate`)."""
    from . import __version__

    config = data["config"]
    if not isinstance(config, dict):
        raise TypeError(f"'config' is a {type(config).__name__}, not an object")
    run = Path(where).parent
    config = _move_keys(cls, config)
    unknown = unknown_keys(cls, config)
    if unknown:
        written = data.get("version")
        names = ", ".join(unknown)
        if written != __version__:
            by = f"worldmodels {written}" if written else "an unknown version of worldmodels"
            raise UserError(
                f"config.json in {run} was written by {by} and has keys this "
                f"version ({__version__}) does not know: {names}; fix: use that version, or "
                "start a new run"
            )
        close = difflib.get_close_matches(unknown[0], field_names(cls()), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"config.json in {run} has keys worldmodels {__version__} does not know: "
            f"{names}{hint}; fix: correct or remove them, or start a new run"
        )
    check_seed(data["seed"], where)
    try:
        cfg = from_dict(cls, config)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    validate(cfg, where)
    return cfg


#: Run settings of every agent's ``debug`` preset: tiny batches, short prefill.
DEBUG_RUN: dict[str, Any] = {
    "run.batch_size": 4,
    "run.batch_length": 8,
    "run.train_ratio": 32,
    "run.prefill": 100,
    "run.eval_every": 500,
    "run.eval_episodes": 1,
    "run.log_every": 100,
    "run.replay_chunk": 64,
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
