"""Answer extraction: the content of the last `\\boxed{...}` or `\\fbox{...}`, brace-matched.

Models that do not box their answer can be read with fallback rules, tried in the order the
config lists them. Every extraction names the rule that fired; no rule firing is no answer
(None), which is never correct and never a vote. Every rule runs in linear time, so a 100 kB
response or thousands of unbalanced boxes cost milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*")
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)
_BARE_TOKEN = re.compile(r"[^\s$]+")

# "The final answer is X", "Final Answer: X", "**Answer:** X", "the answer is: X".
_FINAL = re.compile(
    r"(?:final\s+answer|the\s+answer|\banswer)[\s*]*(?:is|:|=)[\s*:]*",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?:(?<![\w)])[-−])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
_FINAL_LIMIT = 200

RULES = ("boxed", "final_answer", "last_number")


@dataclass(frozen=True, slots=True)
class Extraction:
    """An extracted answer and the rule that produced it ("none" when no rule fired)."""

    answer: str | None
    rule: str


NO_ANSWER = Extraction(None, "none")


def extract_boxed(text: str | None) -> str | None:
    """The last boxed answer in `text`, or None when there is none (never a guess).

    Handles nested braces (`\\boxed{\\frac{1}{2}}`), escaped braces (`\\boxed{\\{1, 2\\}}`),
    `\\fbox`, and the brace-less form `\\boxed 5`. An unbalanced last box is skipped in favour
    of the one before it; an empty box is no answer.
    """
    if not text:
        return None
    starts = [match.end() for match in _BOX.finditer(text)]
    closes: dict[int, int] | None = None
    for start in reversed(starts):
        if start >= len(text):
            continue
        if text[start] == "{":
            if closes is None:
                closes = _matching_braces(text)
            end = closes.get(start)
            if end is None:
                continue
            answer = text[start + 1 : end]
        else:
            token = _BARE_TOKEN.match(text, start)
            if token is None:
                continue
            answer = token.group(0)
        return answer.strip() or None
    return None


def extract_answer(text: str | None, fallbacks: Sequence[str] = ()) -> Extraction:
    """The boxed answer, else the first fallback rule that finds one, else no answer.

    `fallbacks` are rule names from `RULES` (after "boxed"): `final_answer` reads the rest of
    the line after the last "final answer is" / "answer:"; `last_number` takes the last number.
    """
    for rule in fallbacks:
        if rule not in RULES[1:]:
            raise ValueError(f"unknown extraction rule {rule!r}; known: {', '.join(RULES[1:])}")
    if not text:
        return NO_ANSWER
    boxed = extract_boxed(text)
    if boxed is not None:
        return Extraction(boxed, "boxed")
    for rule in fallbacks:
        answer = _final_answer(text) if rule == "final_answer" else _last_number(text)
        if answer is not None:
            return Extraction(answer, rule)
    return NO_ANSWER


def _matching_braces(text: str) -> dict[int, int]:
    """Position of every balanced `{` mapped to its `}`, in one pass (escapes skipped)."""
    closes: dict[int, int] = {}
    stack: list[int] = []
    for match in _BRACE_TOKEN.finditer(text):
        token = match.group(0)
        if token == "{":
            stack.append(match.start())
        elif token == "}" and stack:
            closes[stack.pop()] = match.start()
    return closes


def _final_answer(text: str) -> str | None:
    last = None
    for last in _FINAL.finditer(text):  # noqa: B007 (we want the last match)
        pass
    if last is None:
        return None
    line = text[last.end() : last.end() + _FINAL_LIMIT].split("\n", 1)[0]
    answer = line.strip().strip("*").strip().rstrip(".").strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) > 2 * len(left):
            answer = answer[len(left) : len(answer) - len(right)].strip()
            break
    answer = answer.rstrip(".").strip()
    return answer or None


def _last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 (we want the last match)
        pass
    return None if last is None else last.group(0).replace("−", "-")
