"""``worldmodels ablate``: axes parse with clear errors; every variant x seed is one job of
worldmodels.bench.jobs; a tiny ablation writes its tables, continues a killed run and retrains
nothing finished."""

import csv
import json
import math

import pytest

from worldmodels.ablate import parse_axes
from worldmodels.cli import main
from worldmodels.errors import UserError


def test_parse_axes_short_names_and_dotted_keys():
    variants = parse_axes(["kl=balanced", "critic_target=online", "model.free_bits=0.5"])
    assert [v.name for v in variants] == [
        "base",
        "kl=balanced",
        "critic_target=online",
        "model.free_bits=0.5",
    ]
    assert variants[2].overrides["behavior.slow_reg"] == 0.0
    assert list(variants[3].overrides) == ["model.free_bits"]


@pytest.mark.parametrize(
    "spec,match",
    [("kl", "name=value"), ("kl=nope", "unknown value"), ("klx=balanced", "unknown axis")],
)
def test_parse_axes_errors(spec, match):
    with pytest.raises(UserError, match=match):
        parse_axes([spec])


def test_each_variant_and_seed_is_one_job_line_of_the_launcher(tmp_path, monkeypatch, capsys):
    """The job lines train each variant x seed with the extra and the variant's overrides; the
    launcher resumes, runs --jobs at once under --budget; the evals make the table, and while a
    run has none there is no table and the exit code is 1."""
    from worldmodels.bench import jobs as launcher
    from worldmodels.cli import _parser, train_overrides

    calls = []

    def fake_run_jobs(jobs, out, **kwargs):
        calls.append((jobs, kwargs))
        out.mkdir(exist_ok=True)
        evals = {
            name: {"final_eval": {"return_mean": float(i)}} for i, (name, _) in enumerate(jobs)
        }
        if kwargs["budget"] < math.inf:  # the last run was stopped at the budget
            evals[jobs[-1][0]] = {"status": "stopped"}
        return evals

    monkeypatch.setattr(launcher, "run_jobs", fake_run_jobs)
    out = tmp_path / "abl"
    argv = ["ablate", "dreamer", "--env", "toy:target", "--preset", "debug", "--steps", "300"]
    argv += ["--axis", "critic_target=online", "--axis", "model.free_bits=0.5", "--seeds", "2"]
    argv += ["--set", "run.prefill=50", "--jobs", "3", "--episodes", "4", "--out", str(out)]
    assert main(argv) == 0
    jobs, kwargs = calls[0]
    assert kwargs == dict(budget=math.inf, episodes=4, max_parallel=3, resume=True, progress=False)
    names = [name for name, _ in jobs]
    assert names == [
        f"{v}-seed{s}"
        for v in ("base", "critic_target_online", "model.free_bits_0.5")
        for s in (0, 1)
    ]
    variants = parse_axes(["critic_target=online", "model.free_bits=0.5"])
    for i, (_, args) in enumerate(jobs):  # each line is a `train` command of its variant
        parsed = _parser().parse_args(["train", *args])
        assert (parsed.agent, parsed.env, parsed.preset) == ("dreamer", "toy:target", ["debug"])
        assert parsed.seed == i % 2
        want = {"run.prefill": 50, **variants[i // 2].overrides}
        assert train_overrides(parsed) == {"run.steps": 300, **{k: str(v) for k, v in want.items()}}
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [(r["variant"], r["returns"]) for r in rows] == [
        ("base", "0.0 1.0"),
        ("critic_target=online", "2.0 3.0"),
        ("model.free_bits=0.5", "4.0 5.0"),
    ]
    assert (
        "| model.free_bits=0.5 | model.free_bits=0.5 | 4.5 |" in (out / "ablation.md").read_text()
    )

    (out / "ablation.csv").unlink()
    capsys.readouterr()
    assert main([*argv, "--budget", "60"]) == 1
    assert calls[1][1]["budget"] == 60
    assert (
        "1 of 6 runs have no final eval: model.free_bits_0.5-seed1 (stopped)"
        in capsys.readouterr().out
    )
    assert not (out / "ablation.csv").exists()


def test_tiny_ablation_continues_a_killed_run_and_skips_finished_ones(tmp_path, capsys):
    out = tmp_path / "abl"
    toy = ["dreamer", "--env", "toy:target", "--preset", "debug", "--set", "run.prefill=20"]
    toy += ["--set", "run.eval_every=1000"]
    killed = ["train", *toy, "--steps", "20", "--run-dir", str(out / "base-seed0"), "--no-progress"]
    assert main(killed) == 0  # the base run as a killed ablation left it: a checkpoint at step 20
    argv = ["ablate", *toy, "--steps", "40", "--axis", "kl=balanced", "--seeds", "1"]
    argv += ["--episodes", "2", "--jobs", "2", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "summary.json").read_text())["results"]
    assert res["base-seed0"]["resumed_from"] == 20 and res["base-seed0"]["steps"] == 40, res
    assert res["kl_balanced-seed0"]["resumed_from"] is None and res["kl_balanced-seed0"]["finished"]
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [r["variant"] for r in rows] == ["base", "kl=balanced"]
    assert "| kl=balanced |" in capsys.readouterr().out  # the table is printed
    stamp = (out / "base-seed0" / "metrics.jsonl").stat().st_mtime_ns
    assert main(argv) == 0  # everything finished: nothing is trained or evaluated again
    res = json.loads((out / "summary.json").read_text())["results"]
    assert {r["status"] for r in res.values()} == {"done earlier"}
    assert (out / "base-seed0" / "metrics.jsonl").stat().st_mtime_ns == stamp
    assert list(csv.DictReader(open(out / "ablation.csv"))) == rows


def test_ablate_bad_axis_is_one_line_exit_2(tmp_path, capsys):
    code = main(["ablate", "dreamer", "--env", "toy:target", "--axis", "kl=wrong"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_ablate_jobs_must_be_positive(tmp_path, capsys):
    code = main(
        ["ablate", "dreamer", "--env", "toy:target", "--axis", "kl=balanced"]
        + ["--jobs", "0", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "--jobs" in capsys.readouterr().err
