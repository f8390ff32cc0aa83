"""Run training jobs from a job file side by side under one wall-clock budget, then evaluate them.

    python benchmarks/parallel.py --jobs JOBS.txt --budget SECONDS --out runs/NAME \
        [--max-parallel K] [--resume] [--episodes 10]

The launcher for multi-seed and multi-agent runs (``benchmarks/learning.py`` runs its seeds
through the same code): a job file holds ``NAME: train arguments`` per line, each job trains into
``OUT/NAME``, runs left at the budget are continued by the next call with ``--resume``, and the
finished ones get a final greedy eval; ``OUT/summary.md`` lists them all. The options are
described in ``worldmodels.bench.jobs`` (``--help``), where the code lives.
"""

from worldmodels.bench.jobs import main

if __name__ == "__main__":
    raise SystemExit(main())
