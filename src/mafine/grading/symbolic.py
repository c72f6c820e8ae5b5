"""The symbolic graders, whose expensive checks run in the worker pool: sympy and math_verify.

sympy: the PRM800K grading logic, written for mafine.

A pair is equal when any of these holds, tried in order:
1. the MATH (Hendrycks) normalisations of both are the same string;
2. the PRM800K normalisations are the same string (`\\text{}` unwrapped; `$`, `%`, units,
   `^\\circ` dropped; "or"/"and" as commas; million/billion; LaTeX turned into text; mixed
   numbers `7 3/4` as `7+3/4`; braces and spaces removed; lower case; integers canonical);
3. element by element (tuples and intervals split on commas, the brackets must match): equal
   strings, or, for elements that are not both fractions and agree on being integers, a sympy
   difference `(gold)-(answer)` that simplifies to 0.
It is strict where PRM800K is: an unreduced fraction never equals its reduced form (`2/4` is not
`1/2`) and an integer gold needs an integer answer (`10/2` is not `5`). Expressions with more than
two unknown letters or with risky exponents (`^{`, `^(`, `^12`, `^-12`, `^2^3`) are not handed
to sympy, which is what keeps `9^{9^{9^9}}` cheap. Our changes to PRM800K: decimals are exact
rationals (so `0.421989476476` is not `0.421989476477`), integers are recognised exactly
rather than through floats, and braces are read as LaTeX groups even without a backslash
(PRM800K drops them, reading `x^{2+1}` as `x^2+1`). Before all this, unicode minus, the degree
sign and a final period (`\\frac{1}{2}.`) are normalised. Only step 3's sympy calls run in the
worker pool. A pair it refuses to evaluate, or that sympy cannot parse, is "could not judge"
(`Verdict.judged` False), which `auto` hands to the other symbolic grader.

math_verify: HuggingFace's math-verify library, run in the worker pool.

Both strings are parsed as `\\boxed{...}` with math-verify's default extraction, then
`verify(gold, answer)` (gold first) with its defaults: floats rounded to 6 digits, strict
variables and set/tuple distinction. Our one addition: identical strings are equal even when
math-verify cannot parse them, so the vote never splits two copies of one answer. The library's
own SIGALRM timeouts are off; the pool's limits replace them.
"""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from mafine.grading.base import IDENTICAL, Verdict
from mafine.grading.latex import hendrycks_normalize, latex_to_text
from mafine.grading.pool import PoolGrader
from mafine.grading.registry import package_version

_UNITS = (
    "degree",
    "cm",
    "centimeter",
    "meter",
    "mile",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "foot",
    "feet",
    "inch",
    "yard",
)
_UNIT_PATTERNS = [re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _UNITS]
_TEXT_ONLY = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_DEGREES = re.compile(r"\^ *\\circ")
_THIN_SPACE_COMMA = re.compile(r",\\! *")
_MINUS_SPACE = re.compile(r"- *")
_MIXED_NUMBER = re.compile(r"([0-9]) +([0-9])")
_THOUSANDS_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
_SAFE = re.compile(r"[0-9A-Za-z+\-*/^().!\s]*")
_RISKY_EXPONENTS = (re.compile(r"\^-?[0-9]+\^"), re.compile(r"\^-?[0-9][0-9]+"))
_TUPLE_CHARS = "()[]"


class SympyGrader(PoolGrader):
    name = "sympy"
    task = "sympy"

    def prepare(self, gold: str, answer: str) -> Verdict | Any:
        return prm800k_plan(typography(gold), typography(answer))

    def settings(self) -> dict[str, Any]:
        return {
            **self.base_settings(),
            "logic": "PRM800K: MATH normalisation, then a sympy difference; strict on "
            "integer golds and unreduced fractions; decimals exact",
            "sympy": package_version("sympy"),
        }


class MathVerifyGrader(PoolGrader):
    name = "math_verify"
    task = "math_verify"

    def prepare(self, gold: str, answer: str) -> Verdict | Any:
        if gold.strip() == answer.strip():
            return IDENTICAL
        return [gold, answer]

    def settings(self) -> dict[str, Any]:
        return {
            **self.base_settings(),
            "logic": "math_verify.verify(parse(\\boxed{gold}), parse(\\boxed{answer})), "
            "library defaults (float_rounding=6, strict=True)",
            "math_verify": package_version("math-verify"),
            "latex2sympy2_extended": package_version("latex2sympy2_extended"),
        }


def typography(answer: str) -> str:
    """Our additions to PRM800K: unicode minus, the degree sign, a sentence's final period."""
    answer = answer.replace("−", "-").replace("°", "^\\circ").strip()
    if len(answer) > 1 and answer.endswith("."):
        answer = answer[:-1].rstrip()
    return answer


