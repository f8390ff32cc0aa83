"""Config values are range-checked where a config is resolved: bad input through the real CLI is
one line, exit code 2, and leaves what is on disk unchanged. Every preset of every agent passes."""

import json
import os
import time
from pathlib import Path

import pytest

from worldmodels import __version__
from worldmodels.agents import AGENTS, build_config
from worldmodels.cli import main
from worldmodels.config import field_rules, parse_rule, validate
from worldmodels.errors import UserError
from worldmodels.train.run import new_run

DEBUG = ["--preset", "debug", "--no-progress"]


def _train(agent: str, run: Path) -> list[str]:
    return ["train", agent, "--env", "toy:target", "--steps", "20", "--run-dir", str(run)]


def _bad(argv: list[str], capsys, match: str) -> str:
    """Run the CLI; it must exit 2 with one error line containing ``match``."""
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


def _state(path: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file under ``path`` (or of ``path`` itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def _new_run_cmd(run: Path, *args: str) -> list[str]:
    return [*_train("dreamerv3", run), *DEBUG, *args]


# Out-of-range values on the command line: refused before the run directory is created.


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "-5"], "run.steps must be >= 1, got -5; fix: --steps 30000"),
        (["--set", "run.train_ratio=-1"], "run.train_ratio must be > 0, got -1.0; fix: --set"),
        (["--set", "run.eval_every=-1"], "run.eval_every must be >= 0, got -1; fix: --set"),
        (["--set", "run.num_envs=0"], "run.num_envs must be >= 1, got 0"),
        (["--set", "run.threads=-2"], "run.threads must be >= 0, got -2"),
        (["--set", "optim.model_lr=nan"], "optim.model_lr must be a finite number, got nan"),
        (["--set", "optim.actor_lr=0"], "optim.actor_lr must be > 0, got 0.0"),
        (["--set", "model.free_bits=inf"], "model.free_bits must be a finite number, got inf"),
        (["--set", "model.deter=0"], "model.deter must be >= 1, got 0; fix: --set model.deter="),
        (["--set", "model.unimix=1.5"], "model.unimix must be in [0, 1], got 1.5"),
        (["--set", "behavior.gamma=0"], "behavior.gamma must be in (0, 1], got 0.0"),
        (["--set", "behavior.gamma=1.01"], "behavior.gamma must be in (0, 1], got 1.01"),
        (["--set", "behavior.max_std=0.05"], "behavior.max_std must be > 0 and >= behavior"),
        (["--set", "model.norm=batch"], "choose one of rms, layer, none"),
        (["--seed", "-1"], "--seed must be an int in [0, 2147483647], got -1; fix: --seed 0"),
        (["--seed", str(2**31)], "--seed must be an int in [0, 2147483647]"),
    ],
)
def test_out_of_range_value_on_the_command_line(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    _bad(_new_run_cmd(run, *args), capsys, message)
    assert not run.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "agent, key, value, message",
    [
        ("planet", "model.units", "0", "model.units must be >= 1, got 0"),
        ("planet", "planner.top_k", "64", "planner.top_k must be >= 1 and <= planner.candidates"),
        ("planet", "planner.discount", "-0.5", "planner.discount must be in (0, 1], got -0.5"),
        ("tdmpc2", "model.latent_dim", "0", "model.latent_dim must be >= 1"),
        ("tdmpc2", "model.latent_dim", "20", "a multiple of model.simnorm_dim (8), got 20"),
        ("tdmpc2", "plan.num_elites", "64", "plan.num_elites must be >= 1 and <= plan.num_samples"),
        ("tdmpc2", "loss.tau", "2", "loss.tau must be in [0, 1], got 2.0"),
        ("tdmpc2", "model.vmax", "-20", "model.vmax must be > model.vmin (-10.0), got -20.0"),
        ("muzero", "model.latent", "0", "model.latent must be >= 1, got 0"),
        ("muzero", "search.num_simulations", "0", "search.num_simulations must be >= 1"),
        ("muzero", "train.reanalyse_ratio", "1.5", "train.reanalyse_ratio must be in [0, 1]"),
        ("muzero", "search.temperatures", "1,-1,0", "search.temperatures[1] must be >= 0, got -1"),
        ("muzero", "optim.lr", "-0.001", "optim.lr must be > 0, got -0.001; fix: --set optim.lr="),
    ],
)
def test_out_of_range_value_of_each_agent(tmp_path, capsys, agent, key, value, message):
    run = tmp_path / "run"
    _bad([*_train(agent, run), *DEBUG, "--set", f"{key}={value}"], capsys, message)
    assert not run.exists()


def test_suggested_fix_is_in_range(tmp_path, capsys):
    """The fix names a value that passes: the default, else the bound nearest the bad value."""
    err = _bad(
        [*_train("planet", tmp_path / "r"), *DEBUG, "--set", "planner.top_k=50"], capsys, "top_k"
    )
    assert err.endswith("fix: --set planner.top_k=32"), err
    validate(build_config("planet", ["debug"], {"planner.top_k": 32})[0])
    err = _bad([*_new_run_cmd(tmp_path / "r"), "--set", "model.deter=0"], capsys, "deter")
    assert err.endswith("fix: --set model.deter=512"), err  # the agent's default


