"""Render the result tables of docs/results.md and docs/agents/*.md from benchmarks/results.csv.

    python benchmarks/results_table.py           # rewrite the generated blocks
    python benchmarks/results_table.py --check   # exit 1 if a page is out of date

Paths are relative to the repository root that :func:`pages` and :func:`main` are given. Each
page has one block between ``<!-- results:begin -->`` and ``<!-- results:end -->``;
everything outside it is written by hand. docs/results.md gets every row (and the ablation
table from benchmarks/ablation_dreamerv3_cartpole_10k.csv), docs/agents/PAGE.md the rows whose
``page`` is PAGE, README.md a short status row for each row with a ``readme_target``. Each row
of results.csv is one measured figure:

- ``table=learning``: agent, env, target, seeds, per_seed (the returns, ``;``-separated; the
  median, min and max are computed from them), result (what else the cell says: met or not,
  spread over episodes), steps, wall (wall time and machine), command (lines separated by
  newlines), commit, note (the anchor of the row's note in docs/results.md); readme_target
  (short target for README's status table; empty = not listed there) and readme_result (its
  result text where there are no per-seed figures, or a remark in parentheses after them).
- ``table=speed``: agent (what was timed), env (setting), result (figure), wall (machine),
  command, commit.

A command in parentheses is a description, not a command line.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from decimal import Decimal
from pathlib import Path

CSV = Path("benchmarks") / "results.csv"
ABLATION = Path("benchmarks") / "ablation_dreamerv3_cartpole_10k.csv"
DOC = Path("docs") / "results.md"
README = Path("README.md")
PAGES = ("dreamer", "planet", "tdmpc2", "muzero", "worldmodels")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
_COMMIT = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")


def _cell(text: str) -> str:
    """A markdown table cell: pipes escaped, newlines as <br>."""
    return text.replace("|", "\\|").replace("\n", "<br>")


def _code(text: str) -> str:
    """Each line of ``text`` as inline code, lines joined by <br>; text in parentheses (a
    description, not a command) stays as it is."""
    if text.startswith("("):
        return text
    return "<br>".join(f"`{line.strip()}`" for line in text.splitlines() if line.strip())


def _env(text: str) -> str:
    """The env id (the first word) as inline code."""
    env, _, rest = text.partition(" ")
    return f"`{env}` {rest}".rstrip()


def _commits(text: str) -> str:
    """Commit hashes in ``text`` as inline code."""
    return _COMMIT.sub(lambda m: f"`{m.group(0)}`", text)


def _median(values: list[Decimal]) -> Decimal:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def result_cell(per_seed: str, extra: str) -> str:
    """``median M (min A, max B; per seed a / b / c)`` from the per-seed figures, then ``extra``."""
    parts = []
    values = [Decimal(v) for v in per_seed.split(";") if v.strip()]
    if len(values) == 1:
        parts.append(f"**{values[0]}**")
    elif values:
        seeds = " / ".join(str(v) for v in values)
        parts.append(
            f"median **{_median(values)}** (min {min(values)}, max {max(values)}; per seed {seeds})"
        )
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return lines


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["table"] not in ("learning", "speed"):
            raise ValueError(f"{csv_path}: unknown table {r['table']!r}")
        if r["page"] not in PAGES:
            raise ValueError(f"{csv_path}: unknown page {r['page']!r}")
    return rows


def _learning(rows: list[dict[str, str]], notes: str) -> list[list[str]]:
    out = []
    for r in rows:
        result = _commits(result_cell(r["per_seed"], r["result"]))
        if r["note"]:
            result += f" ([notes]({notes}#{r['note']}))"
        out.append(
            [
                r["agent"],
                _env(r["env"]),
                r["target"],
                r["seeds"],
                result,
                r["steps"],
                r["wall"],
                _code(r["command"]),
                _commits(r["commit"]),
            ]
        )
    return out


def _speed(rows: list[dict[str, str]]) -> list[list[str]]:
    return [
        [r["agent"], r["env"], r["result"], r["wall"], _code(r["command"]), _commits(r["commit"])]
        for r in rows
    ]


LEARNING = [
    "agent",
    "env",
    "target",
    "seeds",
    "result (greedy eval return)",
    "steps",
    "wall time and machine",
    "command",
    "commit",
]
SPEED = ["what", "setting", "figure", "machine", "command", "commit"]


def render(csv_path: Path, ablation_path: Path) -> str:
    """docs/results.md's generated block (markers excluded) as markdown."""
    rows = _rows(csv_path)
    out = ["### Learning", ""]
    out += _table(LEARNING, _learning([r for r in rows if r["table"] == "learning"], ""))
    out += ["", "### Speed", ""]
    out += _table(SPEED, _speed([r for r in rows if r["table"] == "speed"]))
    with open(ablation_path, newline="") as f:
        ablation = list(csv.DictReader(f))
    out += ["", "### Ablation: DreamerV3 on CartPole-v1 at 10k steps", ""]
    out += _table(
        ["variant", "overrides", "seeds", "median", "min", "max", "per seed"],
        [
            [
                a["variant"],
                _code(a["overrides"]) if a["overrides"] != "-" else "-",
                a["seeds"],
                a["median"],
                a["min"],
                a["max"],
                " / ".join(a["returns"].split()),
            ]
            for a in ablation
        ],
    )
    return "\n".join(out)


