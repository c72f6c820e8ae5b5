"""Answer extraction: the content of the last `\\boxed{...}` or `\\fbox{...}`, brace-matched."""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*")


def extract_boxed(text: str) -> str | None:
    """The last boxed answer in `text`, or None when there is none (never a guess).

    Handles nested braces (`\\boxed{\\frac{1}{2}}`) and the brace-less form `\\boxed 5`.
    An unbalanced last box is skipped in favour of the one before it.
    """
    for match in reversed(list(_BOX.finditer(text))):
        answer = _box_content(text, match.end())
        if answer is not None:
            answer = answer.strip()
            return answer or None
    return None


def _box_content(text: str, start: int) -> str | None:
    if start >= len(text):
        return None
    if text[start] != "{":
        token = re.match(r"[^\s$]+", text[start:])
        return token.group(0) if token else None
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index]
    return None
