"""Exact solver for DeepMind `mathematics_dataset` arithmetic problems found inside free text.

Covers the phrasings of the modules `arithmetic__add_or_sub`, `add_sub_multiple`, `mul`,
`div`, `mul_div_multiple` and `mixed` (plus a few common paraphrases). Arithmetic is exact
(`fractions.Fraction` over an `ast` walk, never `eval`); answers are formatted like the
dataset's golds: integers, decimals without trailing zeros (when an operand was a decimal),
reduced fractions such as "-3/4" otherwise.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from fractions import Fraction

_NUM = r"-?\d+(?:\.\d+)?"
_P = rf"(?P<p>{_NUM})"
_Q = rf"(?P<q>{_NUM})"

# (pattern, operation); p and q are the named operands. Order matters only for overlaps.
_WORDED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\bdistance between {_P} and {_Q}", re.I), "absdiff"),
    (re.compile(rf"\bdifference between {_P} and {_Q}", re.I), "absdiff"),
    (re.compile(rf"\bhow far apart are {_P} and {_Q}", re.I), "absdiff"),
    (re.compile(rf"\bsubtract {_Q} from {_P}", re.I), "sub"),
    (re.compile(rf"(?<![\d.]){_Q} less than {_P}", re.I), "sub"),
    (re.compile(rf"(?<![\d.]){_Q} more than {_P}", re.I), "add"),
    (re.compile(rf"(?<![\d.]){_P} take away {_Q}", re.I), "sub"),
    (re.compile(rf"(?<![\d.]){_P} minus {_Q}", re.I), "sub"),
    (re.compile(rf"\badd together {_P} and {_Q}", re.I), "add"),
    (re.compile(rf"\badd {_P} and {_Q}", re.I), "add"),
    (re.compile(rf"\badd {_Q} to {_P}", re.I), "add"),
    (re.compile(rf"\bput together {_P} and {_Q}", re.I), "add"),
    (re.compile(rf"\bsum (?:of )?{_P} and {_Q}", re.I), "add"),
    (re.compile(rf"\btotal (?:of )?{_P} and {_Q}", re.I), "add"),
    (re.compile(rf"(?<![\d.]){_P} plus {_Q}", re.I), "add"),
    (re.compile(rf"\bmultiply {_P} (?:and|by) {_Q}", re.I), "mul"),
    (re.compile(rf"\bproduct of {_P} and {_Q}", re.I), "mul"),
    (re.compile(rf"(?<![\d.]){_P} times {_Q}", re.I), "mul"),
    (re.compile(rf"\bdivide {_P} by {_Q}", re.I), "div"),
    (re.compile(rf"(?<![\d.]){_P} divided by {_Q}", re.I), "div"),
]

# A run of characters that can make up a bare expression such as "3 - (0 - 3 - -6)*2/5".
_EXPR_RUN = re.compile(r"[-+*/()\d. \t]*\d[-+*/()\d. \t]*")
_LITERAL = re.compile(r"\d+(?:\.\d+)?")
_MAX_EXPR_CHARS = 400


@dataclass(frozen=True)
class Solution:
    """An exactly solved problem: its value, how to format it and what was computed."""

    value: Fraction
    decimal: bool
    expression: str

    @property
    def answer(self) -> str:
        return format_number(self.value, self.decimal)


def solve_text(text: str) -> Solution | None:
    """Find an arithmetic problem anywhere in `text` and solve it exactly, or None."""
    worded: list[tuple[int, Solution]] = []
    for pattern, op in _WORDED:
        for match in pattern.finditer(text):
            solution = _solve_worded(match.group("p"), match.group("q"), op)
            if solution is not None:
                worded.append((match.start(), solution))
    if worded:
        # The last worded problem wins: default prompts put the problem at the end.
        return max(worded, key=lambda item: item[0])[1]
    best: tuple[int, int, Solution] | None = None
    for match in _EXPR_RUN.finditer(text):
        for candidate in _expression_candidates(match.group(0)):
            solution = solve_expression(candidate)
            if solution is not None:
                rank = (len(candidate), match.start())
                if best is None or rank >= best[:2]:
                    best = (*rank, solution)
                break
    return best[2] if best else None


def solve_expression(expression: str) -> Solution | None:
    """Solve one bare arithmetic expression with + - * / and parentheses (needs a binary op)."""
    expression = expression.strip()
    if not expression or len(expression) > _MAX_EXPR_CHARS:
        return None
    # Number literals become names, so decimals stay exact (no float ever exists).
    literals: list[Fraction] = []

    def _name(match: re.Match[str]) -> str:
        literals.append(Fraction(match.group(0)))
        return f" n{len(literals) - 1} "

    try:
        tree = ast.parse(_LITERAL.sub(_name, expression).strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None
    if not any(isinstance(node, ast.BinOp) for node in ast.walk(tree)):
        return None
    try:
        value = _evaluate(tree.body, literals)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None
    decimal = "." in expression and _terminates(value)
    return Solution(value=value, decimal=decimal, expression=_tidy(expression))


def format_number(value: Fraction, decimal: bool = False) -> str:
    """A number as the dataset writes it: "-3", "0.25" (decimal form) or "-3/4"."""
    if value.denominator == 1:
        return str(value.numerator)
    if decimal and _terminates(value):
        return _decimal_string(value)
    return f"{value.numerator}/{value.denominator}"


def parse_number(text: str) -> Fraction | None:
    """A number written as an integer, a decimal or a fraction; None for anything else."""
    text = text.strip().replace(" ", "")
    if not re.fullmatch(r"-?\d+(?:\.\d+)?(?:/-?\d+)?", text):
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def wrong_answer(solution: Solution, rng: random.Random) -> str:
    """A plausible wrong answer (off by a little, sign error, digit slip), never the right one."""
    right = solution.answer
    value = solution.value
    places = _decimal_places(right) if solution.decimal else 0
    unit = Fraction(1, 10**places) if places else Fraction(1)
    candidates: list[Fraction] = []
    for step in (1, 2, 10):
        candidates += [value + step * unit, value - step * unit]
    if solution.decimal and places:
        candidates += [value + 1, value - 1]
    if value.denominator != 1:
        candidates += [
            Fraction(value.numerator + 1, value.denominator),
            Fraction(value.numerator - 1, value.denominator),
        ]
        if value.numerator != 0:
            candidates.append(Fraction(value.denominator, value.numerator))
    if value != 0:
        candidates += [-value] * 3
    slipped = _digit_slip(right, rng)
    if slipped is not None:
        candidates += [slipped] * 3
    rng.shuffle(candidates)
    for candidate in candidates:
        text = format_number(candidate, solution.decimal)
        if candidate != value and text != right:
            return text
    return format_number(value + 1, solution.decimal)


def _digit_slip(answer: str, rng: random.Random) -> Fraction | None:
    positions = [i for i, char in enumerate(answer) if char.isdigit()]
    if "/" in answer or len(positions) < 2:
        return None
    index = rng.choice(positions[1:])
    digit = int(answer[index])
    new = str((digit + rng.choice([1, 9])) % 10)
    return parse_number(answer[:index] + new + answer[index + 1 :])


def _solve_worded(p_text: str, q_text: str, op: str) -> Solution | None:
    p, q = Fraction(p_text), Fraction(q_text)
    decimal = "." in p_text or "." in q_text
    if op == "add":
        value, expression = p + q, f"{p_text} + {_paren(q_text)}"
    elif op == "sub":
        value, expression = p - q, f"{p_text} - {_paren(q_text)}"
    elif op == "absdiff":
        value, expression = abs(p - q), f"|{p_text} - {_paren(q_text)}|"
    elif op == "mul":
        value, expression = p * q, f"{p_text} * {_paren(q_text)}"
    else:
        if q == 0:
            return None
        value, expression = p / q, f"{p_text} / {_paren(q_text)}"
    return Solution(value=value, decimal=decimal and _terminates(value), expression=expression)


def _expression_candidates(run: str) -> list[str]:
    """Plausible bare expressions in a run of expression characters, longest first."""
    run = run.strip()
    # A sentence's full stop ("Calculate 2 + -7.") is never part of a number.
    run = run.rstrip(". \n\t")
    candidates = [run]
    # Unbalanced outer text (e.g. "(see 3 + 4") : try dropping leading/trailing brackets.
    stripped = run.strip("()")
    if stripped != run:
        candidates.append(stripped)
    return [c for c in candidates if c]


def _evaluate(node: ast.AST, literals: list[Fraction]) -> Fraction:
    if isinstance(node, ast.Name) and re.fullmatch(r"n\d+", node.id):
        return literals[int(node.id[1:])]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate(node.operand, literals)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, literals), _evaluate(node.right, literals)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
    raise ValueError("unsupported expression")


def _terminates(value: Fraction) -> bool:
    denominator = value.denominator
    for factor in (2, 5):
        while denominator % factor == 0:
            denominator //= factor
    return denominator == 1


def _decimal_string(value: Fraction) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
    scaled = str((value * 10**places).numerator).rjust(places + 1, "0")
    integer, fraction = scaled[:-places], scaled[-places:]
    return f"{sign}{integer}.{fraction.rstrip('0')}" if fraction.rstrip("0") else sign + integer


def _decimal_places(answer: str) -> int:
    return len(answer.split(".", 1)[1]) if "." in answer else 0


def _paren(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


def _tidy(expression: str) -> str:
    return re.sub(r"\s+", " ", expression).strip()
