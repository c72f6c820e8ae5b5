"""Recompute the grader columns of corpus.tsv from the current code (a maintenance tool).

    python tests/data/grading/relabel.py          # show the rows whose verdicts would change
    python tests/data/grading/relabel.py --write  # and write them

`truth` is a human label and is never touched. Run it only after a deliberate change to a
grader, read every changed row, and say why in docs/grading.md.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from mafine.grading import GRADERS, GradingConfig, extract_answer, get_grader

CORPUS = Path(__file__).with_name("corpus.tsv")


def read_corpus(path: Path = CORPUS) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def verdicts(rows: list[dict[str, str]], grader_name: str) -> list[tuple[bool, str]]:
    pairs = [(row["gold"], extract_answer(row["response"]).answer) for row in rows]
    with get_grader(GradingConfig(grader=grader_name)) as grader:
        return [(verdict.equal, verdict.reason) for verdict in grader.equivalent_many(pairs)]


def main(write: bool) -> None:
    rows = read_corpus()
    changed = 0
    for name in GRADERS:
        for row, (equal, reason) in zip(rows, verdicts(rows, name), strict=True):
            label = "y" if equal else "n"
            if row[name] != label:
                changed += 1
                print(
                    f"{row['id']:14} {name:12} {row[name]} -> {label}  {row['gold']!r} "
                    f"vs {row['response']!r}: {reason}"
                )
                row[name] = label
    print(f"{changed} verdicts changed")
    if write:
        with CORPUS.open("w", newline="") as handle:
            writer = csv.DictWriter(
                handle,
                list(rows[0]),
                delimiter="\t",
                lineterminator="\n",
                quoting=csv.QUOTE_NONE,
            )
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main("--write" in sys.argv[1:])
