"""Majority vote over answers, grouping the answers a grader judges equivalent."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mafine.grading.base import Grader
from mafine.seeds import vote_rng


@dataclass(frozen=True)
class TieBreak:
    """Which debate a vote belongs to: its ties are drawn from the run seed, the method whose
    run holds the debate, the iteration, the split and the problem (`seeds.vote_rng`), so no
    two debates share a draw and every rerun or regrade draws the same."""

    seed: int
    method: str
    iteration: int
    split: str

    def rng(self, problem_id: str, vote: str = "final") -> random.Random:
        """The generator of one problem's vote (`final`, or `round1` for Majority)."""
        return vote_rng(self.seed, self.method, self.iteration, self.split, problem_id, vote)


def group_answers(answers: Sequence[str | None], grader: Grader) -> list[list[int]]:
    """Indices of the answers, grouped by equivalence to each group's first answer.

    No answer (None) joins no group: it is never a vote. Every comparison the grouping can need
    is judged in one batch.
    """
    return group_answers_many([answers], grader)[0]


def group_answers_many(
    answer_lists: Sequence[Sequence[str | None]], grader: Grader
) -> list[list[list[int]]]:
    """`group_answers` for many problems, with one batch of comparisons for all of them."""
    table = _comparisons(answer_lists, grader)
    return [_group(answers, table) for answers in answer_lists]


def majority_vote(
    answers: Sequence[str | None], grader: Grader, rng: random.Random
) -> tuple[str | None, dict[str, int]]:
    """The winning answer (its first spelling) and the vote count of every group.

    Ties are broken by `rng`, which the caller seeds per debate and problem (`TieBreak`), so
    a rerun picks the same winner whatever order the responses arrived in.
    """
    return majority_vote_many([answers], grader, [rng])[0]


def majority_vote_many(
    answer_lists: Sequence[Sequence[str | None]],
    grader: Grader,
    rngs: Sequence[random.Random],
) -> list[tuple[str | None, dict[str, int]]]:
    """`majority_vote` for many problems (one rng each), judged in one batch."""
    if len(rngs) != len(answer_lists):
        raise ValueError("majority_vote_many needs one rng per answer list")
    grouped = group_answers_many(answer_lists, grader)
    return [
        _winner(answers, groups, rng)
        for answers, groups, rng in zip(answer_lists, grouped, rngs, strict=True)
    ]


def _winner(
    answers: Sequence[str | None], groups: list[list[int]], rng: random.Random
) -> tuple[str | None, dict[str, int]]:
    if not groups:
        return None, {}
    votes: dict[str, int] = {}
    for group in groups:
        key = str(answers[group[0]])
        votes[key] = votes.get(key, 0) + len(group)
    top = max(len(group) for group in groups)
    tied = [group for group in groups if len(group) == top]
    winner = tied[0] if len(tied) == 1 else rng.choice(tied)
    return answers[winner[0]], votes


def _group(answers: Sequence[str | None], table: dict[tuple[str, str], bool]) -> list[list[int]]:
    groups: list[list[int]] = []
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for group in groups:
            first = answers[group[0]]
            assert first is not None
            if first == answer or table[(first, answer)]:  # first came earlier: key present
                group.append(index)
                break
        else:
            groups.append([index])
    return groups


def _comparisons(
    answer_lists: Sequence[Sequence[str | None]], grader: Grader
) -> dict[tuple[str, str], bool]:
    """Verdicts for every (earlier, later) pair of distinct answers within each list."""
    pairs: dict[tuple[str, str], None] = {}
    for answers in answer_lists:
        distinct = list(dict.fromkeys(answer for answer in answers if answer is not None))
        for position, first in enumerate(distinct):
            for later in distinct[position + 1 :]:
                pairs[(first, later)] = None
    keys = list(pairs)
    verdicts = [verdict.equal for verdict in grader.equivalent_many(keys)]
    return dict(zip(keys, verdicts, strict=True))
