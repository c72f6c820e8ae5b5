"""The seed's string-match grader: exact match after trivial-format normalisation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from mafine.grading.base import NO_ANSWER, BaseGrader, Pair, Verdict

_TEXT = re.compile(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}")
_EQUAL = Verdict(True, "equal after string normalisation")
_DIFFERENT = Verdict(False, "different after string normalisation")


def normalize(answer: str) -> str:
    """Strip the formatting that never changes an answer's meaning.

    Whitespace, surrounding `$`, a trailing period, `\\text{}` wrappers, a leading `+`, unicode
    minus, and the spelling of plain decimal numbers (`-.30` and `-0.3` are the same string).
    """
    text = _TEXT.sub(r"\1", answer).replace("\\!", "").replace("−", "-")
    text = "".join(text.split()).rstrip(".").strip("$").rstrip(".")
    text = text.removeprefix("+")
    if len(text) > 100 or not text or text[-1] not in "0123456789.":
        return text.lower()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text.lower()
    if not number.is_finite() or abs(number.adjusted()) > 100:
        return text.lower()
    canonical = format(number.normalize(), "f")
    return "0" if canonical in {"-0", "0"} else canonical


class StringGrader(BaseGrader):
    name = "string"

    def equivalent(self, gold: str, answer: str | None) -> bool:
        return answer is not None and normalize(gold) == normalize(answer)

    def verdict(self, gold: str, answer: str | None) -> Verdict:
        if answer is None:
            return NO_ANSWER
        return _EQUAL if normalize(gold) == normalize(answer) else _DIFFERENT

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        return [self.verdict(gold, answer) for gold, answer in pairs]

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "normalization": "whitespace, $, period, \\text, decimals"}