# --run-dir that cannot hold a new run: refused before anything is written.


def test_run_dir_is_an_existing_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    before = _state(target)
    _bad(_new_run_cmd(target), capsys, f"{target} is a file; fix: choose a new or empty --run-dir")
    assert _state(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_run_dir_below_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    before = _state(target)
    _bad(_new_run_cmd(target / "run"), capsys, "fix: choose another --run-dir")
    assert _state(target) == before


def test_run_dir_is_a_non_empty_directory_without_a_run(tmp_path, capsys):
    target = tmp_path / "mine"
    (target / "sub").mkdir(parents=True)
    (target / "data.csv").write_text("a,b\n1,2\n")
    (target / "sub" / "x.bin").write_bytes(b"\x00\x01")
    before = _state(target)
    _bad(_new_run_cmd(target), capsys, "is a directory that holds no run; fix: choose a new")
    assert _state(target) == before
    assert sorted(p.name for p in target.iterdir()) == ["data.csv", "sub"]


def test_run_dir_that_holds_a_run_says_resume(tmp_path, capsys):
    run = tmp_path / "run"
    new_run("dreamerv3", "toy:target", presets=["debug"], run_dir=run)
    before = _state(run)
    _bad(_new_run_cmd(run), capsys, "already holds a run; fix: resume it")
    assert _state(run) == before


# A run's config.json read back (eval, --resume): unknown keys, bad values, bad seed.


def _written_run(tmp_path: Path, edit) -> Path:
    """A run directory (config.json only, as new_run writes it) whose config.json ``edit``
    changes; its mtime is set in the past so that a rewrite would show."""
    run = tmp_path / "run"
    new_run("dreamerv3", "toy:target", presets=["debug"], run_dir=run)
    path = run / "config.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    os.utime(path, ns=(time.time_ns() - 10**10, time.time_ns() - 10**10))
    return run


def _refused_everywhere(run: Path, capsys, match: str) -> None:
    """eval and train --resume both refuse the run in one line and change nothing in it."""
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "latest.json").write_text("{}")  # --resume reads config.json first
    before = _state(run)
    for argv in (["eval", str(run)], ["train", "--resume", str(run), "--no-progress"]):
        _bad(argv, capsys, match)
        assert {k: v for k, v in _state(run).items() if not k.endswith(".lock")} == before


@pytest.mark.parametrize("version", ["9.9.9", None])
def test_config_json_with_keys_from_another_version(tmp_path, capsys, version):
    def edit(data):
        if version is None:
            del data["version"]
        else:
            data["version"] = version
        data["config"]["model"]["new_knob"] = 3
        data["config"]["future"] = {"a": 1, "b": {"c": 2}}

    run = _written_run(tmp_path, edit)
    by = "worldmodels 9.9.9" if version else "an unknown version of worldmodels"
    _refused_everywhere(
        run,
        capsys,
        f"config.json in {run} was written by {by} and has keys this version "
        f"({__version__}) does not know: model.new_knob, future.a, future.b.c; fix: use that "
        "version, or start a new run",
    )


def test_config_json_with_a_misspelt_key_of_this_version(tmp_path, capsys):
    def edit(data):
        data["config"]["run"]["stepz"] = data["config"]["run"].pop("steps")

    run = _written_run(tmp_path, edit)
    _refused_everywhere(run, capsys, "does not know: run.stepz (did you mean run.steps?)")


def test_config_json_with_an_out_of_range_value(tmp_path, capsys):
    def edit(data):
        data["config"]["run"]["steps"] = -5

    run = _written_run(tmp_path, edit)
    _refused_everywhere(
        run,
        capsys,
        f"{run / 'config.json'}: run.steps must be >= 1, got -5; fix: set run.steps to 30000 in "
        "that file, or start a new run",
    )


def test_config_json_with_nan(tmp_path, capsys):
    def edit(data):
        data["config"]["optim"]["critic_lr"] = float("nan")

    run = _written_run(tmp_path, edit)
    _refused_everywhere(run, capsys, "optim.critic_lr must be a finite number, got nan")


@pytest.mark.parametrize("seed", [-1, "abc", 1.5])
def test_config_json_with_a_bad_seed(tmp_path, capsys, seed):
    def edit(data):
        data["seed"] = seed

    run = _written_run(tmp_path, edit)
    _refused_everywhere(run, capsys, "seed must be an int in [0, 2147483647], got")


