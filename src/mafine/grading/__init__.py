"""Answer extraction, graders and the majority vote (see docs/grading.md).

`get_grader(config)` returns the grader the config names. Every grader has `name`,
`equivalent(gold, answer) -> bool` (no answer is never equivalent), the batch
`equivalent_many(pairs) -> list[Verdict]`, `verdict(gold, answer) -> Verdict`, `settings()`
(what metrics files record) and `close()`; graders are context managers. Importing this package
imports neither sympy nor math_verify: the symbolic graders load them in their worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from mafine.errors import MafineError
from mafine.grading.base import BaseGrader, Pair, Verdict
from mafine.grading.extract import Extraction, extract_answer, extract_boxed
from mafine.grading.settings import GradingConfig
from mafine.grading.vote import majority_vote, majority_vote_many

GRADERS = ("string", "numeric", "sympy", "math_verify", "auto")

__all__ = [
    "GRADERS",
    "BaseGrader",
    "Extraction",
    "Grader",
    "GradingConfig",
    "Verdict",
    "extract_answer",
    "extract_boxed",
    "get_grader",
    "majority_vote",
    "majority_vote_many",
]


class Grader(Protocol):
    name: str

    def equivalent(self, gold: str, answer: str | None) -> bool:
        """Whether `answer` means the same as `gold`; no answer is never equivalent."""
        ...

    def verdict(self, gold: str, answer: str | None) -> Verdict: ...

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        """One verdict per (gold, answer) pair, in order; symbolic graders run them in a pool."""
        ...

    async def equivalent_many_async(self, pairs: Sequence[Pair]) -> list[Verdict]:
        """`equivalent_many` in a thread: what code on an event loop calls."""
        ...

    def settings(self) -> dict[str, Any]:
        """What metrics files record about the grader."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Grader: ...

    def __exit__(self, *exc: object) -> None: ...


def get_grader(config: GradingConfig | None = None) -> Grader:
    """The grader `config.grader` names, built from the config's settings."""
    config = config or GradingConfig()
    name = config.grader
    if name == "string":
        from mafine.grading.string import StringGrader

        return StringGrader()
    if name == "numeric":
        from mafine.grading.numeric import NumericGrader

        return NumericGrader(config.max_answer_chars)
    if name == "sympy":
        from mafine.grading.symbolic import SympyGrader

        return SympyGrader(config)
    if name == "math_verify":
        return _math_verify(config)
    if name == "auto":
        from mafine.grading.auto import AutoGrader
        from mafine.grading.symbolic import SympyGrader

        symbolic = _math_verify(config) if config.auto_symbolic == "math_verify" else None
        return AutoGrader(config, symbolic or SympyGrader(config))
    raise MafineError(f"unknown grader {name!r}; choose one of {', '.join(GRADERS)}")


def _math_verify(config: GradingConfig) -> Any:
    from mafine.grading import mathverify

    if not mathverify.available():
        raise MafineError(
            "the math_verify grader needs the math-verify package: pip install math-verify"
        )
    return mathverify.MathVerifyGrader(config)
