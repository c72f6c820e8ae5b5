"""The seed's string-match grader: exact match after trivial-format normalisation."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_TEXT = re.compile(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}")


def normalize(answer: str) -> str:
    """Strip the formatting that never changes an answer's meaning.

    Whitespace, surrounding `$`, a trailing period, `\\text{}` wrappers, a leading `+`, and
    the spelling of plain decimal numbers (`-.30` and `-0.3` are the same string).
    """
    text = _TEXT.sub(r"\1", answer).replace("\\!", "").replace("−", "-")
    text = "".join(text.split()).strip("$").rstrip(".")
    text = text.removeprefix("+")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text.lower()
    if not number.is_finite():
        return text.lower()
    canonical = format(number.normalize(), "f")
    return "0" if canonical in {"-0", "0"} else canonical


class StringGrader:
    name = "string"

    def equivalent(self, gold: str, answer: str | None) -> bool:
        return answer is not None and normalize(gold) == normalize(answer)

    def settings(self) -> dict[str, str]:
        return {"name": self.name, "normalization": "whitespace, $, period, \\text, decimals"}
