"""Learning check from a real run: DreamerV3 at debug size on toy:target (random policy 2.5,
optimum 10) must reach a greedy return of at least 6 (fresh 20-episode eval) within 8,000 env
steps; the run stops once a 10-episode eval (every 1,000 steps) reaches 9, which it did at 4-5k
steps for 6 of 6 seeds tried (0, 2, 4, 6, 7, 9: fresh evals 9.55-9.9; ~2 minutes on one CPU
core). A fixed 4,000-step budget was flaky:
bit-level differences (e.g. from what ran earlier in the process) change the run, and 1 of 9
seeds ended at 5.0. The learning rates are raised for the tiny debug model (as in the debug run
of docs/results.md)."""

import json

from worldmodels.cli import main
from worldmodels.envs.toy import TargetEnv

THRESHOLD = 6.0


def test_dreamerv3_learns_toy_target(tmp_path, capsys):
    assert TargetEnv.random_return == 2.5 and TargetEnv.optimal_return == 10.0
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "dreamerv3",
            "--env",
            "toy:target",
            "--preset",
            "debug",
            "--steps",
            "8000",
            "--seed",
            "0",
            "--run-dir",
            str(run),
            "--no-progress",
            "--set",
            "optim.model_lr=1e-3",
            "--set",
            "optim.actor_lr=1e-4",
            "--set",
            "optim.critic_lr=3e-4",
            "--set",
            "run.eval_every=1000",
            "--set",
            "run.eval_episodes=10",
            "--set",
            "run.stop_at_return=9",
        ]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    print(f"toy:target greedy return {result['return_mean']:.2f} (random 2.5, optimum 10)")
    assert result["return_mean"] >= THRESHOLD, result
