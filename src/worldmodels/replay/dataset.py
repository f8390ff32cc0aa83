"""Datasets: episodes on disk in the replay's own format, read-only.

A dataset directory holds

* ``chunks/``: the replay's ``.npz`` chunk files (``{chunk_id}-{uid}-{stream}-{seq}-{length}.npz``,
  plain ``.npy`` members, never pickled), one stream per collecting env;
* ``dataset.json``: the schema, written last (a directory without it is an unfinished
  collection): ``format`` (``"worldmodels-episodes"``), ``version`` (:data:`VERSION`), the env
  id, observation mode and action repeat it was collected with, the policy and noise, the
  observation and action spaces, the keys of every step with shape and dtype, and the length
  of every chunk file.

Every step is one row: the observation keys, ``reward``/``is_first``/``is_last``/
``is_terminal`` (``docs/conventions.md``), the ``action`` taken at it and ``env_step``, the
collecting env step (its age). ``worldmodels collect`` writes datasets; ``worldmodels train
AGENT --dataset DIR`` trains from one without building an env for training.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..envs.base import ActionSpace, Spec, Symmetry
from ..errors import UserError
from .buffer import ReplayBuffer

FORMAT = "worldmodels-episodes"
VERSION = 1
SCHEMA = "dataset.json"
CHUNKS = "chunks"
_NAME_RE = re.compile(r"^(\d+)-([0-9a-f]{8})-(\d+)-(\d+)-(\d+)\.npz$")


def spaces_to_json(obs_space: dict[str, Spec], act_space: ActionSpace) -> dict[str, Any]:
    """Observation and action spaces as JSON values."""
    return {
        "obs_space": {
            k: {"shape": list(s.shape), "dtype": s.dtype.name} for k, s in obs_space.items()
        },
        "act_space": {"discrete": act_space.discrete, "n": act_space.n},
    }


@dataclass
class Dataset:
    """An opened, checked dataset; :meth:`replay` loads its steps for sampling."""

    path: Path
    env: str
    obs_space: dict[str, Spec]
    act_space: ActionSpace
    keys: dict[str, tuple[tuple[int, ...], np.dtype]]
    chunks: dict[str, int]
    episodes: int
    steps: int
    meta: dict[str, Any]
    episode_length: int | None = None
    symmetries: tuple[Symmetry, ...] = field(default=())

    def replay(self, seed: int = 0) -> ReplayBuffer:
        """An in-memory replay holding every step (one incarnation per collected stream)."""
        rb = ReplayBuffer(max(self.steps, 1), None, chunk_size=max(self.steps, 1), seed=seed)
        streams: dict[tuple[str, int], int] = {}
        for name in sorted(self.chunks, key=_order):
            _, uid, stream, _, _ = _NAME_RE.match(name).groups()
            sid = streams.setdefault((uid, int(stream)), len(streams))
            data = self._read(name)
            for i in range(self.chunks[name]):
                rb.add({k: v[i] for k, v in data.items()}, sid)
        return rb

    def check_chunk(self, name: str) -> None:
        """Check one chunk file against the schema from its array headers (cheap: no data is
        read): a truncated or damaged file, other keys, shapes or dtypes raise a UserError."""
        path = self.path / CHUNKS / name
        length = self.chunks[name]
        try:
            with zipfile.ZipFile(path) as zf:
                found = {}
                for info in zf.infolist():
                    with zf.open(info) as member:
                        major, _ = np.lib.format.read_magic(member)
                        read = (
                            np.lib.format.read_array_header_1_0
                            if major == 1
                            else np.lib.format.read_array_header_2_0
                        )
                        found[info.filename.removesuffix(".npy")] = read(member)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise UserError(
                f"dataset chunk {path} is unreadable ({type(e).__name__}); the dataset is "
                "truncated or damaged; fix: collect it again"
            ) from None
        self._check_arrays(path, length, {k: (h[0], np.dtype(h[2])) for k, h in found.items()})

    def _check_arrays(
        self, path: Path, length: int, found: dict[str, tuple[tuple[int, ...], np.dtype]]
    ) -> None:
        if set(found) != set(self.keys):
            raise UserError(
                f"dataset chunk {path} has keys {sorted(found)}, but {SCHEMA} lists "
                f"{sorted(self.keys)}; fix: collect the dataset again"
            )
        for k, (shape, dtype) in self.keys.items():
            got_shape, got_dtype = found[k]
            if tuple(got_shape[1:]) != shape or got_dtype != dtype or got_shape[0] < length:
                raise UserError(
                    f"dataset chunk {path}: key {k!r} is {got_dtype}{list(got_shape)}, but "
                    f"{SCHEMA} says {np.dtype(dtype).name}{[length, *shape]} (mixed observation "
                    "shapes or a truncated file); fix: collect the dataset again"
                )

    def _read(self, name: str) -> dict[str, np.ndarray]:
        path = self.path / CHUNKS / name
        length = self.chunks[name]
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise UserError(
                f"dataset chunk {path} is unreadable ({type(e).__name__}); the dataset is "
                "truncated or damaged; fix: collect it again"
            ) from None
        self._check_arrays(path, length, {k: (v.shape, v.dtype) for k, v in data.items()})
        return {k: v[:length] for k, v in data.items()}


def _order(name: str) -> tuple[str, int, int]:
    _, uid, stream, seq, _ = _NAME_RE.match(name).groups()
    return uid, int(stream), int(seq)


def open_dataset(path: str | Path) -> Dataset:
    """Open and check a dataset directory (schema, version, every chunk file listed and present);
    bad input is a one-line :class:`UserError`."""
    path = Path(path)
    schema = path / SCHEMA
    if not path.is_dir():
        raise UserError(f"dataset {path} is not a directory; fix: give the --out of collect")
    if not schema.exists():
        raise UserError(
            f"{path} is not a dataset (no {SCHEMA}; an interrupted collection writes none); "
            "fix: run `worldmodels collect` to completion"
        )
    try:
        meta = json.loads(schema.read_text())
        if meta.get("format") != FORMAT:
            raise UserError(
                f"{schema} is not a worldmodels dataset schema; fix: give a directory written "
                "by `worldmodels collect`"
            )
        if meta.get("version") != VERSION:
            raise UserError(
                f"{schema} has dataset format version {meta.get('version')}; this worldmodels "
                f"reads version {VERSION}; fix: collect it again with this version"
            )
        obs_space = {
            k: Spec(tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in meta["obs_space"].items()
        }
        act = meta["act_space"]
        keys = {k: (tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in meta["keys"].items()}
        chunks = {str(k): int(v) for k, v in meta["chunks"].items()}
        data = Dataset(
            path,
            str(meta["env"]),
            obs_space,
            ActionSpace(bool(act["discrete"]), int(act["n"])),
            keys,
            chunks,
            int(meta["episodes"]),
            int(meta["steps"]),
            meta,
            meta.get("episode_length"),
        )
    except UserError:
        raise
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{schema} is malformed ({type(e).__name__}: {e}); fix: collect the dataset again"
        ) from None
    for name in chunks:
        if not _NAME_RE.match(name):
            raise UserError(
                f"{schema} lists {name!r}, which is not a chunk file name; "
                "fix: collect the dataset again"
            )
        if not (path / CHUNKS / name).exists():
            raise UserError(
                f"dataset {path} is truncated: chunk {name} listed in {SCHEMA} is missing; "
                "fix: collect it again"
            )
    if sum(chunks.values()) != data.steps or data.steps < 1:
        raise UserError(
            f"{schema} says {data.steps} steps but its chunks hold {sum(chunks.values())}; "
            "fix: collect the dataset again"
        )
    for k, spec in obs_space.items():
        if keys.get(k, (None, None)) != (spec.shape, spec.dtype):
            raise UserError(
                f"{schema}: observation {k!r} differs between obs_space and keys; "
                "fix: collect the dataset again"
            )
    for name in chunks:
        data.check_chunk(name)
    return data
