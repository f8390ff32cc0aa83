"""Atomic checkpoints: safetensors for the tensors, a JSON sidecar for everything else.

A checkpoint of step ``N`` in a directory is three files:

* ``ckpt-000000000N.safetensors``: every tensor and numpy array of the state, on CPU;
* ``ckpt-000000000N.json``: ``{"format": 1, "meta": ..., "skeleton": ..., "tensors": ...}``,
  the nested structure with each tensor replaced by a marker, plus the sha256 of the
  safetensors file so that a damaged file is noticed on load;
* ``latest.json``: ``{"step": N, "files": [...]}``, rewritten last.

A second save at the same step (a stage that trains without stepping the env, such as the
CMA-ES generations of World Models) writes its tensors under another name,
``ckpt-000000000N-<12 random hex digits>.safetensors``, and the sidecar, renamed over the old one,
is what switches to it; the old tensors are deleted only after that. So a crash between the
two renames leaves the old pair, not new tensors beside an old sidecar.

Each file is written to a temp file in the same directory, flushed, fsynced and renamed over
its final name, then the directory is fsynced, so a crash at any point leaves either the
previous checkpoint or the new one reachable from ``latest.json``, never a half-written one.
Nothing here unpickles: tensors come back through safetensors, the rest through JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from worldmodels.errors import UserError

__all__ = [
    "FORMAT",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_meta",
    "flatten_state",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
    "unflatten_state",
]

FORMAT = 1
LATEST = "latest.json"
_CKPT_RE = re.compile(r"^ckpt-(\d{10,})(?:-[0-9a-f]{12})?\.(safetensors|json)$")
_TMP_PREFIX = "."
_TMP_SUFFIX = ".tmp"

# Markers used in the skeleton. A dict is written as a plain JSON object only when all its
# keys are str and none of them is a marker; otherwise it becomes {"__dict__": [[k, v], ...]}.
_TENSOR = "__tensor__"
_NDARRAY = "__ndarray__"
_DICT = "__dict__"
_TUPLE = "__tuple__"
_FLOAT = "__float__"
_MARKERS = frozenset({_TENSOR, _NDARRAY, _DICT, _TUPLE, _FLOAT})


# --------------------------------------------------------------------------- atomic writes


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success fsync it, rename it over ``path``, and
    fsync the directory. On failure the temp file is removed and ``path`` is untouched."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f"{_TMP_PREFIX}{path.name}.", suffix=_TMP_SUFFIX
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old content or the new, never a mix."""
    with _atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()


