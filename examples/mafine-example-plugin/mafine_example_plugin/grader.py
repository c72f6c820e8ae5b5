"""`within`: answers equal to the gold number within `grading.options.within.tolerance`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from mafine.grading.base import NO_ANSWER, Grader, Pair, Verdict
from mafine.schema import Strict


class WithinOptions(Strict):
    tolerance: float = Field(0.0, ge=0.0, description="largest difference still equal")


class WithinGrader(Grader):
    name = "within"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.tolerance = self.config.grader_options(self.name).tolerance

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        return [self._verdict(gold, answer) for gold, answer in pairs]

    def _verdict(self, gold: str, answer: str | None) -> Verdict:
        if answer is None:
            return NO_ANSWER
        try:
            difference = abs(float(gold) - float(answer))
        except ValueError:
            return Verdict(False, "not a number", judged=False)
        return Verdict(difference <= self.tolerance, f"differs by {difference:g}")

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "tolerance": self.tolerance}