def prm800k_plan(gold: str, answer: str) -> Verdict | list[list[str]]:
    """A verdict when strings settle it, else the element pairs sympy must check."""
    if gold == answer:
        return IDENTICAL
    if math_normalize(gold) == math_normalize(answer):
        return Verdict(True, "equal after MATH normalisation")
    gold_text, answer_text = prm_normalize(gold), prm_normalize(answer)
    if gold_text == answer_text:
        return Verdict(True, "equal after normalisation")
    if not answer_text:
        return Verdict(False, "answer empty after normalisation")
    gold_items, answer_items = split_tuple(gold_text), split_tuple(answer_text)
    if len(gold_items) > 1 and (gold_text[0] != answer_text[0] or gold_text[-1] != answer_text[-1]):
        return Verdict(False, "different brackets")
    if len(gold_items) != len(answer_items):
        return Verdict(False, f"{len(answer_items)} elements, gold has {len(gold_items)}")
    checks: list[list[str]] = []
    for gold_item, answer_item in zip(gold_items, answer_items, strict=True):
        if gold_item == answer_item:
            continue
        if _is_fraction(gold_item) and _is_fraction(answer_item):
            return Verdict(False, "different fractions (unreduced fractions must match)")
        if is_integer(gold_item) != is_integer(answer_item):
            which = "gold" if is_integer(gold_item) else "answer"
            return Verdict(False, f"only the {which} is an integer (integers must match exactly)")
        refusal = eval_refusal(f"({gold_item})-({answer_item})")
        if refusal is not None:
            return Verdict(False, f"not checked by sympy: {refusal}", judged=False)
        checks.append([gold_item, answer_item])
    if not checks:
        return Verdict(True, "equal element by element")
    return checks


def math_normalize(answer: str) -> str:
    """PRM800K's first, MATH-style comparison: `\\text{...}` unwrapped, then MATH's rules."""
    match = _TEXT_ONLY.search(answer)
    if match is not None:
        answer = match.group("text")
    try:
        return hendrycks_normalize(answer)
    except (ValueError, IndexError):
        return answer


def prm_normalize(expr: str) -> str:
    """PRM800K's answer normalisation (see the module docstring)."""
    match = _TEXT_ONLY.search(expr)
    if match is not None:
        expr = match.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9")
    expr = expr.replace("trillion", "*10^12")
    for pattern in _UNIT_PATTERNS:
        expr = pattern.sub("", expr)
    expr = _DEGREES.sub("", expr)
    if len(expr) > 0 and expr[0] == "{" and expr[-1] == "}":
        expr = expr[1:-1]
    expr = _THIN_SPACE_COMMA.sub("", expr)
    integer = _exact_integer(expr)
    if integer is not None:
        expr = str(integer)
    if "\\" in expr or "{" in expr:  # PRM800K: only "\\"; it then misreads x^{2+1} as x^2+1
        with contextlib.suppress(RecursionError):
            expr = latex_to_text(expr)
    expr = _MINUS_SPACE.sub("-", expr)
    expr = _MIXED_NUMBER.sub(r"\1+\2", expr)
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    integer = _exact_integer(strip_thousands(expr))
    if integer is not None:
        expr = str(integer)
    return expr


def strip_thousands(expr: str) -> str:
    """`1,234,567` to `1234567`, leaving tuple commas (`1,2`) alone."""
    while True:
        stripped = _THOUSANDS_COMMA.sub(r"\1\3\4", expr)
        if stripped == expr:
            return stripped
        expr = stripped


def split_tuple(expr: str) -> list[str]:
    """Elements of a bracketed, comma-separated answer; otherwise the answer itself."""
    expr = strip_thousands(expr)
    if not expr:
        return []
    if (
        len(expr) > 2
        and expr[0] in _TUPLE_CHARS
        and expr[-1] in _TUPLE_CHARS
        and not any(char in expr[1:-1] for char in _TUPLE_CHARS)
    ):
        return [item.strip() for item in expr[1:-1].split(",")]
    return [expr]


def is_integer(text: str) -> bool:
    return _exact_integer(strip_thousands(text)) is not None


def eval_refusal(expr: str) -> str | None:
    """Why sympy must not see `expr` (None when it may)."""
    if not _SAFE.fullmatch(expr):
        return "characters outside the safe set"
    letters = set(expr.replace("sqrt", "").replace("frac", ""))
    if len({char for char in letters if char.isalpha()}) > 2:
        return "more than two unknown letters"
    if "^{" in expr or "^(" in expr:
        return "a compound exponent"
    if any(pattern.search(expr) for pattern in _RISKY_EXPONENTS):
        return "a large or stacked exponent"
    return None


def _is_fraction(text: str) -> bool:
    return bool(_FRACTION.search(text))


def _exact_integer(text: str) -> int | None:
    if not text or len(text) > 400 or "_" in text:
        return None
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    if abs(number.adjusted()) > 400:
        return None
    return int(number)
