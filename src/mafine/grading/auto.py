"""The auto grader: exact numbers where the answers are plain numbers, symbolic elsewhere.

`answer_style` is the data set's answer style: `numeric` (DeepMind, GSM8K) sends every pair to
the numeric grader, `latex` (MATH) every pair to the symbolic grader (`auto_symbolic`), and
`detect` decides per pair: when the numeric grader reads both the gold and the answer as numbers,
lists of numbers or True/False, its exact verdict stands; anything else (polynomials, LaTeX
beyond a simple fraction, intervals, text) goes to the symbolic grader.

A pair the symbolic grader cannot judge (sympy refuses to evaluate it or cannot parse it:
`\\{1,2\\}`, `y=2x+3`, `\\log_2 3`; math-verify cannot parse it) goes to the other symbolic
grader, whose verdict stands. Every verdict names the grader that decided (`Verdict.grader`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, get_args

from mafine.grading.base import NO_ANSWER, Grader, Pair, Verdict
from mafine.grading.plain import NumericGrader, parse_answer, parse_value
from mafine.grading.registry import GRADERS, installed
from mafine.grading.settings import GradingConfig, SymbolicGrader

_SYMBOLIC: tuple[str, ...] = get_args(SymbolicGrader)


class AutoGrader(Grader):
    name = "auto"

    def __init__(self, config: GradingConfig | None = None) -> None:
        super().__init__(config)
        self.numeric = NumericGrader(self.config)
        self.symbolic = GRADERS.get(self.config.auto_symbolic).build(self.config)
        other = GRADERS.get(next(n for n in _SYMBOLIC if n != self.config.auto_symbolic))
        self.second: Grader | None = None
        if other.requires is None or installed(other.requires):
            self.second = other.build(self.config)

    def route(self, gold: str, answer: str) -> str:
        """Which grader judges the pair first: "numeric" or "symbolic"."""
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
                results[index] = _by(self.numeric, self.numeric.verdict(gold, answer))
            else:
                symbolic.append(index)
        unjudged = self._judge(self.symbolic, pairs, symbolic, results)
        if self.second is not None and unjudged:
            self._judge(self.second, pairs, unjudged, results)
        return results

    def _judge(
        self, grader: Grader, pairs: Sequence[Pair], indices: list[int], results: list[Verdict]
    ) -> list[int]:
        """Judge `indices` with `grader` into `results`; the indices it could not judge."""
        if not indices:
            return []
        verdicts = grader.equivalent_many([pairs[index] for index in indices])
        for index, verdict in zip(indices, verdicts, strict=True):
            results[index] = _by(grader, verdict)
        return [
            index for index, verdict in zip(indices, verdicts, strict=True) if not verdict.judged
        ]

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "answer_style": self.config.answer_style,
            "numeric": self.numeric.settings(),
            "symbolic": self.symbolic.settings(),
            "unjudged_to": self.second.settings() if self.second is not None else None,
        }

    def close(self) -> None:
        self.symbolic.close()
        if self.second is not None:
            self.second.close()


def _by(grader: Grader, verdict: Verdict) -> Verdict:
    return dataclasses.replace(verdict, grader=verdict.grader or grader.name)
