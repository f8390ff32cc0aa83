import json
import pickle

import numpy as np
import pytest
import torch

from worldmodels import checkpoint as ck
from worldmodels.checkpoint import (
    atomic_write_text,
    check_meta,
    flatten_state,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from worldmodels.errors import UserError

META = {"library": "worldmodels", "version": "0.1.0", "agent": "dreamer", "config_hash": "abc"}


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def nested_state():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {
        "w": base,
        "view": base[:, 1],  # non-contiguous view sharing storage with "w"
        "same": base,  # the same tensor twice
        "half": torch.randn(2, 3).to(torch.bfloat16),
        "ints": {0: torch.tensor([1, 2]), 7: {"x": 1}, "mixed": None},
        "tup": (1, 2.5, "s", (True, None)),
        "lst": [torch.zeros(0), np.arange(3, dtype=np.int16), np.float32(1.5)],
        "flags": {"t": True, "f": False, "n": None, "i": 3, "big": 2**100 + 1},
        "nonfinite": [float("inf"), float("-inf"), float("nan")],
        "bigendian": np.arange(4, dtype=">f8"),
        "npbool": np.array([True, False]),
        "scalar0d": np.array(3.0),
        "__tensor__": "a key that looks like a marker",
        "a/b": torch.ones(1),
        "a": {"b": torch.zeros(1)},
        "empty": {},
    }


def test_flatten_roundtrip_nested():
    state = nested_state()
    tensors, skeleton = flatten_state(state)
    json.dumps(skeleton, allow_nan=False)  # strict JSON
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in tensors.values())
    assert_same(state, unflatten_state(tensors, skeleton))


def test_save_load_roundtrip(tmp_path):
    state = nested_state()
    save_checkpoint(tmp_path, state, step=5, meta=META)
    loaded, meta = load_checkpoint(tmp_path)
    assert meta == META
    assert_same(state, loaded)


def test_optimizer_state_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def step(n, o):
        o.zero_grad()
        n(torch.ones(3, 4)).pow(2).sum().backward()
        o.step()

    step(net, opt)
    save_checkpoint(tmp_path, {"net": net.state_dict(), "opt": opt.state_dict()}, step=1, meta=META)
    state, _ = load_checkpoint(tmp_path)
    assert isinstance(next(iter(state["opt"]["state"])), int)

    net2 = torch.nn.Linear(4, 2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.5)
    net2.load_state_dict(state["net"])
    opt2.load_state_dict(state["opt"])
    step(net, opt)
    step(net2, opt2)
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)


def test_numpy_generator_roundtrip(tmp_path):
    rng = np.random.default_rng(123)
    rng.random(10)
    save_checkpoint(
        tmp_path,
        {"np": rng.bit_generator.state, "torch": torch.get_rng_state()},
        step=3,
        meta=META,
    )
    state, _ = load_checkpoint(tmp_path)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = state["np"]
    np.testing.assert_array_equal(rng.random(5), rng2.random(5))
    torch.set_rng_state(state["torch"])


def test_keep_and_latest(tmp_path):
    for s in (10, 20, 30, 40):
        save_checkpoint(tmp_path, {"s": torch.tensor(s)}, step=s, meta=META, keep=2)
    assert list_checkpoints(tmp_path) == [30, 40]
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 40
    assert load_checkpoint(tmp_path)[0]["s"].item() == 40
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "ckpt-0000000030.json",
        "ckpt-0000000030.safetensors",
        "ckpt-0000000040.json",
        "ckpt-0000000040.safetensors",
        "latest.json",
    ]


def test_run_dir_accepted(tmp_path):
    save_checkpoint(tmp_path / "checkpoints", {"x": 1}, step=0, meta=META)
    assert load_checkpoint(tmp_path)[0] == {"x": 1}


def test_crash_before_latest_loads_previous(tmp_path):
    save_checkpoint(tmp_path, {"s": torch.tensor(1)}, step=1, meta=META)
    # A crash after writing the next checkpoint's files but before latest.json, with temp
    # files of the interrupted writes left behind.
    (tmp_path / ".ckpt-0000000002.safetensors.abc.tmp").write_bytes(b"half")
    (tmp_path / ".latest.json.xyz.tmp").write_text("{")
    other = tmp_path / "other"
    save_checkpoint(other, {"s": torch.tensor(2)}, step=2, meta=META)
    for suffix in (".json", ".safetensors"):
        name = f"ckpt-0000000002{suffix}"
        (tmp_path / name).write_bytes((other / name).read_bytes())
    (tmp_path / "ckpt-0000000003.safetensors").write_bytes(b"partial")
    assert load_checkpoint(tmp_path)[0]["s"].item() == 1
    # The next save cleans up the leftovers.
    save_checkpoint(tmp_path, {"s": torch.tensor(2)}, step=2, meta=META)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert list_checkpoints(tmp_path) == [1, 2]
    assert not (tmp_path / "ckpt-0000000003.safetensors").exists()


