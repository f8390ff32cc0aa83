"""The command line end to end: train/eval/list, bad input (one line, exit 2, nothing touched),
SIGTERM saves, SIGKILL + resume finishes with the same counters."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worldmodels.cli import main
from worldmodels.errors import UserError

CLI = [sys.executable, "-m", "worldmodels.cli"]
DEBUG = ["--preset", "debug", "--no-progress"]


def _toy_train(run, steps: int, *extra: str) -> list[str]:
    """Arguments of a debug-size DreamerV3 run on toy:target."""
    return [
        "train",
        "dreamerv3",
        "--env",
        "toy:target",
        "--steps",
        str(steps),
        "--run-dir",
        str(run),
        *DEBUG,
        *extra,
    ]


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _bad(argv, capsys, match):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    code = main(_toy_train(run, 300))
    assert code == 0
    return run


def test_train_writes_run_directory(trained):
    assert (trained / "config.json").exists() and (trained / "checkpoints/latest.json").exists()
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["agent"] == "dreamerv3" and cfg["presets"] == ["dreamerv3", "debug"]
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    for key in ("eval/return_mean", "loss/model", "env_steps_per_s", "updates_per_s", "time"):
        assert key in keys
    assert any(p.suffix == ".npz" for p in (trained / "replay").iterdir())
    # toy:target episodes are 10 steps; the autoreset step between episodes is not one of them
    lengths = [r["train/length"] for r in rows if "train/length" in r]
    assert len(lengths) > 2 and set(lengths) == {10}, lengths


def test_eval_json(trained, capsys):
    assert main(["eval", str(trained), "--episodes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 2 and "return_mean" in out and out["env_steps"] == 300
    assert out["length_mean"] == 10


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "dreamerv3" in out and "gym" in out and "debug" in out


def test_bad_inputs(tmp_path, trained, capsys, monkeypatch):
    before = _snapshot(trained)
    _bad(["train", "dreamerv4", "--env", "toy:target"], capsys, "unknown agent")
    _bad(["train", "dreamerv3", "--env", "gym:CartPol-v1"], capsys, "CartPole-v1")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "minatar", None)  # as if the extra were not installed
        _bad(["train", "dreamerv3", "--env", "minatar:breakout"], capsys, "worldmodels[minatar]")
    _bad(["train", "dreamerv3", "--env", "toy:target", "--set", "run.stepz=3"], capsys, "run.steps")
    _bad(
        ["train", "dreamerv3", "--env", "toy:target", "--set", "run.steps=abc"],
        capsys,
        "not an int",
    )
    _bad(
        ["train", "dreamerv3", "--env", "toy:target", "--set", "run.action_repeat=2"],
        capsys,
        "run.action_repeat",
    )
    _bad(
        ["train", "dreamerv3", "--env", "gym:Pendulum-v1", "--set", "run.action_repeat=-1"],
        capsys,
        "run.action_repeat must be >= 0, got -1",
    )
    _bad(
        ["train", "dreamerv3", "--env", "gym:Pendulum-v1", "--set", "run.env_options=g"],
        capsys,
        "is not key=value",
    )
    _bad(
        ["train", "dreamerv3", "--env", "toy:target", "--set", "run.eval_env_options=bogus=1"],
        capsys,
        "bogus",
    )
    _bad(
        ["train", "dreamerv3", "--env", "toy:image_target"]
        + ["--set", "run.eval_env_options=size=32"],
        capsys,
        "change the observations",
    )
    _bad(["train", "--resume", str(tmp_path)], capsys, "not a run directory")
    _bad(["eval", str(tmp_path)], capsys, "not a run directory")
    _bad(
        ["train", "dreamerv3", "--env", "toy:target", "--run-dir", str(trained)],
        capsys,
        "already holds a run",
    )
    assert _snapshot(trained) == before
    assert not list(tmp_path.iterdir())


def test_corrupt_checkpoint(tmp_path, trained, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    latest = json.loads((run / "checkpoints/latest.json").read_text())
    target = run / "checkpoints" / f"ckpt-{latest['step']:010d}.safetensors"
    target.write_bytes(target.read_bytes()[:100])
    before = _snapshot(run)
    _bad(["eval", str(run)], capsys, "corrupt")
    _bad(["train", "--resume", str(run)], capsys, "corrupt")
    assert _snapshot(run) == before


def _train_proc(run: Path, steps: int, resume: bool = False) -> subprocess.Popen:
    args = (
        ["train", "--resume", str(run)]
        if resume
        else _toy_train(run, steps, "--set", "run.save_every_s=0.5", "--set", "run.eval_every=0")
    )
    if resume:
        args.append("--no-progress")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    start = time.time()
    while not (run / "checkpoints/latest.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - start < timeout
        time.sleep(0.1)


def test_sigkill_then_resume_finishes_same_counters(tmp_path):
    run, steps = tmp_path / "run", 700
    proc = _train_proc(run, steps)
    _wait_for_checkpoint(run, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc = _train_proc(run, steps, resume=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    latest = json.loads((run / "checkpoints/latest.json").read_text())
    assert latest["step"] == steps
    from worldmodels.checkpoint import load_checkpoint

    state, _ = load_checkpoint(run / "checkpoints")
    assert state["counters"]["env_steps"] == steps
    assert state["counters"]["updates"] == pytest.approx((steps - 100) * 1.0, abs=2)


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = _train_proc(run, 100_000)
    _wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "resume" in err.decode()
    from worldmodels.checkpoint import load_checkpoint

    state, _ = load_checkpoint(run / "checkpoints")
    assert state["counters"]["env_steps"] > 0


def test_stop_at_return_ends_early(tmp_path):
    run = tmp_path / "run"
    code = main(
        _toy_train(run, 5000, "--set", "run.eval_every=200", "--set", "run.stop_at_return=-1")
    )
    assert code == 0
    latest = json.loads((run / "checkpoints/latest.json").read_text())
    assert latest["step"] == 200


def test_run_action_repeat_reaches_training_and_eval_envs(tmp_path):
    from worldmodels.train.run import make_envs, new_run

    info = new_run(
        "tdmpc2",
        "gym:Pendulum-v1",
        presets=["debug"],
        overrides={"run.action_repeat": 2},
        run_dir=tmp_path / "r",
    )
    assert info.config.loss.episode_length == 100  # the agent sees 100-step episodes
    train, evaluation = make_envs(info, 1)
    for vec in (train, evaluation):
        assert vec._envs[0].episode_length == 100
        vec.close()


def test_env_options_reach_training_envs_and_eval_options_only_eval_envs(tmp_path):
    from worldmodels.train.run import make_envs, new_run, parse_env_options

    assert parse_env_options(("a=true", "b=3", "c=0.5", "d=x y", "size=96x64", "e=False")) == {
        "a": True,
        "b": 3,
        "c": 0.5,
        "d": "x y",
        "size": (96, 64),
        "e": False,
    }
    assert parse_env_options(("size=32",)) == {"size": (32, 32)}
    words = ("a=yes", "b=off", "c=On", "d=NO", "e=none", "f=null", "g=-2", "h=1e-3")
    assert parse_env_options(words) == {
        "a": True,
        "b": False,
        "c": True,
        "d": False,
        "e": None,
        "f": None,
        "g": -2,
        "h": 0.001,
    }
    for bad, says in (("g=", "has no value"), ("seed=3", "--seed"), ("obs=x", "--obs")):
        with pytest.raises(UserError, match=says):
            parse_env_options((bad,))
    with pytest.raises(UserError, match="run.action_repeat"):
        parse_env_options(("action_repeat=2",))
    info = new_run(
        "tdmpc2",
        "gym:Pendulum-v1",
        presets=["debug"],
        overrides={
            "run.env_options": "max_episode_steps=60",
            "run.eval_env_options": "max_episode_steps=40",
        },
        run_dir=tmp_path / "r",
    )
    train, evaluation = make_envs(info, 1)
    assert train._envs[0].episode_length == 60
    assert evaluation._envs[0].episode_length == 40
    train.close()
    evaluation.close()


def test_resume_extends_a_run_and_records_run_settings(trained, tmp_path, capsys):
    """--resume with --steps / --set run settings: more steps, config.json records them."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert main(["train", "--resume", str(run), "--steps", "320", "--no-progress",
                 "--set", "run.eval_episodes=2"]) == 0  # fmt: skip
    cfg = json.loads((run / "config.json").read_text())["config"]["run"]
    assert cfg["steps"] == 320 and cfg["eval_episodes"] == 2
    latest = json.loads((run / "checkpoints/latest.json").read_text())
    assert latest["step"] == 320


def test_resume_refuses_settings_that_change_the_experiment(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = _snapshot(run)
    err = _bad(["train", "--resume", str(run), "--set", "model.deter=8"], capsys, "model.deter")
    assert "cannot change when resuming" in err
    _bad(["train", "--resume", str(run), "--set", "run.steps=abc"], capsys, "run.steps")
    _bad(["train", "--resume", str(run), "--env", "toy:reach"], capsys, "drop the agent")
    assert _snapshot(run) == before
