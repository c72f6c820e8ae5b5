"""The graders mafine knows, by name: the one list the config, the CLI and the tools read.

An entry carries everything that is about a grader rather than inside it: its name, a one-line
description (CLI help, docs), its factory, the settings model of its own options (read from
`grading.options.NAME` and validated with the config; None: it takes none), the package it needs
(checked before it is built, so a missing extra is one line, not an ImportError), and whether it
runs symbolic work in worker processes (the benchmark sizes its batches by that). The built-in
factories are import paths, resolved only when a grader is built, so reading the registry
imports no grader module (and `mafine --help` no sympy). The built-ins are registered in
`mafine.grading.builtins`, a plugin like any other (docs/architecture.md). Register a new grader
with one line:

    GRADERS.register(GraderEntry("mine", "my_package.graders:MyGrader", "what it compares"))

The factory (a callable, or "module:attribute" naming one) takes the `GradingConfig` and returns
a `mafine.grading.Grader`. The config accepts the names registered when it is validated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from mafine.errors import MafineError
from mafine.registry import Registry, resolve

if TYPE_CHECKING:
    from pydantic import BaseModel

# GradingConfig -> Grader. Typed loosely: the settings validate names against this registry,
# so it sits below the settings and the Grader class and imports neither.
Factory = Callable[[Any], Any]


@dataclass(frozen=True)
class GraderEntry:
    """A grader: its name, how to build it, and what its users need to know about it."""

    name: str
    factory: Factory | str  # a callable, or "module:attribute" imported on first use
    description: str
    # The model of its options (`grading.options.NAME`, `mafine grade --option`): a class, or
    # "module:attribute" imported when options are validated; None: it takes none.
    settings: type[BaseModel] | str | None = None
    requires: str | None = None  # a distribution the grader needs (`pip install` name)
    symbolic: bool = False  # runs sympy-class work in worker processes

    def options_model(self) -> type[BaseModel] | None:
        return None if self.settings is None else resolve(self.settings)

    def build(self, config: Any) -> Any:
        """The grader, built from `config`; a missing `requires` is a one-line error."""
        if self.requires is not None and not installed(self.requires):
            raise MafineError(
                f"the {self.name} grader needs the {self.requires} package: "
                f"pip install {self.requires}"
            )
        return resolve(self.factory)(config)


GRADERS: Registry[GraderEntry] = Registry("grader")


def build(config: Any) -> Any:
    """The grader `config.grader` names; an unknown name (a config built without validation)
    is a one-line error."""
    if config.grader not in GRADERS:
        raise MafineError(GRADERS.unknown(config.grader))
    return GRADERS.get(config.grader).build(config)


def installed(distribution: str) -> bool:
    return package_version(distribution) is not None


def package_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
