"""The graders that need no sympy: `string` (the seed's) and `numeric` (exact rationals).

string: exact match after trivial-format normalisation (`normalize`).

numeric: exact rational comparison for DeepMind- and GSM8K-style answers. Numbers are compared
as `fractions.Fraction`, never floats: `-2.4` equals `-12/5` and `\\frac{-12}{5}`, while
`0.421989476476` differs from `0.421989476477`. Comma-separated lists compare in order, element
by element (a list may come in brackets); `True`/`False` compare case-insensitively and never
equal a number. Light formatting is ignored: `$`, `\\$`, `%`, degrees, unit suffixes
(`\\text{ cm}`, `18 dollars`), thousands separators (`1,000`, `1{,}000`, only when the gold is
a single number), unicode minus, `x =`, `a \\times 10^{k}`. Answers that are not numbers
(polynomials, letters) fall back to the string grader's normalised exact match. Pure Python:
hundreds of thousands of pairs/s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from typing import Any

from mafine.grading.base import IDENTICAL, NO_ANSWER, Grader, Pair, Verdict
from mafine.grading.settings import GradingConfig

Value = tuple[Fraction, ...] | bool

_MAX_CHARS = 1000
_SPACING = re.compile(r"\\[,;:! ]|\\left\b|\\right\b|~")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_UNIT_TAIL = re.compile(r"\\(?:text|textrm|mathrm|mbox)\s*\{\s*[A-Za-z][A-Za-z .]*\}\s*$")
_WRAPPED = re.compile(r"^\\(?:text|textrm|mathrm|mbox|textbf|mathbf)\s*\{([^{}]*)\}$")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_ASSIGNMENT = re.compile(r"^[A-Za-z]\s*=\s*")
_UNIT_WORDS = re.compile(r"^(.*?\d\.?)\s*([A-Za-z]{3,}(?:\s+[A-Za-z]{3,})*)$")
_NOT_UNITS = {"sqrt", "times", "cdot", "frac", "dfrac", "inf", "infty", "pi"}
_SCIENTIFIC = re.compile(
    r"([+-]?(?:\d+\.?\d*|\.\d+))\s*(?:\\times|\\cdot|\*|×|·)\s*10\s*\^\s*\{?\s*([+-]?\d{1,4})\s*\}?"
)
_POWER_OF_TEN = re.compile(r"([+-]?)10\s*\^\s*\{?\s*([+-]?\d{1,4})\s*\}?")
_LATEX_FRAC = re.compile(r"([+-]?)\\[dtc]?frac\s*\{([^{}]+)\}\s*\{([^{}]+)\}")
_SHORT_FRAC = re.compile(r"([+-]?)\\[dtc]?frac\s*(\d)\s*(\d)")


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


class StringGrader(Grader):
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


class NumericGrader(Grader):
    name = "numeric"

    def __init__(self, config: GradingConfig | None = None) -> None:
        super().__init__(config)
        self.max_answer_chars = self.config.max_answer_chars

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        return [self._verdict(gold, answer) for gold, answer in pairs]

    def verdict(self, gold: str, answer: str | None) -> Verdict:
        return self._verdict(gold, answer)

    def equivalent(self, gold: str, answer: str | None) -> bool:
        return self._verdict(gold, answer).equal

    def _verdict(self, gold: str, answer: str | None) -> Verdict:
        if answer is None:
            return NO_ANSWER
        if gold == answer:
            return IDENTICAL
        if len(answer) > self.max_answer_chars:
            return Verdict(False, f"answer longer than {self.max_answer_chars} characters")
        gold_value = parse_value(gold, True)
        if gold_value is None:
            if normalize(gold) == normalize(answer):
                return Verdict(True, "not a number; equal as strings")
            return Verdict(False, "not a number; different as strings")
        answer_value = parse_answer(gold, gold_value, answer)
        if answer_value is None:
            return Verdict(False, "answer is not a number")
        if isinstance(gold_value, bool) or isinstance(answer_value, bool):
            if gold_value is answer_value:
                return Verdict(True, "same truth value")
            return Verdict(False, "different truth value or type")
        if len(gold_value) != len(answer_value):
            return Verdict(False, f"{len(answer_value)} numbers, gold has {len(gold_value)}")
        if gold_value == answer_value:
            return Verdict(True, "equal numbers" if len(gold_value) == 1 else "equal lists")
        return Verdict(False, "different numbers")

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "comparison": "exact rationals; ordered lists; True/False",
            "max_answer_chars": self.max_answer_chars,
        }


@lru_cache(maxsize=65536)
def parse_value(text: str, scalar_commas: bool = True) -> Value | None:
    """The numbers (or truth value) an answer states, or None when it is not numeric.

    `scalar_commas`: read `1,000` as one thousand (right when the gold is a single number).
    """
    if len(text) > _MAX_CHARS:
        return None
    text = _clean(text)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if scalar_commas and _THOUSANDS.fullmatch(text):
        return (Fraction(text.replace(",", "")),)
    values = []
    for item in text.split(","):
        value = _parse_number(item.strip())
        if value is None:
            return None
        values.append(value)
    return tuple(values)


def parse_answer(gold: str, gold_value: Value, answer: str) -> Value | None:
    """The answer's value, read the way the gold's value asks (commas, brackets)."""
    is_list = not isinstance(gold_value, bool) and len(gold_value) > 1
    value = parse_value(answer, not is_list)
    if value is None and is_list and _bracketed(answer) and not _bracketed(gold):
        value = parse_value(answer.strip().strip("$").strip()[1:-1], False)
    return value


def _bracketed(text: str) -> bool:
    text = text.strip().strip("$").strip()
    return len(text) > 2 and text[0] in "([" and text[-1] in ")]"


def _clean(text: str) -> str:
    text = text.replace("−", "-").replace("{,}", ",").strip()
    if "\\" in text or "$" in text or "%" in text or "°" in text:
        text = text.strip("$").replace("\\$", "").replace("$", "")
        text = _SPACING.sub("", text)
        text = _DEGREES.sub("", text)
        text = text.replace("\\%", "").replace("%", "")
        stripped = _UNIT_TAIL.sub("", text).strip()
        if stripped:
            text = stripped
        wrapped = _WRAPPED.match(text.strip())
        if wrapped:
            text = wrapped.group(1)
    text = _ASSIGNMENT.sub("", text.strip().rstrip(".").strip())
    if text and text[-1].isalpha():
        units = _UNIT_WORDS.match(text)
        if units and not set(units.group(2).lower().split()) & _NOT_UNITS:
            text = units.group(1).strip()
    return text


def _parse_number(item: str) -> Fraction | None:
    try:
        if _NUMBER.fullmatch(item):
            return Fraction(item)
        if "/" in item:
            numerator, _, denominator = item.partition("/")
            return _ratio(numerator.strip(), denominator.strip(), "")
        frac = _LATEX_FRAC.fullmatch(item) or _SHORT_FRAC.fullmatch(item)
        if frac:
            sign, numerator, denominator = frac.groups()
            return _ratio(numerator.strip(), denominator.strip(), sign)
        scientific = _SCIENTIFIC.fullmatch(item)
        if scientific:
            mantissa, exponent = scientific.groups()
            return Fraction(mantissa) * Fraction(10) ** int(exponent)
        power = _POWER_OF_TEN.fullmatch(item)
        if power:
            sign, exponent = power.groups()
            value = Fraction(10) ** int(exponent)
            return -value if sign == "-" else value
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def _ratio(numerator: str, denominator: str, sign: str) -> Fraction | None:
    if not (_NUMBER.fullmatch(numerator) and _NUMBER.fullmatch(denominator)):
        return None
    value = Fraction(numerator) / Fraction(denominator)
    return -value if sign == "-" else value
