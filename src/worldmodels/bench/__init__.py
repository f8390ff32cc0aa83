"""Benchmark machinery behind the scripts in ``benchmarks/``.

- :mod:`worldmodels.bench.jobs`: run training jobs side by side under a wall-clock budget,
  resume them, evaluate the finished ones and write a summary (``benchmarks/parallel.py`` and
  ``benchmarks/learning.py`` both launch through it);
- :mod:`worldmodels.bench.results_table`: render the result tables of docs/results.md,
  docs/agents/*.md and README.md from ``benchmarks/results.csv``.
"""
