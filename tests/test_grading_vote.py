"""Majority vote: groups by the grader's equivalence, None never votes, seeded ties, batching."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import pytest

from mafine.grading import Grader, GradingConfig, get_grader, majority_vote, majority_vote_many
from mafine.grading.base import Pair, Verdict
from mafine.grading.vote import group_answers


@pytest.fixture(scope="module")
def sympy_grader() -> Iterator[Grader]:
    with get_grader(GradingConfig(grader="sympy", timeout_s=30)) as grader:
        yield grader


def test_equivalent_spellings_vote_together(sympy_grader: Grader) -> None:
    winner, votes = majority_vote(
        [r"\frac{1}{2}", "0.5", "3", r"\dfrac12"], sympy_grader, random.Random(0)
    )
    assert winner == r"\frac{1}{2}"
    assert votes == {r"\frac{1}{2}": 3, "3": 1}


def test_string_grader_keeps_spellings_apart() -> None:
    grader = get_grader(GradingConfig())
    winner, votes = majority_vote([r"\frac{1}{2}", "0.5", "3", "3"], grader, random.Random(0))
    assert winner == "3"
    assert votes == {r"\frac{1}{2}": 1, "0.5": 1, "3": 2}


def test_no_answer_never_votes() -> None:
    grader = get_grader(GradingConfig(grader="numeric"))
    assert majority_vote([None, None, None], grader, random.Random(0)) == (None, {})
    winner, votes = majority_vote([None, None, "4"], grader, random.Random(0))
    assert (winner, votes) == ("4", {"4": 1})


def test_ties_are_seeded() -> None:
    grader = get_grader(GradingConfig(grader="numeric"))
    answers = ["1", "2", "3"]
    winners = {majority_vote(answers, grader, random.Random(seed))[0] for seed in range(30)}
    assert winners == {"1", "2", "3"}
    for seed in range(5):
        first = majority_vote(answers, grader, random.Random(seed))
        assert majority_vote(answers, grader, random.Random(seed)) == first


class CountingGrader:
    """A batch grader that records how it was called."""

    name = "counting"

    def __init__(self, inner: Grader) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.singles = 0

    def equivalent(self, gold: str, answer: str | None) -> bool:
        self.singles += 1
        return self.inner.equivalent(gold, answer)

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        self.batches.append(len(pairs))
        return self.inner.equivalent_many(pairs)


def test_many_problems_are_judged_in_one_batch(sympy_grader: Grader) -> None:
    counting = CountingGrader(sympy_grader)
    lists = [["1", "1.0", "2"], [r"\frac{1}{2}", "0.5", None], ["x+1", "1+x", "x+1"]]
    results = majority_vote_many(lists, counting, [random.Random(i) for i in range(3)])
    assert counting.batches == [3 + 1 + 1] and counting.singles == 0
    assert [winner for winner, _ in results] == ["1", r"\frac{1}{2}", "x+1"]
    assert results[2][1] == {"x+1": 3}


def test_batched_grouping_equals_one_by_one(sympy_grader: Grader) -> None:
    class OneByOne(Grader):
        name = "one_by_one"

        def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
            return [sympy_grader.verdict(gold, answer) for gold, answer in pairs]

    rng = random.Random(7)
    pool = ["1", "1.0", "2", r"\frac{2}{2}", "x", None, "0.5", r"\frac12", "2/4"]
    for _ in range(40):
        answers = [rng.choice(pool) for _ in range(rng.randint(0, 6))]
        assert group_answers(answers, sympy_grader) == group_answers(answers, OneByOne())


def test_mismatched_rngs_are_an_error() -> None:
    with pytest.raises(ValueError, match="one rng per answer list"):
        majority_vote_many([["1"]], get_grader(GradingConfig()), [])


def test_batch_api_works_off_the_main_thread(sympy_grader: Grader) -> None:
    import asyncio

    async def grade() -> list[Verdict]:
        return await sympy_grader.equivalent_many_async([("x^2+2x+1", "(x+1)^2"), ("1", "2")])

    verdicts = asyncio.run(grade())
    assert [verdict.equal for verdict in verdicts] == [True, False]