def atomic_write_text(path: Path | str, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- flatten


def flatten_state(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into ``(tensors, skeleton)``.

    ``state`` may nest dicts (str or int keys), lists, tuples, tensors, numpy arrays and
    scalars, Python scalars, str and None. ``tensors`` maps a path-like name to a CPU,
    contiguous tensor that shares storage with no other entry (as safetensors requires);
    ``skeleton`` is JSON-serialisable (strict JSON: non-finite floats are encoded) and holds
    a marker where each tensor was. :func:`unflatten_state` inverts it exactly.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()

    def name_for(path: list[str]) -> str:
        base = "/".join(path) or "_"
        name, i = base, 1
        while name in tensors:
            name, i = f"{base}#{i}", i + 1
        return name

    def add_tensor(t: torch.Tensor, path: list[str]) -> str:
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen_storage:
            t = t.clone()
        elif t.numel():
            seen_storage.add(ptr)
            if t.untyped_storage().nbytes() != t.numel() * t.element_size():
                t = t.clone()  # a view into a larger buffer: save only what it shows
        name = name_for(path)
        tensors[name] = t
        return name

    def walk(x: Any, path: list[str]) -> Any:
        if isinstance(x, torch.Tensor):
            return {_TENSOR: add_tensor(x, path)}
        if isinstance(x, (np.ndarray, np.generic)):
            arr = np.asarray(x)
            if arr.dtype.kind not in "biufc":
                raise TypeError(
                    f"cannot checkpoint numpy array of dtype {arr.dtype} at {'/'.join(path)!r}"
                )
            native = arr.astype(arr.dtype.newbyteorder("="), copy=False)
            t = torch.from_numpy(np.array(native, copy=True, order="C"))
            marker: dict[str, Any] = {_NDARRAY: add_tensor(t, path), "dtype": arr.dtype.str}
            if isinstance(x, np.generic):
                marker["scalar"] = True
            return marker
        if x is None or isinstance(x, (bool, int, str)):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {_FLOAT: repr(x)}
        if isinstance(x, dict):
            plain = all(isinstance(k, str) and k not in _MARKERS for k in x)
            if plain:
                return {k: walk(v, [*path, k]) for k, v in x.items()}
            items = []
            for k, v in x.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(
                        f"cannot checkpoint dict key {k!r} ({type(k).__name__}) at "
                        f"{'/'.join(path)!r}: only str and int keys are supported"
                    )
                items.append([k, walk(v, [*path, str(k)])])
            return {_DICT: items}
        if isinstance(x, tuple):
            return {_TUPLE: [walk(v, [*path, str(i)]) for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, [*path, str(i)]) for i, v in enumerate(x)]
        raise TypeError(
            f"cannot checkpoint value of type {type(x).__name__} at {'/'.join(path)!r}; "
            "state_dict() must return tensors, arrays, numbers, str, None, dicts, lists, tuples"
        )

    skeleton = walk(state, [])
    return tensors, skeleton


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Inverse of :func:`flatten_state`. Raises ``KeyError`` naming a tensor that is missing."""

    def get(name: str) -> torch.Tensor:
        try:
            return tensors[name]
        except KeyError:
            raise KeyError(f"tensor {name!r} is missing") from None

    def walk(x: Any) -> Any:
        if isinstance(x, list):
            return [walk(v) for v in x]
        if not isinstance(x, dict):
            return x
        if _TENSOR in x:
            return get(x[_TENSOR])
        if _NDARRAY in x:
            arr = get(x[_NDARRAY]).cpu().numpy().astype(np.dtype(x["dtype"]), copy=True)
            return arr[()] if x.get("scalar") else arr
        if _TUPLE in x:
            return tuple(walk(v) for v in x[_TUPLE])
        if _DICT in x:
            return {k: walk(v) for k, v in x[_DICT]}
        if _FLOAT in x:
            return float(x[_FLOAT])
        return {k: walk(v) for k, v in x.items()}

    return walk(skeleton)


# --------------------------------------------------------------------------- save / load


def _stem(step: int) -> str:
    return f"ckpt-{step:010d}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_checkpoints(directory: Path | str) -> list[int]:
    """Steps of the complete checkpoints (sidecar and tensors both present) in ``directory``,
    ascending. Does not read ``latest.json``."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found: dict[int, set[str]] = {}
    for p in directory.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.setdefault(int(m.group(1)), set()).add(m.group(2))
    return sorted(s for s, kinds in found.items() if kinds == {"safetensors", "json"})


def save_checkpoint(
    directory: Path | str, state: dict, *, step: int, meta: dict, keep: int | None = 2
) -> Path:
    """Write the checkpoint of ``step`` into ``directory`` (created if needed), point
    ``latest.json`` at it, then delete older checkpoints beyond the newest ``keep``
    (``None`` keeps all). Returns the path of the JSON sidecar."""
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 or None, got {keep}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, skeleton = flatten_state(state)

    stem = _stem(step)
    sidecar_path = directory / f"{stem}.json"
    tensors_path = directory / f"{stem}.safetensors"
    while tensors_path.exists():  # a rewrite at this step: never replace what the sidecar names
        tensors_path = directory / f"{stem}-{secrets.token_hex(6)}.safetensors"
    with _atomic_path(tensors_path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": str(FORMAT), "step": str(step)})
        digest = _sha256(tmp)
    sidecar = {
        "format": FORMAT,
        "step": step,
        "meta": meta,
        "tensors": {"file": tensors_path.name, "sha256": digest},
        "skeleton": skeleton,
    }
    atomic_write_text(sidecar_path, json.dumps(sidecar, allow_nan=False))
    for p in directory.glob(f"{stem}*.safetensors"):  # tensors of an earlier save at this step
        m = _CKPT_RE.match(p.name)
        if m and int(m.group(1)) == step and p.name != tensors_path.name:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    latest = {"step": step, "files": [sidecar_path.name, tensors_path.name]}
    atomic_write_text(directory / LATEST, json.dumps(latest, indent=1) + "\n")
    _cleanup(directory, current=step, keep=keep)
    return sidecar_path


def _cleanup(directory: Path, *, current: int, keep: int | None) -> None:
    """Delete checkpoints other than ``current`` and the ``keep - 1`` newest before it, and
    temp files left by an interrupted write. Checkpoints with a step above ``current`` are
    leftovers of a crashed timeline (never referenced by latest.json) and are deleted too."""
    steps: set[int] = set()
    for p in directory.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            steps.add(int(m.group(1)))
    older = sorted((s for s in steps if s < current), reverse=True)
    kept = {current}
    if keep is None:
        kept.update(older)
    else:
        kept.update(older[: keep - 1])
    for p in directory.iterdir():
        m = _CKPT_RE.match(p.name)
        stale_tmp = p.name.startswith(_TMP_PREFIX + "ckpt-") or p.name.startswith(
            _TMP_PREFIX + LATEST + "."
        )
        if (m and int(m.group(1)) not in kept) or (stale_tmp and p.name.endswith(_TMP_SUFFIX)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _corrupt(path: Path, reason: str) -> UserError:
    reason = " ".join(str(reason).split())  # one line
    return UserError(
        f"checkpoint {path} is corrupt ({reason}); fix: delete it to fall back to an older "
        "checkpoint, or start a new run"
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"invalid JSON: {e}") from None


def _resolve_dir(directory: Path) -> Path:
    """Accept the checkpoints directory itself or a run directory containing ``checkpoints/``."""
    if not (directory / LATEST).exists() and not list_checkpoints(directory):
        sub = directory / "checkpoints"
        if sub.is_dir():
            return sub
    return directory


def _latest_step(directory: Path) -> int:
    """The step to load: latest.json's, or, where its files were deleted (or latest.json is
    gone but checkpoints remain), the newest complete checkpoint at or before it."""
    no_ckpt = UserError(
        f"no checkpoint in {directory}; is this a run directory? "
        "(it should contain checkpoints/latest.json)"
    )
    latest_path = directory / LATEST
    available = list_checkpoints(directory)
    if latest_path.exists():
        latest = _read_json(latest_path)
        if not isinstance(latest, dict) or not isinstance(latest.get("step"), int):
            raise _corrupt(latest_path, "no integer 'step'")
        step = latest["step"]
        stem = _stem(step)
        if (directory / f"{stem}.json").exists() or (directory / f"{stem}.safetensors").exists():
            return step  # a missing half is reported as corrupt by the caller
        candidates = [s for s in available if s <= step]
        if not candidates:
            raise _corrupt(
                latest_path,
                f"it points to step {step}, whose files are gone, and no older checkpoint remains",
            )
        fallback = candidates[-1]
    elif available:
        fallback = available[-1]
    else:
        raise no_ckpt
    warnings.warn(
        f"{latest_path} is missing or points to deleted files; loading the newest remaining "
        f"checkpoint, step {fallback}",
        stacklevel=3,
    )
    return fallback


def load_checkpoint(
    directory: Path | str, *, map_location: str | torch.device = "cpu"
) -> tuple[dict, dict]:
    """Load the checkpoint that ``latest.json`` in ``directory`` points to.

    ``directory`` is the checkpoints directory (or a run directory containing one). Returns
    ``(state, meta)``. Problems are :class:`UserError` whose one-line message names the fix.
    Never unpickles.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(
            f"no checkpoint in {directory}; is this a run directory? "
            "(it should contain checkpoints/latest.json)"
        )
    directory = _resolve_dir(directory)
    step = _latest_step(directory)
    stem = _stem(step)
    sidecar_path = directory / f"{stem}.json"
    if not sidecar_path.exists():
        raise _corrupt(sidecar_path, "file missing")
    sidecar = _read_json(sidecar_path)
    if not isinstance(sidecar, dict) or not {"format", "meta", "skeleton"} <= sidecar.keys():
        raise _corrupt(sidecar_path, "missing 'format', 'meta' or 'skeleton'")
    if sidecar["format"] != FORMAT:
        raise UserError(
            f"checkpoint {sidecar_path} has format {sidecar['format']!r}, this worldmodels "
            f"reads format {FORMAT}; fix: load it with the worldmodels version that wrote it "
            f"({(sidecar.get('meta') or {}).get('version', 'unknown')})"
        )
    name = (sidecar.get("tensors") or {}).get("file") or f"{stem}.safetensors"
    m = _CKPT_RE.match(str(name))
    if not m or int(m.group(1)) != step or m.group(2) != "safetensors":
        raise _corrupt(sidecar_path, f"it names tensors file {name!r}, not one of step {step}")
    tensors_path = directory / name
    if not tensors_path.exists():
        raise _corrupt(tensors_path, "file missing")
    expected = (sidecar.get("tensors") or {}).get("sha256")
    if expected is not None and _sha256(tensors_path) != expected:
        raise _corrupt(tensors_path, "sha256 does not match the one recorded at save time")
    try:
        tensors = load_file(str(tensors_path), device=str(map_location))
    except Exception as e:  # safetensors raises its own error type for a broken header
        raise _corrupt(tensors_path, f"{type(e).__name__}: {e}") from None
    try:
        state = unflatten_state(tensors, sidecar["skeleton"])
    except (KeyError, TypeError, ValueError) as e:
        raise _corrupt(sidecar_path, e.args[0] if e.args else type(e).__name__) from None
    return state, sidecar["meta"]


# --------------------------------------------------------------------------- compatibility


def _major_minor(version: str) -> tuple[int, ...] | None:
    m = re.match(r"^\s*v?(\d+)\.(\d+)", str(version))
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_meta(meta: dict, *, version: str, agent: str, config_hash: str | None = None) -> None:
    """Refuse a checkpoint written by another library, for another agent, or by a worldmodels
    whose major.minor version differs from ``version``. With ``config_hash``, also refuse one
    whose recorded config hash differs (the run's config.json was edited after it was saved).
    """
    if not isinstance(meta, dict):
        raise UserError("checkpoint has no metadata; fix: start a new run")
    library = meta.get("library")
    their_version = meta.get("version", "unknown")
    their_agent = meta.get("agent", "unknown")
    wrote = f"checkpoint was written by {library or 'an unknown library'} {their_version}"
    if library != "worldmodels":
        raise UserError(f"{wrote}, not by worldmodels; fix: start a new run")
    if their_agent != agent:
        raise UserError(
            f"{wrote} for agent {their_agent}; this run asks for agent {agent}; "
            f"fix: resume with --agent {their_agent}, or start a new run"
        )
    ours, theirs = _major_minor(version), _major_minor(their_version)
    if theirs is None or ours != theirs:
        raise UserError(
            f"{wrote} for agent {their_agent}; this is worldmodels {version}; fix: resume it "
            f"with pip install 'worldmodels=={their_version}', or start a new run"
        )
    recorded = meta.get("config_hash")
    if config_hash is not None and recorded is not None and recorded != config_hash:
        raise UserError(
            f"the run's config (hash {config_hash}) differs from the one its checkpoint was "
            f"written with (hash {recorded}); fix: restore the run's config.json, or start a "
            "new run"
        )
