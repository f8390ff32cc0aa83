"""The training modes: offline from a dataset (no env built for training), staged agents, and a
run stopped before its first checkpoint resuming in place."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from worldmodels.agents import AGENTS, AgentSpec
from worldmodels.cli import main
from worldmodels.config import RunConfig
from worldmodels.core import AgentBase, Stage, Step, Traits

DEBUG = ["--preset", "debug", "--no-progress"]


def _files(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "pendulum"
    rc = main(["collect", "--env", "gym:Pendulum-v1", "--episodes", "2", "--envs", "2",
               "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    return out


def test_collect_writes_whole_episodes(dataset):
    schema = json.loads((dataset / "dataset.json").read_text())
    assert schema["format"] == "worldmodels-episodes" and schema["version"] == 1
    assert schema["episodes"] == 2 and schema["steps"] == 2 * 201  # reset + 200 steps each
    from worldmodels.replay.dataset import open_dataset

    rb = open_dataset(dataset).replay()
    assert len(rb) == 402
    batch = rb.sample(8, 50)
    assert batch["vector"].shape == (8, 50, 3) and batch["env_step"].dtype == np.int64


def test_offline_training_builds_no_env(dataset, tmp_path, monkeypatch):
    """With no --env the offline mode trains from the dataset alone: building an env raises."""
    import worldmodels.envs.registry as registry
    import worldmodels.train.run as run

    def refuse(*args, **kwargs):
        raise AssertionError("an env was built in offline training")

    monkeypatch.setattr(registry, "make_env", refuse)
    monkeypatch.setattr(run, "make_env", refuse)
    rc = main(["train", "dreamerv3", "--dataset", str(dataset), "--steps", "6",
               "--set", "run.log_every=2", "--run-dir", str(tmp_path / "r"), *DEBUG])  # fmt: skip
    assert rc == 0
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["updates"] == 6 and "loss/model" in rows[-1]
    assert (tmp_path / "r" / "checkpoints" / "latest.json").exists()
    assert not (tmp_path / "r" / "replay").exists()  # the dataset is read, never copied


def test_offline_training_evaluates_in_the_real_env(dataset, tmp_path, capsys):
    rc = main(["train", "dreamerv3", "--dataset", str(dataset), "--env", "gym:Pendulum-v1",
               "--steps", "4", "--set", "run.eval_every=2", "--run-dir", str(tmp_path / "r"),
               *DEBUG])  # fmt: skip
    assert rc == 0
    assert "final eval" in capsys.readouterr().out


def _refused(argv, capsys) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("damage", ["truncated", "no_schema", "wrong_schema", "mixed_shapes"])
def test_bad_dataset_one_line(dataset, tmp_path, capsys, damage):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    chunk = sorted((bad / "chunks").glob("*.npz"))[0]
    if damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:100])
    elif damage == "no_schema":
        (bad / "dataset.json").unlink()
    elif damage == "wrong_schema":
        schema = json.loads((bad / "dataset.json").read_text())
        schema["keys"]["vector"]["shape"] = [4]
        (bad / "dataset.json").write_text(json.dumps(schema))
    else:
        with np.load(chunk) as f:
            data = {k: f[k] for k in f.files}
        data["vector"] = np.zeros((len(data["vector"]), 5), np.float32)
        np.savez(chunk, **data)
    before = _files(bad)
    run = tmp_path / "run"
    line = _refused(["train", "dreamerv3", "--dataset", str(bad), "--run-dir", str(run), *DEBUG],
                    capsys)  # fmt: skip
    assert "fix:" in line or "collect" in line
    assert _files(bad) == before and not run.exists()


@dataclass
class StagedConfig:
    run: RunConfig = field(default_factory=RunConfig)


class StagedAgent(AgentBase):
    """Collects 3 random episodes, then a fit stage that counts the replay (stoppable once)."""

    name = "staged"
    traits = Traits(stages=(Stage("data", "collect", episodes=3), Stage("count", "fit")))
    stop_once = False

    def __init__(self, config, obs_space, act_space, device="cpu"):
        self.act_space, self.fits = act_space, 0

    def init_state(self, n):
        return None

    def act(self, state, obs, mode):
        return Step(None, np.zeros(len(obs["is_first"]), np.int64), {})

    def update(self, batch):
        raise AssertionError("a staged agent is not updated by the loop")

    def run_stage(self, stage, context):
        if StagedAgent.stop_once:
            StagedAgent.stop_once = False
            os.kill(os.getpid(), signal.SIGTERM)
            assert context.should_stop()
            return {}
        self.fits += 1
        return {"steps": float(len(context.replay)), "fits": float(self.fits)}

    def state_dict(self):
        return {"fits": self.fits}

    def load_state_dict(self, d):
        self.fits = int(d["fits"])


@pytest.fixture
def staged(monkeypatch):
    spec = AgentSpec(
        "staged", "test", "a staged test agent", (), lambda: (StagedConfig, {}, StagedAgent)
    )
    monkeypatch.setitem(AGENTS, "staged", spec)
    return spec


def test_staged_agent_runs_its_stages_and_resumes_a_stopped_stage(staged, tmp_path):
    run = tmp_path / "r"
    StagedAgent.stop_once = True
    argv = ["train", "staged", "--env", "toy:target", "--run-dir", str(run), "--no-progress",
            "--set", "run.eval_episodes=1"]  # fmt: skip
    assert main(argv) == 130  # stopped in the fit stage, after the collect stage
    counters = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert counters["step"] > 0
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    fit = [r for r in rows if "count/steps" in r]
    episodes = [r for r in rows if "train/return" in r]
    assert len(fit) == 1 and fit[0]["count/fits"] == 1.0
    assert len(episodes) == 3 and fit[0]["count/steps"] > 0


def test_resume_before_first_checkpoint_starts_over_in_place(tmp_path, capsys):
    from worldmodels.train.run import new_run

    run = tmp_path / "r"
    new_run("dreamerv3", "toy:target", presets=["debug"], run_dir=run)  # killed before training
    config = (run / "config.json").read_bytes()
    rc = main(["train", "--resume", str(run), "--steps", "64", "--set", "run.eval_every=0",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    assert "starting it over in place" in capsys.readouterr().err
    assert (run / "checkpoints" / "latest.json").exists()
    assert json.loads((run / "config.json").read_bytes())["config"]["run"]["steps"] == 64
    assert json.loads(config)["config"]["run"]["steps"] != 64
