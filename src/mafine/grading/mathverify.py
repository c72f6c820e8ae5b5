"""The math_verify grader: HuggingFace's math-verify library, run in the worker pool.

Both strings are parsed as `\\boxed{...}` with math-verify's default extraction, then
`verify(gold, answer)` (gold first) with its defaults: floats rounded to 6 digits, strict
variables and set/tuple distinction. Our one addition: identical strings are equal even when
math-verify cannot parse them, so the vote never splits two copies of one answer. The library's
own SIGALRM timeouts are off; the pool's limits replace them.
"""

from __future__ import annotations

from typing import Any

from mafine.grading.base import IDENTICAL, Verdict
from mafine.grading.pooled import PoolGrader, package_version


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


def available() -> bool:
    return package_version("math-verify") is not None
