"""Answer extraction, graders and the majority vote (see docs/grading.md).

`get_grader(config)` builds the grader `config.grader` names from the registry
(`mafine.grading.registry.GRADERS`, where a new grader is added with one line). Every grader is a
`Grader`: `name`, the batch `equivalent_many(pairs) -> list[Verdict]`, `equivalent(gold,
answer) -> bool` (no answer is never equivalent), `verdict(gold, answer) -> Verdict`,
`settings()` (what metrics files record) and `close()`; graders are context managers. Importing
this package imports neither sympy nor math_verify: the symbolic graders load them in their
worker processes.
"""

from __future__ import annotations

from mafine.grading import registry
from mafine.grading.base import Grader, Pair, Verdict
from mafine.grading.extract import Extraction, extract_answer, extract_boxed
from mafine.grading.settings import GradingConfig
from mafine.grading.vote import majority_vote, majority_vote_many

__all__ = [
    "Extraction",
    "Grader",
    "GradingConfig",
    "Pair",
    "Verdict",
    "extract_answer",
    "extract_boxed",
    "get_grader",
    "majority_vote",
    "majority_vote_many",
    "registry",
]


def get_grader(config: GradingConfig | None = None) -> Grader:
    """The grader `config.grader` names, built from the config's settings."""
    grader: Grader = registry.build(config or GradingConfig())
    return grader
