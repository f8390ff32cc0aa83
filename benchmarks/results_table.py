"""Render the result tables of docs/results.md and docs/agents/*.md from benchmarks/results.csv.

    python benchmarks/results_table.py           # rewrite the generated blocks
    python benchmarks/results_table.py --check   # exit 1 if a page is out of date

Each page has one block between ``<!-- results:begin -->`` and ``<!-- results:end -->``;
everything outside it is written by hand. The columns of results.csv and what each page gets
are described in ``worldmodels.bench.results_table``, where the code lives.
"""

import sys
from pathlib import Path

from worldmodels.bench.results_table import main

if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parents[1]))
