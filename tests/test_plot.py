"""worldmodels plot: grouping over seeds, median/min/max per step, the figure, bad input."""

import json
import sys

import numpy as np
import pytest

from worldmodels.cli import main
from worldmodels.errors import UserError
from worldmodels.logging.plot import group_curves, load_curves, plot_runs


def _run(root, name, seed, evals, *, lr=1e-3, stop=None, preset="dreamerv3"):
    run = root / name
    run.mkdir(parents=True)
    config = {"run": {"steps": 100, "stop_at_return": stop}, "optim": {"lr": lr}}
    data = {"agent": "dreamer", "env": "toy:target", "seed": seed, "presets": [preset]}
    (run / "config.json").write_text(json.dumps({**data, "config": config}))
    rows = [{"step": 5, "train/return": 0.5}]
    rows += [{"step": s, "eval/return_mean": v} for s, v in evals]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_seeds_group_and_aggregate_per_step(tmp_path):
    _run(tmp_path, "s0", 0, [(10, 1.0), (20, 4.0)])
    _run(tmp_path, "s1", 1, [(10, 2.0), (20, 6.0)], stop=5.0)  # a resume setting: same group
    _run(tmp_path, "s2", 2, [(10, 3.0)])  # stopped early: absent at step 20
    _run(tmp_path, "other", 0, [(10, 9.0)], lr=3e-4)  # another experiment
    groups = group_curves(load_curves([tmp_path], "eval/return_mean"))
    assert [len(g.curves) for g in groups] == [1, 3]  # sorted directory order: other, s0..s2
    other, seeds = groups
    assert other.label != seeds.label and other.label.startswith("dreamer toy:target [dreamerv3]")
    steps, med, lo, hi = seeds.aggregate()
    assert steps.tolist() == [10, 20]
    np.testing.assert_allclose(med, [2.0, 5.0])  # median of (1, 2, 3), then of (4, 6)
    np.testing.assert_allclose(lo, [1.0, 4.0])
    np.testing.assert_allclose(hi, [3.0, 6.0])
    s = seeds.summary()
    assert s["seeds"] == [0, 1, 2] and s["last_step"] == [20, 20, 10]
    assert s["last"] == {"median": 4.0, "min": 3.0, "max": 6.0}  # last values 4, 6, 3


def test_plot_writes_a_figure_and_prints_the_summary(tmp_path, capsys):
    runs = [_run(tmp_path / "r", f"s{i}", i, [(10, i), (20, 2.0 * i)]) for i in range(2)]
    out = tmp_path / "fig" / "curves.png"
    args = ["plot", *map(str, runs), "--out", str(out), "--target", "1.5"]
    assert main(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "seeds [0, 1]" in text and "median 1.0 [0.0, 2.0]" in text  # last: 0 and 2


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    run = _run(tmp_path, "s0", 0, [(10, 1.0)])
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert main(["plot", str(run), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["plot", str(run), "--metric", "eval/score"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "fix: --metric one of eval/return_mean" in err[2]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no run directory"):
        plot_runs([empty], tmp_path / "a.png")


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    run = _run(tmp_path, "s0", 0, [(10, 1.0)])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(UserError, match=r"pip install 'worldmodels\[plot\]'"):
        plot_runs([run], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_null_values_are_skipped_and_a_run_named_twice_counts_once(tmp_path):
    run = _run(tmp_path / "r", "s0", 0, [(10, 1.0), (20, 3.0)])
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 30, "eval/return_mean": None}) + "\n")  # a NaN, as logged
    _run(tmp_path / "r", "s1", 1, [(10, 5.0), (20, 7.0)])
    (group,) = group_curves(load_curves([tmp_path / "r", run], "eval/return_mean"))
    assert [c.seed for c in group.curves] == [0, 1]
    assert group.curves[0].points == [(10, 1.0), (20, 3.0)]
    np.testing.assert_allclose(group.aggregate()[1], [3.0, 5.0])


def test_a_key_an_older_config_lacks_groups_by_the_value_it_trained_with(tmp_path):
    """PlaNet runs written before model.image_decoder existed trained with the plain squared
    error (PlaNetConfig.ABSENT_MEANS): they group with runs that say "mse", not with "gauss"."""
    for name, decoder in [("a_old", None), ("b_mse", "mse"), ("c_gauss", "gauss")]:
        run = _run(tmp_path, name, 0, [(10, 1.0)], preset="planet")
        data = json.loads((run / "config.json").read_text())
        data["agent"], data["config"] = "planet", {"run": {"steps": 100}}
        if decoder:
            data["config"]["model"] = {"image_decoder": decoder}
        (run / "config.json").write_text(json.dumps(data))
    groups = group_curves(load_curves([tmp_path], "eval/return_mean"))
    assert sorted(sorted(c.run_dir.name for c in g.curves) for g in groups) == [
        ["a_old", "b_mse"],
        ["c_gauss"],
    ]
