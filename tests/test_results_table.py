"""worldmodels.bench.results_table (benchmarks/results_table.py): the committed result tables
(docs/results.md, docs/agents/*.md, README.md's status) are what benchmarks/results.csv renders
to, so the two never drift."""

from pathlib import Path

from worldmodels.bench import results_table as mod

ROOT = Path(__file__).resolve().parents[1]


def test_committed_pages_match_results_csv():
    pages = mod.pages(ROOT)
    assert ROOT / mod.DOC in pages and len(pages) == 2 + len(mod.PAGES)
    for path, block in pages.items():
        doc = path.read_text()
        assert mod.splice(doc, block) == doc, (
            f"{path} is out of date: run python benchmarks/results_table.py"
        )


def test_result_cell_median_and_range():
    cell = mod.result_cell("9.85;9.85;9.65;9.55;9.7;9.9", "met")
    assert cell == (
        "median **9.775** (min 9.55, max 9.9; per seed 9.85 / 9.85 / 9.65 / 9.55 / 9.7 / 9.9); met"
    )
    assert mod.result_cell("-114.0;-112.8;-113.7", "").startswith("median **-113.7** (min -114.0")
    assert mod.result_cell("500.0", "") == "**500.0**"
