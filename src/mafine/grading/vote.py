"""Majority vote over answers, grouping the answers a grader judges equivalent."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol


class Equivalence(Protocol):
    def equivalent(self, gold: str, answer: str | None) -> bool: ...


def group_answers(answers: Sequence[str | None], grader: Equivalence) -> list[list[int]]:
    """Indices of the answers, grouped by equivalence to each group's first answer.

    No answer (None) joins no group: it is never a vote.
    """
    groups: list[list[int]] = []
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for group in groups:
            if grader.equivalent(answers[group[0]], answer):
                group.append(index)
                break
        else:
            groups.append([index])
    return groups


def majority_vote(
    answers: Sequence[str | None], grader: Equivalence, rng: random.Random
) -> tuple[str | None, dict[str, int]]:
    """The winning answer (its first spelling) and the vote count of every group.

    Ties are broken by `rng`, which the caller seeds from the run seed and the problem, so a
    rerun picks the same winner whatever order the responses arrived in.
    """
    groups = group_answers(answers, grader)
    if not groups:
        return None, {}
    votes = {str(answers[group[0]]): len(group) for group in groups}
    top = max(len(group) for group in groups)
    tied = [group for group in groups if len(group) == top]
    winner = tied[0] if len(tied) == 1 else rng.choice(tied)
    return answers[winner[0]], votes