def render_page(page: str, csv_path: Path) -> str:
    """docs/agents/PAGE.md's generated block: the rows of ``page``."""
    rows = [r for r in _rows(csv_path) if r["page"] == page]
    learning = [r for r in rows if r["table"] == "learning"]
    speed = [r for r in rows if r["table"] == "speed"]
    out = _table(LEARNING, _learning(learning, "../results.md"))
    if speed:
        out += ["", "Speed:", ""]
        out += _table(SPEED, _speed(speed))
    return "\n".join(out)


def _status(result: str) -> str:
    """The clause of a result cell that says whether the target was met."""
    for clause in re.split(r"[;.]", result):
        clause = clause.strip()
        if clause.startswith(("met", "not met")):
            return clause
    return ""


def render_readme(csv_path: Path) -> str:
    """README.md's status table: one short row per learning result with a ``readme_target``."""
    rows = []
    for r in _rows(csv_path):
        if r["table"] != "learning" or not r["readme_target"]:
            continue
        values = [Decimal(v) for v in r["per_seed"].split(";") if v.strip()]
        if len(values) == 1:
            result = str(values[0])
        elif values:
            result = f"{_median(values)} [{min(values)}, {max(values)}]"
        else:
            result = ""
        extra = r["readme_result"]
        if extra.startswith("("):  # a remark after the computed figure
            result = f"{result} {extra}"
        elif extra:
            result = extra
        target = r["readme_target"]
        status = _status(r["result"])
        link = f"[details](docs/results.md#{r['note']})"
        rows.append(
            [r["agent"], _env(r["env"]), result, r["seeds"].split()[0], target, status, link]
        )
    header = ["agent", "env", "result: median [min, max]", "seeds", "target", "target met", ""]
    return "\n".join(_table(header, rows))


def pages(root: Path) -> dict[Path, str]:
    """Every generated page under the repository ``root`` and its block."""
    csv_path = root / CSV
    out = {root / DOC: render(csv_path, root / ABLATION), root / README: render_readme(csv_path)}
    for page in PAGES:
        out[root / "docs" / "agents" / f"{page}.md"] = render_page(page, csv_path)
    return out


def splice(doc: str, block: str) -> str:
    """``doc`` with the text between the markers replaced by ``block``."""
    if doc.count(BEGIN) != 1 or doc.count(END) != 1:
        raise ValueError(f"needs exactly one {BEGIN} and one {END}")
    head, rest = doc.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(root: Path, argv: list[str] | None = None) -> int:
    """Rewrite the stale generated blocks under ``root`` (``--check``: only report them)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a page is out of date")
    args = p.parse_args(argv)
    stale = []
    for path, block in pages(root).items():
        doc = path.read_text()
        new = splice(doc, block)
        if new == doc:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(new)
            print(f"wrote {path.relative_to(root)}")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(root)) for p in stale)
        print(f"out of date: {names}; run python benchmarks/results_table.py", file=sys.stderr)
        return 1
    return 0
