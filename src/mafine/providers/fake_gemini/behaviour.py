"""What the fake models say: answers to questions, critiques and summaries.

Every reply is a pure function of its inputs: the caller seeds `rng` from a hash of the
model and the full request, so the same request always gets the same text.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass

from mafine.providers.fake_gemini.solver import Solution, parse_number, solve_text, wrong_answer
from mafine.providers.settings import FakeSettings

Turn = tuple[str, str]  # (role, text)

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_WEIGHT = re.compile(r"\s*:?\s*given by (\d+) response", re.I)


@dataclass(frozen=True)
class BoxedAnswer:
    text: str
    weight: int


def conversation(body: dict) -> list[Turn]:
    """The request's `contents` as (role, text) pairs; roles default to "user"."""
    turns: list[Turn] = []
    for content in body.get("contents") or []:
        if not isinstance(content, dict):
            continue
        role = str(content.get("role") or "user")
        turns.append((role, part_text(content)))
    return turns


def part_text(content: dict) -> str:
    parts = content.get("parts") or []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def memory_key(turns: list[Turn]) -> str:
    """How a tuned model recognises a conversation it was trained on."""
    return json.dumps([list(turn) for turn in turns], ensure_ascii=False, separators=(",", ":"))


def request_kind(turns: list[Turn]) -> str:
    if len(turns) >= 3:
        return "critic"
    if len(turns) == 1 and "summar" in turns[0][1].lower():
        return "summary"
    return "question"


def respond(turns: list[Turn], settings: FakeSettings, rng: random.Random) -> str:
    """The base model's reply to a conversation."""
    kind = request_kind(turns)
    if kind == "critic":
        return _critique(turns, settings, rng)
    if kind == "summary":
        return _summarise(turns[0][1])
    text = "\n".join(t for role, t in turns if role == "user")
    return _answer_question(text, settings, rng)


def boxed_answers(text: str) -> list[BoxedAnswer]:
    """Every `\\boxed{...}` (brace-matched) in `text`, skipping template placeholders."""
    found: list[BoxedAnswer] = []
    for match in _BOX.finditer(text):
        end = _closing_brace(text, match.end() - 1)
        if end is None:
            continue
        content = text[match.end() : end].strip()
        if not content or "answer" in content.lower() or content.strip(".") == "":
            continue
        weight_match = _WEIGHT.match(text, end + 1)
        weight = int(weight_match.group(1)) if weight_match else 1
        found.append(BoxedAnswer(content, max(weight, 1)))
    return found


def _closing_brace(text: str, start: int) -> int | None:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _answer_question(text: str, settings: FakeSettings, rng: random.Random) -> str:
    solution = solve_text(text)
    wrong = rng.random() < settings.error_rate
    if solution is None:
        guess = str(rng.randint(0, 20))
        return (
            "- I do not recognise a standard arithmetic problem here.\n"
            "- Making the most reasonable estimate I can.\n\n"
            f"\\boxed{{{guess}}}"
        )
    if wrong:
        answer = wrong_answer(solution, rng)
        return _bullets(solution, answer, rng, careless=True)
    return _bullets(solution, solution.answer, rng, careless=False)


def _bullets(solution: Solution, answer: str, rng: random.Random, careless: bool) -> str:
    first = rng.choice(
        [
            f"- The problem asks for {solution.expression}.",
            f"- We need to evaluate {solution.expression}.",
        ]
    )
    second = (
        f"- Working it out quickly, {solution.expression} comes to {answer}."
        if careless
        else f"- Working exactly, {solution.expression} = {answer}."
    )
    third = rng.choice(["", f"\n- So the result is {answer}."])
    return f"{first}\n{second}{third}\n\n\\boxed{{{answer}}}"


def _critique(turns: list[Turn], settings: FakeSettings, rng: random.Random) -> str:
    own_turns = [text for role, text in turns if role == "model"]
    user_turns = [text for role, text in turns if role != "model"]
    own_boxes = boxed_answers(own_turns[-1]) if own_turns else []
    own = own_boxes[-1].text if own_boxes else None
    others = boxed_answers(turns[-1][1]) if turns[-1][0] != "model" else []
    adopt = rng.random() < settings.adopt_majority
    majority = _majority(others, rng)
    others_text = ", ".join(sorted({b.text for b in others})) or "no final answers"
    if adopt and majority is not None:
        answer = majority
        if own is not None and _same(own, majority):
            verdict = f"- Their majority agrees with my answer {own}, so I keep it."
        else:
            verdict = f"- Most of them got {majority}; on re-checking I agree with them."
    elif own is not None:
        answer = own
        verdict = f"- Re-checking my own steps, I still get {own}, so I keep my answer."
    else:
        fresh = _answer_question(user_turns[0] if user_turns else "", settings, rng)
        answer = boxed_answers(fresh)[-1].text
        verdict = f"- Solving the problem again from the start gives {answer}."
    mine = own if own is not None else "no final answer"
    return (
        f"- My previous answer was {mine}.\n"
        f"- The other agents answered: {others_text}.\n"
        f"{verdict}\n\n\\boxed{{{answer}}}"
    )


def _tally(answers: list[BoxedAnswer]) -> tuple[Counter[str], dict[str, str]]:
    """Weighted votes per normalised answer, and each answer's first spelling."""
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for answer in answers:
        key = _normal(answer.text)
        counts[key] += answer.weight
        shown.setdefault(key, answer.text)
    return counts, shown


def _majority(answers: list[BoxedAnswer], rng: random.Random) -> str | None:
    if not answers:
        return None
    counts, shown = _tally(answers)
    top = max(counts.values())
    tied = sorted(key for key, count in counts.items() if count == top)
    return shown[rng.choice(tied)]


def _summarise(text: str) -> str:
    answers = boxed_answers(text)
    if not answers:
        return "- None of the responses gave a boxed final answer."
    counts, shown = _tally(answers)
    lines = [f"The responses reached {len(counts)} different final answer(s):"]
    for key, count in counts.items():
        plural = "response" if count == 1 else "responses"
        lines.append(
            f"- \\boxed{{{shown[key]}}}: given by {count} {plural}, "
            "computed directly from the expression."
        )
    return "\n".join(lines)


def _normal(answer: str) -> str:
    value = parse_number(answer)
    return str(value) if value is not None else answer.strip()


def _same(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)
