"""The auto grader: exact numbers where the answers are plain numbers, symbolic elsewhere.

`answer_style` is the data set's answer style: `numeric` (DeepMind, GSM8K) sends every pair to
the numeric grader, `latex` (MATH) every pair to the symbolic grader (`auto_symbolic`), and
`detect` decides per pair: when the numeric grader reads both the gold and the answer as numbers,
lists of numbers or True/False, its exact verdict stands; anything else (polynomials, LaTeX
beyond a simple fraction, intervals, text) goes to the symbolic grader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mafine.grading.base import NO_ANSWER, BaseGrader, Pair, Verdict
from mafine.grading.numeric import NumericGrader, parse_answer, parse_value
from mafine.grading.pooled import PoolGrader
from mafine.grading.settings import GradingConfig


class AutoGrader(BaseGrader):
    name = "auto"

    def __init__(self, config: GradingConfig, symbolic: PoolGrader) -> None:
        self.config = config
        self.numeric = NumericGrader(config.max_answer_chars)
        self.symbolic = symbolic

    def route(self, gold: str, answer: str) -> str:
        """Which grader judges the pair: "numeric" or "symbolic"."""
        style = self.config.answer_style
        if style != "detect":
            return "numeric" if style == "numeric" else "symbolic"
        if len(answer) > self.config.max_answer_chars:
            return "numeric"
        gold_value = parse_value(gold, True)
        if gold_value is None:
            return "symbolic"
        return "numeric" if parse_answer(gold, gold_value, answer) is not None else "symbolic"

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        results: list[Verdict] = [NO_ANSWER] * len(pairs)
        symbolic: list[int] = []
        for index, (gold, answer) in enumerate(pairs):
            if answer is None:
                continue
            if self.route(gold, answer) == "numeric":
                results[index] = self.numeric.verdict(gold, answer)
            else:
                symbolic.append(index)
        if symbolic:
            verdicts = self.symbolic.equivalent_many([pairs[index] for index in symbolic])
            for index, verdict in zip(symbolic, verdicts, strict=True):
                results[index] = verdict
        return results

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "answer_style": self.config.answer_style,
            "numeric": self.numeric.settings(),
            "symbolic": self.symbolic.settings(),
        }

    def close(self) -> None:
        self.symbolic.close()
