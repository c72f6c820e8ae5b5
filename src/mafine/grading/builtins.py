"""The built-in graders: a plugin of mafine's own (entry point `graders` in pyproject.toml),
registered when a registry is first read, like an installed plugin's."""

from __future__ import annotations

from mafine.grading.registry import GRADERS, GraderEntry

for _builtin in (
    GraderEntry(
        "string",
        "mafine.grading.plain:StringGrader",
        "normalised strings (the seed's metric)",
    ),
    GraderEntry(
        "numeric",
        "mafine.grading.plain:NumericGrader",
        "exact rationals, ordered lists, True/False (DeepMind, GSM8K)",
    ),
    GraderEntry(
        "sympy",
        "mafine.grading.symbolic:SympyGrader",
        "the PRM800K logic: MATH normalisation, then a sympy difference (MATH)",
        symbolic=True,
    ),
    GraderEntry(
        "math_verify",
        "mafine.grading.symbolic:MathVerifyGrader",
        "HuggingFace math-verify with its defaults (MATH)",
        requires="math-verify",
        symbolic=True,
    ),
    GraderEntry(
        "auto",
        "mafine.grading.auto:AutoGrader",
        "numeric for plain numbers, symbolic (with a second opinion) for the rest",
        symbolic=True,
    ),
):
    GRADERS.register(_builtin)
