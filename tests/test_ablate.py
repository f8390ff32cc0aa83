"""``worldmodels ablate``: axes parse with clear errors; a tiny ablation writes its tables and
an interrupted one continues without retraining finished runs."""

import csv

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


def test_tiny_ablation_writes_tables_and_resumes(tmp_path, capsys):
    out = tmp_path / "abl"
    argv = ["ablate", "dreamer", "--env", "toy:target", "--preset", "debug", "--steps", "150"]
    argv += ["--axis", "kl=balanced", "--axis", "latent=gaussian", "--seeds", "1"]
    argv += ["--episodes", "2", "--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [r["variant"] for r in rows] == ["base", "kl=balanced", "latent=gaussian"]
    assert "| latent=gaussian |" in (out / "ablation.md").read_text()
    stamp = (out / "base-seed0" / "metrics.jsonl").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # everything finished: nothing is retrained
    assert (out / "base-seed0" / "metrics.jsonl").stat().st_mtime_ns == stamp
    assert "seed 0: eval return" not in capsys.readouterr().out


def test_ablate_bad_axis_is_one_line_exit_2(tmp_path, capsys):
    code = main(["ablate", "dreamer", "--env", "toy:target", "--axis", "kl=wrong"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_parallel_jobs_give_the_sequential_table(tmp_path):
    """--jobs 2 trains the runs in two processes; each run is the same seeded run as in the
    sequential ablation, so the table is the same."""
    argv = ["ablate", "dreamer", "--env", "toy:target", "--preset", "debug", "--steps", "120"]
    argv += ["--axis", "kl=balanced", "--seeds", "2", "--episodes", "2"]
    assert main([*argv, "--out", str(tmp_path / "seq")]) == 0
    assert main([*argv, "--out", str(tmp_path / "par"), "--jobs", "2"]) == 0
    seq = list(csv.DictReader(open(tmp_path / "seq" / "ablation.csv")))
    par = list(csv.DictReader(open(tmp_path / "par" / "ablation.csv")))
    assert [r["variant"] for r in par] == ["base", "kl=balanced"]
    assert [r["returns"] for r in par] == [r["returns"] for r in seq]


def test_ablate_jobs_must_be_positive(tmp_path, capsys):
    code = main(
        ["ablate", "dreamer", "--env", "toy:target", "--axis", "kl=balanced"]
        + ["--jobs", "0", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "--jobs" in capsys.readouterr().err
