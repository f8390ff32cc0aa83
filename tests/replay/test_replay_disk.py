"""On-disk chunks of worldmodels.replay.ReplayBuffer: atomic files, crash, reload, trust."""

import json
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from worldmodels.replay import ReplayBuffer

NAME = re.compile(r"^(\d{9})-([0-9a-f]{8})-(\d+)-(\d{6})-(\d+)\.npz$")


def make_step(counter: int, stream: int = 0, epoch: int = 0) -> dict:
    return {
        "vector": np.full(2, counter, np.float32),
        "image": np.full((4, 4, 3), counter % 256, np.uint8),
        "action": np.array([counter % 3], np.int64),
        "reward": np.float32(1.0),
        "is_first": np.bool_(counter % 9 == 0),
        "is_last": np.bool_(counter % 9 == 8),
        "is_terminal": np.bool_(False),
        "counter": np.int64(counter),
        "stream": np.int64(stream),
        "epoch": np.int64(epoch),  # which buffer instance wrote the step
    }


def fill(rb, counts, start=0, epoch=0):
    done = dict.fromkeys(counts, 0)
    while any(done[s] < counts[s] for s in counts):
        for s in counts:
            if done[s] < counts[s]:
                rb.add(make_step(start + done[s], s, epoch), stream=s)
                done[s] += 1


def chunk_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if NAME.match(p.name))


def assert_windows_consistent(batch):
    assert (np.diff(batch["counter"], axis=1) == 1).all(), batch["counter"]
    for key in ("stream", "epoch"):
        assert (batch[key] == batch[key][:, :1]).all(), key


def test_full_chunks_are_written_atomically_with_sortable_names(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 35, 1: 22})
    files = chunk_files(tmp_path)
    assert len(files) == 3 + 2
    assert not [p for p in tmp_path.iterdir() if p not in files]  # no temp files left
    parsed = [NAME.match(p.name).groups() for p in files]
    assert [int(g[0]) for g in parsed] == list(range(5))  # creation order = name order
    assert len({g[1] for g in parsed}) == 1  # one buffer instance
    for stream in (0, 1):
        seqs = [int(g[3]) for g in parsed if int(g[2]) == stream]
        assert seqs == list(range(len(seqs)))
    with np.load(files[0], allow_pickle=False) as z:
        assert z["image"].dtype == np.uint8 and z["image"].shape == (10, 4, 4, 3)
        np.testing.assert_array_equal(z["counter"], np.arange(10))


def test_crash_without_flush_keeps_exactly_the_completed_chunks(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 95, 1: 47})
    # "crash": no flush, the old object is simply abandoned
    reloaded = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    assert len(reloaded) == 90 + 40
    batch = reloaded.sample(200, 25)
    assert_windows_consistent(batch)
    assert batch["counter"][batch["stream"] == 0].max() == 89
    assert batch["counter"][batch["stream"] == 1].max() == 39


def test_flush_keeps_everything_and_streams_continue(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 95, 1: 47})
    rb.flush()
    assert len(chunk_files(tmp_path)) == 10 + 5
    rb.flush()  # nothing new: no empty chunk files
    assert len(chunk_files(tmp_path)) == 15
    fill(rb, {0: 20}, start=95)  # continues the same incarnation after the short chunk
    windows = rb.sample(300, 30)
    assert_windows_consistent(windows)
    across = (windows["counter"][:, 0] < 95) & (windows["counter"][:, -1] >= 95)
    assert across.any()  # windows span the flushed short chunk and the next one
    rb.flush()
    reloaded = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    assert len(reloaded) == 115 + 47
    batch = reloaded.sample(300, 30)
    assert_windows_consistent(batch)
    assert ((batch["counter"][:, 0] < 95) & (batch["counter"][:, -1] >= 95)).any()


def test_resumed_data_never_glues_onto_old_incarnations(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 40}, epoch=0)
    rb.flush()
    second = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(second, {0: 40}, start=40, epoch=1)  # counters continue: only epoch tells them apart
    assert_windows_consistent(second.sample(500, 12))
    second.flush()
    third = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    assert len(third) == 80
    batch = third.sample(500, 12)
    assert_windows_consistent(batch)
    assert set(np.unique(batch["epoch"])) == {0, 1}
    with pytest.raises(ValueError, match="no stream has 41 consecutive"):
        third.sample(1, 41)


def test_capacity_deletes_oldest_files(tmp_path):
    rb = ReplayBuffer(100, tmp_path, chunk_size=10)
    fill(rb, {0: 300, 1: 155})
    assert len(rb) <= 100
    files = chunk_files(tmp_path)
    ids = [int(NAME.match(p.name).group(1)) for p in files]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # the newest ones survive
    assert ids[0] > 0
    held_on_disk = sum(int(NAME.match(p.name).group(5)) for p in files)
    assert held_on_disk <= 100
    assert_windows_consistent(rb.sample(100, 8))
    # reloading with a smaller capacity drops the oldest chunks beyond it
    small = ReplayBuffer(40, tmp_path, chunk_size=10)
    assert len(small) == 40
    assert len(chunk_files(tmp_path)) == 4
    assert {p.name for p in chunk_files(tmp_path)} <= {p.name for p in files[-4:]}


