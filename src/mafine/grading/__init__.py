"""Answer extraction, graders and the majority vote."""

from __future__ import annotations

from typing import Protocol

from mafine.grading.string import StringGrader


class Grader(Protocol):
    name: str

    def equivalent(self, gold: str, answer: str | None) -> bool:
        """Whether `answer` means the same as `gold`; no answer is never equivalent."""
        ...

    def settings(self) -> dict[str, str]:
        """What metrics files record about the grader."""
        ...


def get_grader(name: str) -> Grader:
    graders = {"string": StringGrader}
    return graders[name]()
