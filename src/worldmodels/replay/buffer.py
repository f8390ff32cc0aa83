"""Sequence replay: per-stream chunks in memory, mirrored to ``.npz`` files on disk.

A *stream* is the sequence of consecutive steps of one environment (e.g. one index of a
vector env). Steps are appended to the stream's current chunk, a set of preallocated numpy
arrays of ``chunk_size`` rows, one array per key, dtypes as given (images stay uint8). When a
chunk fills it is *completed*: it gets the next ``chunk_id`` and, when the buffer has a
``directory``, is written there atomically (temp file, ``fsync``, ``os.replace``). A crash
therefore loses at most the partial chunk of each stream; :meth:`ReplayBuffer.flush` writes
those too (as short chunks) and the stream goes on in a fresh chunk.

File names are ``{chunk_id:09d}-{uid}-{stream}-{seq:06d}-{length}.npz``: ``chunk_id`` orders
chunks by completion, ``uid`` (8 hex digits, fresh for every buffer instance) and ``stream``
name the stream *incarnation*, and ``seq`` numbers the chunks of one incarnation. Windows are
sampled within one incarnation only; a buffer reloaded from a directory puts new data into
new incarnations, so data written after a resume never glues onto pre-crash data. Files are
plain ``.npy`` members in a zip (``np.load(path, allow_pickle=False)`` reads them); nothing is
ever unpickled.

Prioritised sampling (Schaul et al. 2016, as MuZero uses it): every step holds a priority p_i
(new steps get the largest priority seen so far); ``sample(..., priority_alpha=a, priority_beta=b)``
draws window starts with P(i) = p_i^a / sum_k p_k^a over the N valid starts (steps followed by at
least ``length - 1`` steps of the same incarnation) and returns importance weights
w_i = (N P(i))^-b / max_batch w, plus each window's ``index`` for :meth:`update_priorities`.
Priorities live in memory next to the chunks (chunk files are immutable) and travel in
:meth:`state_dict` keyed by chunk id, so a resume restores those of every completed chunk; steps
of chunks completed after the checkpoint come back with the largest priority. The buffer stays
generic this way (one replay for every agent) instead of a MuZero-only game store.

The draws go through a :class:`~worldmodels.replay.sumtree.SumTree` over p_i^a, built (O(N))
at the first prioritised call and rebuilt only when a call brings another ``a`` or ``length``.
Its leaves come in blocks of ``chunk_size`` (or of the longest chunk reloaded from disk), one
block per held chunk: completed chunk ``chunk_id`` uses block ``chunk_id mod R``, where the ring
size R is ``capacity // chunk_size`` plus some slack (widened, with a rebuild, when many short
flushed chunks are held), and the partial chunk of each stream uses that stream's block after
the ring. Row r of a chunk is leaf ``block * block_size + r`` and holds p^a while the step is a
valid start, else 0: the last ``length - 1`` steps of an incarnation enter the tree only once
later steps arrive, an evicted chunk zeroes its leaves, a completing chunk moves from its
stream's block to its ring block. New valid starts and :meth:`update_priorities` reach the tree
at the next prioritised call, in one batched update. So a draw costs O(log N), a priority update
O(log N), an added step O(log N) amortised (evictions and moves: O(chunk_size + log N) per
chunk), none O(N). The layout
depends only on the held chunks (given R), so a buffer reloaded from its flushed directory holds
the same leaves and draws the same windows as the original.
"""

from __future__ import annotations

import copy
import os
import re
import uuid
import warnings
import zipfile
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .sumtree import SumTree

__all__ = ["ReplayBuffer"]

_NAME_RE = re.compile(r"^(\d+)-([0-9a-f]{8})-(\d+)-(\d+)-(\d+)\.npz$")
_TMP_PREFIX = "."
_TMP_SUFFIX = ".tmp"
_NOT_COMPLETED = 1 << 62  # sort key of an incarnation whose first chunk is still partial
_FORMAT = 1
_DAMAGED_DIR = "damaged"  # unreadable chunk files are moved here on reload
_PENDING_MAX = 4096  # priority updates held back for the next prioritised call, at most


class _Chunk:
    """Consecutive steps of one incarnation; ``data[k]`` has rows ``[:length]`` filled."""

    __slots__ = ("data", "length", "start", "seq", "chunk_id", "inc", "path", "priority", "slot")

    def __init__(self, data: dict[str, np.ndarray], length: int, start: int, seq: int, inc):
        self.data = data
        self.priority = np.ones(len(next(iter(data.values()))), np.float64)
        self.length = length
        self.start = start  # absolute position of row 0 within the incarnation
        self.seq = seq
        self.chunk_id: int | None = None  # set when completed
        self.inc: _Incarnation = inc
        self.path: Path | None = None
        self.slot: int | None = None  # leaf block in the priority tree, while it has one