def test_config_json_without_keys_that_have_absent_means_still_loads(tmp_path):
    """Keys added later (PlaNetConfig.ABSENT_MEANS) may be missing: they take the value old runs
    were trained with, and the config still validates."""
    from worldmodels.agents.planet import PlaNetConfig
    from worldmodels.train.run import load_run

    run = tmp_path / "run"
    new_run("planet", "gym:Pendulum-v1", presets=["debug"], run_dir=run)
    path = run / "config.json"
    data = json.loads(path.read_text())
    for key in PlaNetConfig.ABSENT_MEANS:
        section, name = key.split(".")
        del data["config"][section][name]
    path.write_text(json.dumps(data))
    info = load_run(run)
    assert info.config.model.img_layers == PlaNetConfig.ABSENT_MEANS["model.img_layers"]
    assert info.config.planner.discount == 1.0


def test_resume_with_an_out_of_range_setting_leaves_config_json(tmp_path, capsys):
    run = _written_run(tmp_path, lambda data: None)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "latest.json").write_text("{}")
    before = _state(run / "config.json")
    for args, match in [
        (["--steps", "-5"], "run.steps must be >= 1, got -5; fix: --steps 30000"),
        (["--set", "run.eval_episodes=0"], "run.eval_episodes must be >= 1, got 0"),
        (["--set", "run.save_every_s=nan"], "run.save_every_s must be a finite number"),
    ]:
        _bad(["train", "--resume", str(run), "--no-progress", *args], capsys, match)
        assert _state(run / "config.json") == before


def test_eval_set_out_of_range_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    new_run("muzero", "toy:target", presets=["debug"], run_dir=run)
    before = _state(run)
    _bad(
        ["eval", str(run), "--set", "search.eval_simulations=-1"],
        capsys,
        "search.eval_simulations must be >= 0, got -1",
    )
    assert _state(run) == before


# The tables themselves: every preset passes, every numeric field has a rule that parses.


def _preset_cases():
    for name, spec in AGENTS.items():
        _, presets, _ = spec.load()
        for preset in presets:
            yield name, preset


@pytest.mark.parametrize("agent, preset", list(_preset_cases()))
@pytest.mark.parametrize("obs", ["vector", "pixels"])
def test_every_preset_of_every_agent_validates(agent, preset, obs):
    cfg, _ = build_config(agent, [preset], {"run.obs": obs})  # build_config validates
    validate(cfg)
    cfg, _ = build_config(agent, [preset, "debug"], {"run.obs": obs})
    validate(cfg)


@pytest.mark.parametrize("agent", list(AGENTS))
def test_every_numeric_field_has_a_rule_that_parses(agent):
    cls, _, _ = AGENTS[agent].load()
    cfg = cls()
    rules = field_rules(cfg)
    assert rules, agent
    missing = [key for key, rule in rules.items() if rule is None]
    assert not missing, f"add these fields to a CHECKS table: {missing}"
    for key, rule in rules.items():
        section = cfg
        for part in key.split(".")[:-1]:
            section = getattr(section, part)
        for clause in parse_rule(rule):
            for _, bound in clause.tests:
                assert not isinstance(bound, str) or hasattr(section, bound), (key, rule)
    validate(cfg)


def test_checks_name_only_fields():
    """A CHECKS entry that names no field would never apply (a typo in a table)."""
    from dataclasses import fields, is_dataclass

    def walk(obj):
        from worldmodels.config import checks_of

        names = {f.name for f in fields(obj)}
        for key in checks_of(type(obj)):
            assert key.split(".")[0] in names, (type(obj).__name__, key)
        for f in fields(obj):
            if is_dataclass(getattr(obj, f.name)):
                walk(getattr(obj, f.name))

    for spec in AGENTS.values():
        walk(spec.load()[0]())


def test_validate_checks_values_set_in_code():
    """Values assigned directly (not through --set) are checked too: type and Literal choice."""
    cfg, _ = build_config("dreamerv3", ["debug"])
    cfg.run.steps = 3.5
    with pytest.raises(UserError, match=r"run.steps must be an int, got 3.5; fix: --steps 30000"):
        validate(cfg)
    cfg.run.steps = 100
    cfg.model.norm = "batch"
    with pytest.raises(UserError, match="model.norm must be one of rms, layer, none"):
        validate(cfg)
    cfg.model.norm = "rms"
    cfg.run.stop_at_return = None  # None where the type allows it
    validate(cfg)


@pytest.mark.parametrize(
    "agent, expect", [("dreamerv3", {"compile": True, "precision": "bf16"}), ("muzero", {})]
)
def test_config_json_with_moved_keys_loads(agent, expect):
    """run.compile and run.precision moved into the agents that honour them: a run that wrote
    them loads with the values at their new place, and an agent without them drops them."""
    from worldmodels.agents import build_config
    from worldmodels.config import load_config, to_dict

    cls = type(build_config(agent)[0])
    config = to_dict(cls())
    for key in expect:
        config.pop(key, None)
    config["run"].update({"compile": True, "precision": "bf16"})
    cfg = load_config(cls, {"config": config, "seed": 0, "version": "0.2.0"}, "run/config.json")
    for key, value in expect.items():
        assert getattr(cfg, key) == value
    assert not hasattr(cfg.run, "compile") and not hasattr(cfg.run, "precision")