def test_corrupt_chunk_is_skipped_with_a_warning(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 50})
    files = chunk_files(tmp_path)
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) // 2])  # counters 20..29 are damaged
    with pytest.warns(UserWarning, match="unreadable chunk"):
        reloaded = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    assert len(reloaded) == 40
    assert not files[2].exists()
    first_damaged = files[2].name
    assert (tmp_path / "damaged" / first_damaged).exists()  # set aside, not deleted
    # the gap splits the incarnation: no window jumps from 19 to 30
    batch = reloaded.sample(300, 12)
    assert_windows_consistent(batch)
    with pytest.raises(ValueError):
        reloaded.sample(1, 21)
    # an empty file and a file whose arrays disagree with its name are skipped too
    files = chunk_files(tmp_path)
    files[0].write_bytes(b"")
    m = NAME.match(files[-1].name)
    wrong = files[-1].with_name(f"{int(m.group(1)) + 1:09d}-{m.group(2)}-0-000099-7.npz")
    wrong.write_bytes(files[-1].read_bytes())
    with pytest.warns(UserWarning) as record:
        again = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    assert len(record) == 2
    assert len(again) == 30
    assert sorted(p.name for p in (tmp_path / "damaged").iterdir()) == sorted(
        [first_damaged, files[0].name, wrong.name]
    )


def test_unreadable_chunk_is_moved_into_damaged_with_one_warning(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 30})
    files = chunk_files(tmp_path)
    broken = b"not a zip file at all"
    files[1].write_bytes(broken)
    # an earlier reload already set aside a file of that name: it is kept as well
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / files[1].name).write_bytes(b"older")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        reloaded = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    target = tmp_path / "damaged" / f"{files[1].name}.1"
    assert len(record) == 1
    message = str(record[0].message)
    assert files[1].name in message and str(target) in message and "moved to" in message
    assert record[0].filename == __file__  # points at the caller that built the buffer
    assert target.read_bytes() == broken  # the bytes, untouched, for inspection
    assert (tmp_path / "damaged" / files[1].name).read_bytes() == b"older"
    assert not files[1].exists()
    assert len(reloaded) == 20
    # the next reload finds nothing to complain about: damaged/ is not read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ReplayBuffer(10_000, tmp_path, chunk_size=10)) == 20


def test_temp_and_foreign_files_are_ignored(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 25})
    first = chunk_files(tmp_path)[0].name
    tmp = tmp_path / f".{first[:-4]}x.npz.tmp"
    tmp.write_bytes(b"half a chunk")
    (tmp_path / "notes.txt").write_text("hello")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reloaded = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    assert len(reloaded) == 20
    assert not tmp.exists()
    assert (tmp_path / "notes.txt").exists()


def test_files_hold_no_pickles(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 10})
    with np.load(chunk_files(tmp_path)[0], allow_pickle=False) as z:
        for key in z.files:
            assert not z[key].dtype.hasobject
    with pytest.raises(TypeError, match="object"):
        ReplayBuffer(10, tmp_path / "other").add({"x": np.array([object()])})


def test_resume_samples_identically_after_reload(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10, seed=5)
    fill(rb, {1: 63, 0: 58, 2: 30})  # stream 1's first chunk completes first
    rb.sample(3, 7)
    rb.flush()
    state = json.loads(json.dumps(rb.state_dict()))
    expected = [rb.sample(32, 15) for _ in range(3)]
    resumed = ReplayBuffer(10_000, tmp_path, chunk_size=10, seed=99)
    resumed.load_state_dict(state)
    assert resumed.num_added == rb.num_added == 151
    for e in expected:
        got = resumed.sample(32, 15)
        for key in e:
            np.testing.assert_array_equal(e[key], got[key])
    # the chunk counter continues: new files never reuse a name
    before = {p.name for p in chunk_files(tmp_path)}
    fill(resumed, {0: 30}, epoch=1)
    after = {p.name for p in chunk_files(tmp_path)}
    assert before < after and len(after) == len(before) + 3
    ids = sorted(int(NAME.match(n).group(1)) for n in after)
    assert len(set(ids)) == len(ids)


def test_stale_state_dict_does_not_rewind_chunk_counter(tmp_path):
    rb = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    fill(rb, {0: 20})
    old_state = rb.state_dict()
    fill(rb, {0: 30}, start=20)  # written after the checkpoint, then a crash
    resumed = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    resumed.load_state_dict(old_state)
    assert resumed.num_added == 20
    assert len(resumed) == 50
    fill(resumed, {0: 10}, epoch=1)
    assert len(chunk_files(tmp_path)) == 6


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkilled_writer_loses_only_partial_chunks(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from worldmodels.replay import ReplayBuffer
        rb = ReplayBuffer(10_000, {str(tmp_path)!r}, chunk_size=10)
        for i in range(95):
            for s in (0, 1):
                rb.add({{"counter": np.int64(i), "stream": np.int64(s)}}, stream=s)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    reloaded = ReplayBuffer(10_000, tmp_path, chunk_size=10)
    assert len(reloaded) == 2 * 90
    batch = reloaded.sample(100, 30)
    assert (np.diff(batch["counter"], axis=1) == 1).all()
