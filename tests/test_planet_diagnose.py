"""worldmodels.diagnostics.planet_model (tools/planet_model_diagnose.py): replay windows stay
inside one episode, its rank correlation is Spearman's, and the diagnosis runs end to end on a
tiny PlaNet run; worldmodels.diagnostics.planet_sensitivity runs at debug size."""

import numpy as np

from worldmodels.diagnostics import planet_model, planet_sensitivity


def test_windows_stay_inside_one_episode():
    mod = planet_model
    is_first = np.zeros(12, dtype=bool)
    is_first[[0, 5]] = True  # episodes [0, 5) and [5, 12)
    starts = mod.valid_starts({"is_first": is_first}, context=2, horizon=2)
    # t - 1 .. t + 2 inside one episode: t = 1, 2 in the first, t = 6 .. 9 in the second
    assert starts.tolist() == [1, 2, 6, 7, 8, 9]


def test_spearman_by_hand():
    mod = planet_model
    a = np.array([0.1, 0.5, 0.3, 0.9])
    assert mod.spearman(a, a**3) == 1.0  # monotone transform keeps ranks
    assert mod.spearman(a, -a) == -1.0
    # ranks a: 0 2 1 3, b: 0 1 2 3 -> d^2 = 0+1+1+0 = 2, rho = 1 - 6*2 / (4*15) = 0.8
    b = np.array([1.0, 2.0, 3.0, 4.0])
    assert abs(mod.spearman(a, b) - 0.8) < 1e-12


def test_runs_on_a_tiny_planet_run(tmp_path, capsys):
    from worldmodels.train.loop import Trainer
    from worldmodels.train.run import new_run

    run = tmp_path / "run"
    overrides = {"run.steps": 120, "run.action_repeat": 2, "run.eval_every": 0}
    info = new_run(
        "planet",
        "gym:Pendulum-v1",
        seed=0,
        presets=["planet", "debug"],
        overrides=overrides,
        run_dir=run,
    )
    Trainer(info, progress=False).train()
    mod = planet_model
    args = [str(run), "--starts", "4", "--sequences", "8", "--cem-starts", "2", "--horizon", "4"]
    assert mod.main(args) == 0
    out = capsys.readouterr().out
    assert "action repeat 2" in out and "rank agreement" in out and "regret median" in out
    assert "action sensitivity" in out


def test_refuses_other_runs_with_one_line(tmp_path, capsys):
    mod = planet_model
    (tmp_path / "config.json").write_text('{"agent": "dreamerv1", "env": "gym:Pendulum-v1"}')
    assert mod.main([str(tmp_path)]) == 2
    assert mod.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


def test_action_sensitivity_of_the_equations_by_hand(capsys):
    """One agent step (repeat 2) from rest at theta = pi, where gravity has no torque: +-2 N m
    change the velocity by +-3 * 2 * 0.05 = +-0.3 in the first sim step, which moves theta to
    pi +- 0.015; the second adds +-0.3 plus gravity 0.75 * sin(pi +- 0.015) = -+0.75 sin(0.015).
    Apart: 1.2 - 1.5 sin(0.015)."""
    mod = planet_model
    sens, dv = mod.true_action_sensitivity(np.array([np.pi]), np.array([0.0]), 1, 2)
    assert abs(dv[0] - (1.2 - 1.5 * np.sin(0.015))) < 1e-9
    assert sens[0] >= 0.0


def test_sensitivity_from_random_runs_at_debug_size(capsys):
    mod = planet_sensitivity
    args = ["--data", "300", "--updates", "2", "--every", "1", "--probes", "4", "--samples", "2"]
    args += ["--eval-episodes", "2"]
    assert mod.main([*args, "--preset", "debug"]) == 0
    out = capsys.readouterr().out
    assert "updates 2: sensitivity median" in out and "equations: sensitivity median" in out
    assert "eval (2 episodes, CEM in eval mode): return" in out
