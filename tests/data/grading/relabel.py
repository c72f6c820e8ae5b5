"""Recompute the grader columns of corpus.tsv from the current code (a maintenance tool).

    python tests/data/grading/relabel.py            # show the verdicts that would change
    python tests/data/grading/relabel.py --write    # and write them
    python tests/data/grading/relabel.py --import my_package.graders --write

Every registered grader has a column; a grader without one (a new grader) gets a new column,
before `note` (columns of graders not registered now are kept as they are). `--import MODULE`
imports a module that registers graders first. `truth` is a human label and is never touched.
Run it only after a deliberate change to a grader, read every changed row, and say why in
docs/grading.md.
"""

from __future__ import annotations

import argparse
import csv
import importlib
from collections.abc import Sequence
from pathlib import Path

from mafine.grading import GradingConfig, extract_answer, get_grader
from mafine.grading.registry import GRADERS

CORPUS = Path(__file__).with_name("corpus.tsv")
LAST_COLUMN = "note"


def read_corpus(path: Path = CORPUS) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def verdicts(rows: list[dict[str, str]], grader_name: str) -> list[tuple[bool, str]]:
    pairs = [(row["gold"], extract_answer(row["response"]).answer) for row in rows]
    with get_grader(GradingConfig(grader=grader_name, timeout_s=30)) as grader:
        return [(verdict.equal, verdict.reason) for verdict in grader.equivalent_many(pairs)]


def relabel(path: Path = CORPUS, *, write: bool = False) -> int:
    """Print every verdict that differs from its column (and write them); how many differ."""
    rows = read_corpus(path)
    changed = 0
    for name in GRADERS.names():
        for row, (equal, reason) in zip(rows, verdicts(rows, name), strict=True):
            label = "y" if equal else "n"
            if row.get(name) != label:
                changed += 1
                print(
                    f"{row['id']:14} {name:12} {row.get(name, '-')} -> {label}  "
                    f"{row['gold']!r} vs {row['response']!r}: {reason}"
                )
                row[name] = label
    print(f"{changed} verdicts changed")
    if write:
        kept = [column for column in rows[0] if column != LAST_COLUMN]
        columns = [*kept, *(n for n in GRADERS.names() if n not in kept), LAST_COLUMN]
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(
                handle, columns, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE
            )
            writer.writeheader()
            writer.writerows(rows)
    return changed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the new verdicts")
    parser.add_argument(
        "--import", dest="modules", action="append", default=[], help="a module registering graders"
    )
    args = parser.parse_args(argv)
    for module in args.modules:
        importlib.import_module(module)
    relabel(write=args.write)


if __name__ == "__main__":
    main()
