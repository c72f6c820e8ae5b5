"""The graders mafine knows, by name: the one list the config, the CLI and the tools read.

An entry carries everything that is about a grader rather than inside it: its name, a one-line
description (CLI help, docs), its factory, the settings model of its own options (read from
`grading.options.NAME` and validated with the config; None: it takes none), the package it needs
(checked before it is built, so a missing extra is one line, not an ImportError), and whether it
runs symbolic work in worker processes (the benchmark sizes its batches by that). The built-in
factories are import paths, resolved only when a grader is built, so reading the registry
imports no grader module (and `mafine --help` no sympy). Register a new grader with one line:

    register(GraderEntry("mine", "my_package.graders:MyGrader", "what it compares"))

The factory (a callable, or "module:attribute" naming one) takes the `GradingConfig` and returns
a `mafine.grading.Grader`. The config accepts the names registered when it is validated.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from mafine.errors import MafineError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mafine.grading.base import Grader
    from mafine.grading.settings import GradingConfig

Factory = Callable[["GradingConfig"], "Grader"]


@dataclass(frozen=True)
class GraderEntry:
    """A grader: its name, how to build it, and what its users need to know about it."""

    name: str
    factory: Factory | str  # a callable, or "module:attribute" imported on first use
    description: str
    settings: type[BaseModel] | None = None  # its options, `grading.options.NAME`
    requires: str | None = None  # a distribution the grader needs (`pip install` name)
    symbolic: bool = False  # runs sympy-class work in worker processes

    def build(self, config: GradingConfig) -> Grader:
        """The grader, built from `config`; a missing `requires` is a one-line error."""
        if self.requires is not None and not installed(self.requires):
            raise MafineError(
                f"the {self.name} grader needs the {self.requires} package: "
                f"pip install {self.requires}"
            )
        return _resolve(self.factory)(config)


_ENTRIES: dict[str, GraderEntry] = {}


def register(entry: GraderEntry) -> GraderEntry:
    """Add a grader (a name registered twice is an error: unregister it first)."""
    if entry.name in _ENTRIES:
        raise ValueError(f"a grader named {entry.name!r} is already registered")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a grader (tests that register a throwaway one clean up with this)."""
    _ENTRIES.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered grader's name, in registration order."""
    return tuple(_ENTRIES)


def entries() -> tuple[GraderEntry, ...]:
    return tuple(_ENTRIES.values())


def entry(name: str) -> GraderEntry:
    """The entry of `name`; an unknown name is a one-line error listing the known ones."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise MafineError(unknown(name)) from None


def unknown(name: str) -> str:
    return f"unknown grader {name!r}; choose one of {', '.join(_ENTRIES)}"


def installed(distribution: str) -> bool:
    return package_version(distribution) is not None


def package_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _resolve(factory: Factory | str) -> Any:
    if not isinstance(factory, str):
        return factory
    module, _, attribute = factory.partition(":")
    return getattr(importlib.import_module(module), attribute)


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
    register(_builtin)