class _Incarnation:
    """One unbroken run of one stream; ``chunks`` are the ones still held, in order."""

    __slots__ = (
        "uid",
        "stream",
        "created",
        "chunks",
        "starts",
        "next_seq",
        "next_start",
        "live",
        "tree_end",
    )

    def __init__(self, uid: str, stream: int, created: int, live: bool):
        self.uid = uid
        self.stream = stream
        self.created = created
        self.chunks: list[_Chunk] = []
        self.starts: list[int] = []  # chunks[i].start, kept for bisection
        self.next_seq = 0
        self.next_start = 0
        self.live = live  # a stream of this buffer instance still writes into it
        self.tree_end = 0  # held steps at positions below this are in the priority tree

    def end(self) -> int:
        """Position one past the last held step."""
        last = self.chunks[-1]
        return last.start + last.length

    def append(self, chunk: _Chunk) -> None:
        self.chunks.append(chunk)
        self.starts.append(chunk.start)

    def length(self) -> int:
        if not self.chunks:
            return 0
        last = self.chunks[-1]
        return last.start + last.length - self.chunks[0].start

    def sort_key(self) -> tuple[int, int]:
        first = self.chunks[0].chunk_id if self.chunks else None
        return (_NOT_COMPLETED if first is None else first, self.created)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ReplayBuffer:
    """Sequence replay over environment streams, optionally persisted as chunk files.

    Args:
        capacity: most steps held; when exceeded, the oldest *completed* chunk is dropped
            (from memory and disk). Partial chunks are never dropped, so with many streams
            and a tiny capacity the buffer may briefly hold more than ``capacity``.
        directory: where chunk files live; ``None`` keeps everything in memory. A directory
            that already holds chunk files is reloaded (newest chunks up to ``capacity``);
            unreadable files are moved into its ``damaged/`` folder with a warning, temp
            files of interrupted writes are removed, other files are left alone.
        chunk_size: steps per chunk; capped at ``max(1, capacity // 4)`` so that dropping a
            whole chunk never empties most of the buffer (see ``self.chunk_size``).
        seed: seed of the buffer's own ``np.random.Generator`` used by :meth:`sample`.
    """

    def __init__(
        self,
        capacity: int,
        directory: str | os.PathLike | None = None,
        chunk_size: int = 1024,
        seed: int = 0,
    ):
        capacity = int(capacity)
        chunk_size = int(chunk_size)
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        if chunk_size < 1:
            raise ValueError(f"replay chunk_size must be >= 1, got {chunk_size}")
        self.capacity = capacity
        self.chunk_size = max(1, min(chunk_size, capacity // 4))
        self.directory = Path(directory) if directory is not None else None
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._schema: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._key_set: frozenset[str] = frozenset()
        self._incs: dict[int, _Incarnation] = {}
        self._streams: dict[int, list] = {}  # stream -> [incarnation, partial chunk or None]
        self._completed: deque[_Chunk] = deque()  # by chunk_id: the eviction order
        self._order: list[_Incarnation] | None = None  # cached sampling order
        self._size = 0
        self._num_added = 0
        self._next_chunk_id = 0
        self._inc_counter = 0
        self._max_priority = 1.0
        self._prioritized = False  # priorities travel in state_dict once they were used
        # The priority tree (see the module docstring); None until a prioritised call.
        self._tree: SumTree | None = None
        self._tree_alpha = 0.0
        self._tree_length = 0
        self._tree_count = 0  # valid window starts in the tree: N of the importance weights
        self._ring = 0  # R: blocks for completed chunks
        self._block = 0  # leaves per block
        self._slot_chunk: list[_Chunk | None] = []  # block -> the chunk whose rows it holds
        self._stream_slot: dict[int, int] = {}  # stream -> its partial block, minus R
        self._moved: list[_Chunk] = []  # completed chunks still in their stream's block
        self._pending: list[int] = []  # leaves whose priority changed since the last call
        loaded_uids: set[str] = set()
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            loaded_uids = self._load_directory()
            self._num_added = self._size
        self._uid = uuid.uuid4().hex[:8]
        while self._uid in loaded_uids:
            self._uid = uuid.uuid4().hex[:8]

    # ------------------------------------------------------------------ public API

    def __len__(self) -> int:
        return self._size

    @property
    def num_added(self) -> int:
        """Total steps ever added (restored by :meth:`load_state_dict`; after a reload without
        it, the number of steps loaded)."""
        return self._num_added

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys every stored step has (empty before the first step)."""
        return tuple(self._schema) if self._schema else ()

    def __repr__(self) -> str:
        where = str(self.directory) if self.directory is not None else "memory"
        return (
            f"ReplayBuffer(len={self._size}, capacity={self.capacity}, "
            f"chunk_size={self.chunk_size}, streams={len(self._streams)}, "
            f"incarnations={len(self._incs)}, at={where})"
        )

    def add(self, step: Mapping[str, Any], stream: int = 0) -> None:
        """Append one time step to ``stream``; the arrays are copied, dtypes kept.

        The first step fixes the keys, shapes and dtypes; later steps must have the same keys
        and shapes, and dtypes that cast ``same_kind`` (a float image into uint8 is refused).
        """
        stream = int(stream)
        if stream < 0:
            raise ValueError(f"replay stream ids must be >= 0, got {stream}")
        if self._schema is None:
            self._set_schema(step)
        elif step.keys() != self._key_set:
            raise ValueError(
                f"replay step has keys {sorted(step)}, but this replay stores "
                f"{sorted(self._key_set)}"
            )
        state = self._streams.get(stream)
        if state is None:
            inc = self._new_incarnation(self._uid, stream, live=True)
            state = self._streams[stream] = [inc, None]
        chunk = state[1]
        if chunk is None:
            chunk = state[1] = self._new_chunk(state[0])
        i = chunk.length
        data = chunk.data
        for key, (shape, dtype) in self._schema.items():
            value = step[key]
            if not isinstance(value, np.ndarray):
                value = np.asarray(value)
            if value.shape != shape:
                raise ValueError(f"replay key {key!r}: expected shape {shape}, got {value.shape}")
            if value.dtype != dtype and not np.can_cast(value.dtype, dtype, "same_kind"):
                raise TypeError(
                    f"replay key {key!r} is stored as {dtype}, got {value.dtype} "
                    f"(which does not cast safely)"
                )
            data[key][i] = value
        chunk.priority[i] = self._max_priority
        chunk.length = i + 1
        self._size += 1
        self._num_added += 1
        if chunk.length >= self.chunk_size:
            state[1] = None
            self._complete(chunk)
        if self._size > self.capacity:
            self._evict()
        if self._moved:
            self._move_completed()

    def add_batch(self, steps: Mapping[str, Any], streams: Sequence[int] | None = None) -> None:
        """Add step ``i`` (``steps[k][i]`` for every key) to stream ``i`` or ``streams[i]``."""
        arrays = {k: np.asarray(v) for k, v in steps.items()}
        sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                "add_batch needs arrays with one common leading dimension, got shapes "
                + ", ".join(f"{k}={a.shape}" for k, a in arrays.items())
            )
        (n,) = sizes
        if streams is None:
            streams = range(n)
        elif len(streams) != n:
            raise ValueError(f"add_batch got {n} steps but {len(streams)} stream ids")
        for i, s in enumerate(streams):
            self.add({k: a[i] for k, a in arrays.items()}, s)

    def sample(
        self,
        batch_size: int,
        length: int,
        priority_alpha: float = 0.0,
        priority_beta: float = 0.0,
    ) -> dict[str, np.ndarray]:
        """Sample ``batch_size`` windows of ``length`` consecutive steps, uniformly over all
        start positions of all incarnations; returns ``{key: [batch_size, length, ...]}``.

        Windows may span chunks (including the partial ones) and episode boundaries; they
        never span two incarnations. ``priority_alpha`` > 0 samples starts by priority instead
        (see the module docstring) and adds ``index`` (int64 ``[batch_size, 2]``) and ``weight``
        (float32 ``[batch_size]``, importance weights with exponent ``priority_beta``).
        """
        batch_size = int(batch_size)
        length = int(length)
        if batch_size < 1 or length < 1:
            raise ValueError(
                f"sample needs batch_size >= 1 and length >= 1, got {batch_size}, {length}"
            )
        if not np.isfinite(priority_alpha) or priority_alpha < 0:
            raise ValueError(f"priority_alpha must be finite and >= 0, got {priority_alpha}")
        if not np.isfinite(priority_beta) or priority_beta < 0:
            raise ValueError(f"priority_beta must be finite and >= 0, got {priority_beta}")
        if priority_alpha > 0.0:
            return self._sample_prioritized(
                batch_size, length, float(priority_alpha), float(priority_beta)
            )
        order = self._sampling_order()
        counts = np.fromiter(
            (max(0, inc.length() - length + 1) for inc in order), np.int64, len(order)
        )
        total = int(counts.sum())
        if total <= 0:
            raise self._too_short(length)
        ends = np.cumsum(counts)
        draws = self._rng.integers(0, total, size=batch_size)
        which = np.searchsorted(ends, draws, side="right")
        offsets = draws - (ends[which] - counts[which])
        incs = [order[w] for w in which]
        starts = [inc.starts[0] + int(o) for inc, o in zip(incs, offsets)]
        return self._gather(incs, starts, length)

    def segments(self) -> list[list[dict[str, np.ndarray]]]:
        """The steps held, one list per incarnation (an unbroken run of one stream) in sampling
        order, holding its chunks' arrays ``{key: [length, ...]}`` oldest first (the partial
        chunk last). The arrays are views of the buffer's memory, nothing is copied: read them,
        never write. Later :meth:`add` calls fill rows after a view's end, never inside it."""
        return [
            [{k: v[: c.length] for k, v in c.data.items()} for c in inc.chunks if c.length]
            for inc in self._sampling_order()
            if inc.length()
        ]

    def update_priorities(self, index: np.ndarray, priority: np.ndarray) -> None:
        """Set the priority of the window starts ``index`` ([B, 2] from :meth:`sample`) to
        ``priority`` ([B], > 0); starts evicted since the sample are skipped. O(B log N): the
        tree takes the new values at the next prioritised call, with the steps added since."""
        index = np.asarray(index, np.int64).reshape(-1, 2)
        priority = np.asarray(priority, np.float64).reshape(-1)
        if index.shape[0] != priority.shape[0]:
            raise ValueError(f"{index.shape[0]} indices but {priority.shape[0]} priorities")
        if not np.all(np.isfinite(priority)) or np.any(priority <= 0):
            raise ValueError("priorities must be finite and > 0")
        self._prioritized = True
        tree = self._tree
        for (created, pos), p in zip(index.tolist(), priority.tolist()):
            inc = self._incs.get(created)
            if inc is None or not inc.chunks or pos < inc.starts[0]:
                continue
            chunk = inc.chunks[bisect_right(inc.starts, pos) - 1]
            row = pos - chunk.start
            if row < chunk.length:
                chunk.priority[row] = p
                self._max_priority = max(self._max_priority, p)
                if tree is not None and pos < inc.tree_end:
                    assert chunk.slot is not None
                    self._pending.append(chunk.slot * self._block + row)
        if len(self._pending) > _PENDING_MAX:
            self._apply_pending()

    def flush(self) -> None:
        """Write every non-empty partial chunk to disk now (no-op without a directory).

        Each stream then continues, in the same incarnation, in a fresh chunk, so windows
        may still span the flushed chunk and what follows.
        """
        if self.directory is None:
            return
        for state in self._streams.values():
            chunk = state[1]
            if chunk is not None and chunk.length > 0:
                state[1] = None
                self._complete(chunk)
        if self._size > self.capacity:
            self._evict()
        if self._moved:
            self._move_completed()

    def state_dict(self) -> dict:
        """Counters a resume needs (the data itself lives in the chunk files), plus the
        priorities of completed chunks once prioritised sampling was used."""
        state: dict[str, Any] = {
            "format": _FORMAT,
            "capacity": self.capacity,
            "chunk_size": self.chunk_size,
            "num_added": self._num_added,
            "next_chunk_id": self._next_chunk_id,
            "size": self._size,
            "rng": copy.deepcopy(self._rng.bit_generator.state),
        }
        if self._prioritized:
            state["max_priority"] = self._max_priority
            state["priorities"] = [
                [c.chunk_id, c.priority[: c.length].copy()] for c in self._completed
            ]
        return state

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        """Restore the counters and the sampling RNG from :meth:`state_dict`.

        Chunks on disk newer than the state (written after it was taken) stay in the
        buffer; the chunk counter never moves backwards, so no file name is reused.
        """
        if d.get("format") != _FORMAT:
            raise ValueError(
                f"replay state has format {d.get('format')!r}, this version reads {_FORMAT}"
            )
        rng_state = dict(d["rng"])
        name = type(self._rng.bit_generator).__name__
        if rng_state.get("bit_generator") != name:
            raise ValueError(
                f"replay state's RNG is {rng_state.get('bit_generator')!r}, expected {name!r}"
            )
        self._rng.bit_generator.state = rng_state
        self._num_added = int(d["num_added"])
        self._next_chunk_id = max(self._next_chunk_id, int(d["next_chunk_id"]))
        if "priorities" in d:
            self._prioritized = True
            self._max_priority = float(d["max_priority"])
            saved = {int(cid): np.asarray(p, np.float64) for cid, p in d["priorities"]}
            for chunk in self._completed:
                p = saved.get(chunk.chunk_id)
                if p is not None and p.shape == (chunk.length,):
                    chunk.priority[: chunk.length] = p
                else:  # completed after the checkpoint: new data, largest priority
                    chunk.priority[: chunk.length] = self._max_priority
            self._drop_tree()

    # ------------------------------------------------------------------ internals

    def _set_schema(self, step: Mapping[str, Any]) -> None:
        if not step:
            raise ValueError("replay step has no keys")
        schema = {}
        for key, value in step.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"replay keys must be non-empty strings, got {key!r}")
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise TypeError(f"replay key {key!r} has object dtype, which cannot be stored")
            schema[key] = (arr.shape, arr.dtype)
        self._schema = schema
        self._key_set = frozenset(schema)

    def _new_incarnation(self, uid: str, stream: int, live: bool) -> _Incarnation:
        inc = _Incarnation(uid, stream, self._inc_counter, live)
        self._inc_counter += 1
        self._incs[inc.created] = inc
        self._order = None
        return inc

    def _new_chunk(self, inc: _Incarnation) -> _Chunk:
        assert self._schema is not None
        data = {
            k: np.empty((self.chunk_size, *shape), dtype)
            for k, (shape, dtype) in self._schema.items()
        }
        chunk = _Chunk(data, 0, inc.next_start, inc.next_seq, inc)
        inc.next_seq += 1
        inc.append(chunk)
        self._order = None
        return chunk

    def _complete(self, chunk: _Chunk) -> None:
        """Give ``chunk`` its id, trim it, queue it for eviction and write it to disk."""
        n = chunk.length
        if n < self.chunk_size:
            chunk.data = {k: v[:n].copy() for k, v in chunk.data.items()}
            chunk.priority = chunk.priority[:n].copy()
        chunk.chunk_id = self._next_chunk_id
        self._next_chunk_id += 1
        chunk.inc.next_start = chunk.start + n
        self._completed.append(chunk)
        self._order = None
        if chunk.slot is not None:  # in its stream's block: moves to its ring block
            self._moved.append(chunk)
        if self.directory is not None:
            chunk.path = self._write(chunk)

    def _write(self, chunk: _Chunk) -> Path:
        inc = chunk.inc
        name = f"{chunk.chunk_id:09d}-{inc.uid}-{inc.stream}-{chunk.seq:06d}-{chunk.length}.npz"
        assert self.directory is not None
        final = self.directory / name
        tmp = self.directory / f"{_TMP_PREFIX}{name}{_TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as f:
                with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                    for key, arr in chunk.data.items():
                        with zf.open(key + ".npy", "w", force_zip64=True) as member:
                            np.lib.format.write_array(
                                member, arr[: chunk.length], allow_pickle=False
                            )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        return final

    def _evict(self) -> None:
        while self._size > self.capacity and self._completed:
            chunk = self._completed.popleft()
            inc = chunk.inc
            # Chunks complete in order within an incarnation, so the globally oldest
            # completed chunk is the first chunk of its incarnation.
            assert inc.chunks[0] is chunk
            if chunk.slot is not None:
                self._clear_slot(chunk)
            inc.chunks.pop(0)
            inc.starts.pop(0)
            self._size -= chunk.length
            if chunk.path is not None:
                try:
                    chunk.path.unlink()
                except FileNotFoundError:
                    pass
            if not inc.chunks and not inc.live:
                del self._incs[inc.created]
            self._order = None

    def _sampling_order(self) -> list[_Incarnation]:
        # Ordered by first held chunk id, so a buffer rebuilt from the same files (after a
        # flush) orders incarnations, and hence samples, exactly like the original.
        if self._order is None:
            self._order = sorted(self._incs.values(), key=_Incarnation.sort_key)
        return self._order

    def _too_short(self, length: int) -> ValueError:
        return ValueError(
            f"replay holds {self._size} steps, but no stream has {length} consecutive "
            f"steps yet; collect more before training"
        )

    def _gather(
        self, incs: Sequence[_Incarnation], starts: Sequence[int], length: int
    ) -> dict[str, np.ndarray]:
        """Copy the windows ``incs[b]`` steps ``starts[b] .. + length`` into
        ``{key: [B, length, ...]}``."""
        assert self._schema is not None
        batch_size = len(starts)
        out = {
            k: np.empty((batch_size, length, *shape), dtype)
            for k, (shape, dtype) in self._schema.items()
        }
        items = list(out.items())
        for b, (inc, pos) in enumerate(zip(incs, starts)):
            ci = bisect_right(inc.starts, pos) - 1
            off = pos - inc.starts[ci]
            t = 0
            while t < length:
                chunk = inc.chunks[ci]
                n = min(chunk.length - off, length - t)
                data = chunk.data
                for k, arr in items:
                    arr[b, t : t + n] = data[k][off : off + n]
                t += n
                ci += 1
                off = 0
        return out

    # ------------------------------------------------------------------ priority tree

    def _sample_prioritized(
        self, batch_size: int, length: int, alpha: float, beta: float
    ) -> dict[str, np.ndarray]:
        """Draw window starts from the sum tree; adds ``index`` [B, 2] and ``weight`` [B]."""
        self._prioritized = True
        self._sync_tree(length, alpha)
        if self._tree_count <= 0:
            raise self._too_short(length)
        tree = self._tree
        assert tree is not None
        total = tree.total
        leaves = tree.find(self._rng.random(batch_size) * total)
        probs = tree.get(leaves) / total  # P(i)
        w = (self._tree_count * probs) ** -beta
        slots, rows = np.divmod(leaves, self._block)
        chunks = [self._slot_chunk[s] for s in slots.tolist()]
        starts = [c.start + r for c, r in zip(chunks, rows.tolist())]
        incs = [c.inc for c in chunks]
        out = self._gather(incs, starts, length)
        created = np.array([inc.created for inc in incs], np.int64)
        out["index"] = np.stack([created, np.array(starts, np.int64)], 1)
        out["weight"] = (w / w.max()).astype(np.float32)
        return out

    def _leaf_values(self, priority: np.ndarray) -> np.ndarray:
        """Tree leaves p^alpha of the priorities ``priority`` ([K] float64)."""
        return np.power(np.ascontiguousarray(priority, np.float64), self._tree_alpha)

    def _rows_in_tree(self, chunk: _Chunk) -> int:
        """How many leading rows of ``chunk`` are valid starts held in the tree."""
        return max(0, min(chunk.length, chunk.inc.tree_end - chunk.start))

    def _drop_tree(self) -> None:
        """Forget the tree; the next prioritised call builds it again."""
        self._tree = None
        self._slot_chunk = []
        self._stream_slot = {}
        self._moved = []
        self._pending = []
        self._tree_count = 0
        for inc in self._incs.values():
            for chunk in inc.chunks:
                chunk.slot = None

    def _ring_size(self) -> int:
        """R for the completed chunks held now: a function of the held chunk ids only."""
        n = self.capacity // self.chunk_size
        ring = n + 2 + max(8, n // 64)  # full chunks, two in flight, a few short ones
        if self._completed:
            span = self._completed[-1].chunk_id - self._completed[0].chunk_id + 1
            if span > ring:  # many short (flushed) chunks: grow by a quarter, not per chunk
                ring = span + max(8, span // 4)
        return ring

    def _ring_fits(self) -> bool:
        """Whether the held completed chunks have distinct ring blocks."""
        if not self._completed:
            return True
        return self._completed[-1].chunk_id - self._completed[0].chunk_id < self._ring

    def _build_tree(self, length: int, alpha: float) -> None:
        """Fill a new tree with p^alpha of every valid start for windows of ``length``: O(N)."""
        self._drop_tree()
        self._tree_alpha = alpha
        self._tree_length = length
        self._ring = ring = self._ring_size()
        self._block = block = max(
            [self.chunk_size] + [c.length for inc in self._incs.values() for c in inc.chunks]
        )
        self._stream_slot = {s: i for i, s in enumerate(self._streams)}
        partial = max(1, len(self._stream_slot))
        self._slot_chunk = [None] * (ring + partial)
        leaves = np.zeros((ring + partial) * block, np.float64)
        count = 0
        for inc in self._incs.values():
            if not inc.chunks:
                inc.tree_end = inc.next_start
                continue
            inc.tree_end = max(inc.chunks[0].start, inc.end() - length + 1)
            for chunk in inc.chunks:
                slot = self._slot_for(chunk)
                k = self._rows_in_tree(chunk)
                leaves[slot * block : slot * block + k] = self._leaf_values(chunk.priority[:k])
                count += k
        self._tree = SumTree(len(leaves))
        self._tree.set_all(leaves)
        self._tree_count = count

    def _slot_for(self, chunk: _Chunk) -> int:
        """Give ``chunk`` its block (ring block by chunk id, or its stream's block)."""
        if chunk.chunk_id is not None:
            slot = chunk.chunk_id % self._ring
        else:
            stream = chunk.inc.stream
            index = self._stream_slot.get(stream)
            if index is None:
                index = self._stream_slot[stream] = len(self._stream_slot)
            slot = self._ring + index
            if slot >= len(self._slot_chunk):
                self._grow_tree(slot + 1)
        assert self._slot_chunk[slot] is None, "two held chunks share a priority block"
        self._slot_chunk[slot] = chunk
        chunk.slot = slot
        return slot

    def _grow_tree(self, blocks: int) -> None:
        """Make room for ``blocks`` blocks or more; leaves keep their positions: O(N)."""
        assert self._tree is not None
        blocks = max(blocks, 2 * len(self._slot_chunk) - self._ring)
        leaves = np.zeros(blocks * self._block, np.float64)
        leaves[: self._tree.capacity] = self._tree.leaves
        self._tree = SumTree(len(leaves))
        self._tree.set_all(leaves)
        self._slot_chunk.extend([None] * (blocks - len(self._slot_chunk)))

    def _clear_slot(self, chunk: _Chunk) -> None:
        """Zero the leaves of ``chunk`` and free its block: O(chunk_size + log N)."""
        assert self._tree is not None and chunk.slot is not None
        k = self._rows_in_tree(chunk)
        if k:
            self._tree.set(chunk.slot * self._block + np.arange(k), 0.0)
            self._tree_count -= k
        self._slot_chunk[chunk.slot] = None
        chunk.slot = None

    def _move_completed(self) -> None:
        """Move the chunks completed in their stream's block to their ring blocks."""
        moved, self._moved = self._moved, []
        if self._tree is None:
            return
        if not self._ring_fits():
            self._drop_tree()  # too many chunks held for the ring: rebuild at the next call
            return
        tree, block = self._tree, self._block
        for chunk in moved:
            if chunk.slot is None:  # evicted already
                continue
            k = self._rows_in_tree(chunk)
            count = self._tree_count
            self._clear_slot(chunk)
            slot = self._slot_for(chunk)
            if k:
                tree.set(slot * block + np.arange(k), self._leaf_values(chunk.priority[:k]))
            self._tree_count = count

    def _sync_tree(self, length: int, alpha: float) -> None:
        """Bring the tree up to date for windows of ``length`` and exponent ``alpha``: steps
        added since the last call enter as they become valid starts."""
        if (
            self._tree is None
            or alpha != self._tree_alpha
            or length != self._tree_length
            or not self._ring_fits()
        ):
            self._build_tree(length, alpha)
            return
        pending = self._take_pending()
        leaves, values = [pending[0]], [pending[1]]
        block = self._block
        for inc, _ in self._streams.values():  # only live incarnations grow
            if not inc.chunks:
                continue
            lo = max(inc.tree_end, inc.chunks[0].start)
            hi = inc.end() - length + 1
            if hi <= lo:
                continue
            ci = bisect_right(inc.starts, lo) - 1
            while ci < len(inc.chunks) and inc.chunks[ci].start < hi:
                chunk = inc.chunks[ci]
                r0 = max(0, lo - chunk.start)
                r1 = min(chunk.length, hi - chunk.start)
                slot = chunk.slot if chunk.slot is not None else self._slot_for(chunk)
                leaves.append(slot * block + np.arange(r0, r1))
                values.append(chunk.priority[r0:r1])
                ci += 1
            inc.tree_end = hi
            self._tree_count += hi - lo
        leaves_all = np.concatenate(leaves)
        if leaves_all.size:
            assert self._tree is not None
            self._tree.set(leaves_all, self._leaf_values(np.concatenate(values)))

    def _take_pending(self) -> tuple[np.ndarray, np.ndarray]:
        """The held-back leaves ([K] int64) and the current priorities ([K] float64) of the
        rows they hold now. A leaf whose chunk moved or left since is still rewritten with the
        priority of whatever row holds it now (or skipped if none): always the right value."""
        pending, self._pending = self._pending, []
        leaves: list[int] = []
        values: list[float] = []
        block = self._block
        for leaf in pending:
            slot, row = divmod(leaf, block)
            chunk = self._slot_chunk[slot]
            if chunk is not None and row < self._rows_in_tree(chunk):
                leaves.append(leaf)
                values.append(chunk.priority[row])
        return np.array(leaves, np.int64), np.array(values, np.float64)

    def _apply_pending(self) -> None:
        """Write the held-back priority updates into the tree now."""
        leaves, values = self._take_pending()
        if leaves.size:
            assert self._tree is not None
            self._tree.set(leaves, self._leaf_values(values))

    def _load_directory(self) -> set[str]:
        assert self.directory is not None
        entries = []
        for path in self.directory.iterdir():
            name = path.name
            if name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX):
                # An interrupted write: its chunk was never complete.
                try:
                    path.unlink()
                except OSError:
                    pass
                continue
            m = _NAME_RE.match(name)
            if m is None or not path.is_file():
                continue
            cid, uid, stream, seq, length = m.groups()
            entries.append((int(cid), uid, int(stream), int(seq), int(length), path))
        if not entries:
            return set()
        entries.sort(key=lambda e: (e[0], e[5].name))
        self._next_chunk_id = entries[-1][0] + 1
        uids = {e[1] for e in entries}

        # Keep the newest chunks that fit in the capacity; drop the older ones for good.
        keep_from = len(entries)
        total = 0
        while keep_from > 0 and total + entries[keep_from - 1][4] <= self.capacity:
            keep_from -= 1
            total += entries[keep_from][4]
        for entry in entries[:keep_from]:
            entry[5].unlink(missing_ok=True)

        open_incs: dict[tuple[str, int], _Incarnation] = {}
        for cid, uid, stream, seq, length, path in entries[keep_from:]:
            data = self._read_chunk(path, length)
            if data is None:
                continue
            if self._schema is None:
                self._set_schema({k: v[0] for k, v in data.items()})
            elif not self._matches_schema(data):
                warnings.warn(
                    f"replay: skipping chunk {path.name} in {self.directory}: its keys, "
                    f"shapes or dtypes differ from the other chunks",
                    stacklevel=3,
                )
                continue
            inc = open_incs.get((uid, stream))
            if inc is None or not inc.chunks or inc.chunks[-1].seq != seq - 1:
                # A new incarnation, or a gap (a skipped file): windows must not cross it.
                inc = open_incs[(uid, stream)] = self._new_incarnation(uid, stream, False)
            chunk = _Chunk(data, length, inc.next_start, seq, inc)
            chunk.chunk_id = cid
            chunk.path = path
            inc.append(chunk)
            inc.next_start += length
            inc.next_seq = seq + 1
            self._completed.append(chunk)
            self._size += length
        return uids

    def _read_chunk(self, path: Path, length: int) -> dict[str, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
            if not data:
                raise ValueError("no arrays in file")
            for key, arr in data.items():
                if arr.ndim == 0 or arr.shape[0] != length:
                    raise ValueError(
                        f"array {key!r} has shape {arr.shape}, the name says {length} steps"
                    )
        except Exception as e:  # any unreadable file is set aside, never fatal
            self._set_aside(path, f"{type(e).__name__}: {e}")
            return None
        return data

    def _set_aside(self, path: Path, reason: str) -> None:
        """Move the unreadable chunk file ``path`` into ``<directory>/damaged/`` (one warning)."""
        assert self.directory is not None
        damaged = self.directory / _DAMAGED_DIR
        try:
            damaged.mkdir(exist_ok=True)
            target = damaged / path.name
            n = 0
            while target.exists():  # never overwrite what an earlier reload set aside
                n += 1
                target = damaged / f"{path.name}.{n}"
            os.replace(path, target)
        except OSError as e:
            warnings.warn(
                f"replay: unreadable chunk {path.name} in {self.directory} ({reason}) could "
                f"not be moved into {damaged} ({type(e).__name__}: {e}); skipped, left in place",
                stacklevel=5,
            )
            return
        warnings.warn(
            f"replay: unreadable chunk {path.name} in {self.directory} ({reason}); "
            f"moved to {target}",
            stacklevel=5,
        )

    def _matches_schema(self, data: dict[str, np.ndarray]) -> bool:
        assert self._schema is not None
        if data.keys() != self._key_set:
            return False
        return all(
            arr.shape[1:] == self._schema[k][0] and arr.dtype == self._schema[k][1]
            for k, arr in data.items()
        )


def random_replay(
    env: Any, steps: int, rng: np.random.Generator | int = 0, *, capacity: int = 10_000
) -> ReplayBuffer:
    """An in-memory buffer of ``steps`` uniformly random actions on ``env`` (reset with seed 0,
    then again as each episode ends): data for tests, profiling and offline checks."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    rb = ReplayBuffer(capacity)
    obs = env.reset(seed=0)
    for _ in range(steps):
        action = env.act_space.sample(rng)
        rb.add({**obs, "action": action})
        obs = env.reset() if obs["is_last"] else env.step(action)
    return rb
