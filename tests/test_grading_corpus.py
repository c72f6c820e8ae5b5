"""The labelled corpus: every grader reproduces its own column, and `truth` stays honest.

tests/data/grading/corpus.tsv holds (gold, response) cases from DeepMind arithmetic, MATH and
GSM8K, a human `truth` label, and one expected column per grader. Where a grader's column
differs from `truth` the grader is wrong by design or by limitation: docs/grading.md lists
those rows and why. A deliberate change to a grader is recorded with
`python tests/data/grading/relabel.py --write`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from mafine.grading import Grader, GradingConfig, extract_answer, get_grader
from mafine.grading.registry import GRADERS

CORPUS = Path(__file__).parent / "data" / "grading" / "corpus.tsv"


def read_corpus() -> list[dict[str, str]]:
    with CORPUS.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


ROWS = read_corpus()
GRADER_NAMES = GRADERS.names()


@pytest.fixture(scope="module", params=GRADER_NAMES)
def grader(request: pytest.FixtureRequest) -> Iterator[Grader]:
    with get_grader(GradingConfig(grader=request.param, timeout_s=30)) as grader:
        yield grader


def test_corpus_is_large_and_well_formed() -> None:
    assert len(ROWS) >= 150
    assert len({row["id"] for row in ROWS}) == len(ROWS)
    for row in ROWS:
        assert row["source"] in {"deepmind", "math", "gsm8k", "none"}
        for column in ("truth", *GRADER_NAMES):
            assert row[column] in {"y", "n"}, (row["id"], column)
    sources = {row["source"] for row in ROWS}
    assert {"deepmind", "math", "gsm8k"} <= sources


def test_no_answer_is_never_correct() -> None:
    for row in ROWS:
        if extract_answer(row["response"]).answer is None:
            assert all(row[column] == "n" for column in ("truth", *GRADER_NAMES)), row["id"]


def test_each_grader_passes_its_own_column(grader: Grader) -> None:
    pairs = [(row["gold"], extract_answer(row["response"]).answer) for row in ROWS]
    verdicts = grader.equivalent_many(pairs)
    wrong = [
        f"{row['id']}: expected {row[grader.name]}, got {verdict.equal} ({verdict.reason})"
        for row, verdict in zip(ROWS, verdicts, strict=True)
        if (row[grader.name] == "y") != verdict.equal
    ]
    assert not wrong, "\n".join(wrong)
    for row, verdict in zip(ROWS, verdicts, strict=True):
        assert verdict.reason, row["id"]
        assert not verdict.reason.startswith(("timeout", "worker crashed")), row["id"]


def test_one_by_one_equals_the_batch(grader: Grader) -> None:
    rows = ROWS[::7]
    batch = grader.equivalent_many(
        [(row["gold"], extract_answer(row["response"]).answer) for row in rows]
    )
    single = [
        grader.equivalent(row["gold"], extract_answer(row["response"]).answer) for row in rows
    ]
    assert [verdict.equal for verdict in batch] == single


def test_graders_are_right_where_they_claim_to_be() -> None:
    """Each grader's promises, checked against the human labels of its home data."""

    def agreement(name: str, source: str) -> float:
        rows = [row for row in ROWS if row["source"] == source]
        return sum(row[name] == row["truth"] for row in rows) / len(rows)

    assert agreement("numeric", "deepmind") >= 0.9
    assert agreement("numeric", "gsm8k") >= 0.9
    assert agreement("sympy", "math") >= 0.85
    assert agreement("auto", "deepmind") >= 0.95
    numeric_misses = [
        row["id"]
        for row in ROWS
        if row["source"] == "deepmind" and row["numeric"] == "y" and row["truth"] == "n"
    ]
    assert not numeric_misses  # the exact grader never accepts a wrong DeepMind answer