def test_rewrite_at_the_same_step_survives_a_crash_between_its_renames(tmp_path, monkeypatch):
    # A stage that trains without stepping the env (CMA-ES generations) saves step N again and
    # again; a kill after the new tensors are renamed but before the sidecar is must leave the
    # previous pair loadable, not new tensors beside a sidecar holding the old sha256.
    save_checkpoint(tmp_path, {"g": torch.tensor(1)}, step=5, meta=META)
    save_checkpoint(tmp_path, {"g": torch.tensor(2)}, step=5, meta=META)
    assert load_checkpoint(tmp_path)[0]["g"].item() == 2
    assert len(list(tmp_path.glob("ckpt-0000000005*.safetensors"))) == 1

    real = ck.atomic_write_text

    def killed(path, text):
        if str(path).endswith("ckpt-0000000005.json"):
            raise KeyboardInterrupt  # the process dies before the sidecar's rename
        real(path, text)

    monkeypatch.setattr(ck, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"g": torch.tensor(3)}, step=5, meta=META)
    monkeypatch.setattr(ck, "atomic_write_text", real)
    assert load_checkpoint(tmp_path)[0]["g"].item() == 2
    save_checkpoint(tmp_path, {"g": torch.tensor(4)}, step=5, meta=META)
    assert load_checkpoint(tmp_path)[0]["g"].item() == 4
    assert len(list(tmp_path.glob("ckpt-0000000005*.safetensors"))) == 1
    assert list_checkpoints(tmp_path) == [5]


def test_sidecar_naming_a_tensors_file_of_another_step_is_corrupt(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.randn(3)}, step=1, meta=META)
    side = tmp_path / "ckpt-0000000001.json"
    d = json.loads(side.read_text())
    d["tensors"]["file"] = "../elsewhere.safetensors"
    side.write_text(json.dumps(d))
    with pytest.raises(UserError, match="corrupt.*names tensors file") as e:
        load_checkpoint(tmp_path)
    _one_line(e)


def test_missing_dir(tmp_path):
    with pytest.raises(UserError, match="no checkpoint in .*checkpoints/latest.json"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(UserError, match="no checkpoint in"):
        load_checkpoint(tmp_path)


def _one_line(e):
    assert "\n" not in str(e.value)


def test_truncated_safetensors(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.randn(64)}, step=1, meta=META)
    f = tmp_path / "ckpt-0000000001.safetensors"
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(UserError, match="corrupt.*fix: delete it") as e:
        load_checkpoint(tmp_path)
    _one_line(e)


def test_broken_header_without_checksum(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.randn(64)}, step=1, meta=META)
    side = tmp_path / "ckpt-0000000001.json"
    d = json.loads(side.read_text())
    del d["tensors"]["sha256"]
    side.write_text(json.dumps(d))
    f = tmp_path / "ckpt-0000000001.safetensors"
    f.write_bytes(b"\xff" * 8 + f.read_bytes()[8:])
    with pytest.raises(UserError, match="corrupt") as e:
        load_checkpoint(tmp_path)
    _one_line(e)


def test_garbled_json(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.randn(3)}, step=1, meta=META)
    (tmp_path / "ckpt-0000000001.json").write_text('{"format": 1, "ske')
    with pytest.raises(UserError, match="ckpt-0000000001.json is corrupt") as e:
        load_checkpoint(tmp_path)
    _one_line(e)
    (tmp_path / "latest.json").write_bytes(b"\x00\x01garbage")
    with pytest.raises(UserError, match="latest.json is corrupt"):
        load_checkpoint(tmp_path)


def test_missing_tensor(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.randn(3)}, step=1, meta=META)
    side = tmp_path / "ckpt-0000000001.json"
    d = json.loads(side.read_text())
    d["skeleton"]["extra"] = {"__tensor__": "not-there"}
    side.write_text(json.dumps(d))
    with pytest.raises(UserError, match="corrupt.*not-there"):
        load_checkpoint(tmp_path)


def test_deleting_corrupt_falls_back(tmp_path):
    save_checkpoint(tmp_path, {"s": 1}, step=1, meta=META)
    save_checkpoint(tmp_path, {"s": 2}, step=2, meta=META)
    for p in tmp_path.glob("ckpt-0000000002.*"):
        p.unlink()
    with pytest.warns(UserWarning, match="step 1"):
        assert load_checkpoint(tmp_path)[0] == {"s": 1}


def test_never_unpickles(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("unpickling")

    save_checkpoint(tmp_path, nested_state(), step=1, meta=META)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    monkeypatch.setattr(torch, "load", boom)
    load_checkpoint(tmp_path)


def test_atomic_write_text(tmp_path):
    p = tmp_path / "config.json"
    atomic_write_text(p, "a")
    atomic_write_text(p, "b")
    assert p.read_text() == "b"
    assert [x.name for x in tmp_path.iterdir()] == ["config.json"]


def test_atomic_write_failure_keeps_old(tmp_path, monkeypatch):
    p = tmp_path / "x.json"
    atomic_write_text(p, "old")

    def fail(*a):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["x.json"]


def test_check_meta():
    check_meta(META, version="0.1.7", agent="dreamer")
    with pytest.raises(UserError, match="written by worldmodels 0.1.0 for agent dreamer; this is"):
        check_meta(META, version="0.2.0", agent="dreamer")
    with pytest.raises(UserError, match="agent tdmpc2"):
        check_meta(META, version="0.1.0", agent="tdmpc2")
    with pytest.raises(UserError, match="not by worldmodels"):
        check_meta({**META, "library": "other"}, version="0.1.0", agent="dreamer")
    with pytest.raises(UserError, match="config"):
        check_meta(META, version="0.1.0", agent="dreamer", config_hash="zzz")


def test_unsupported_type():
    with pytest.raises(TypeError, match="at 'a'"):
        flatten_state({"a": object()})
