"""An example mafine plugin: one extension of each kind, registered by `register()`, which
mafine calls (entry point `mafine.plugins`) the first time it reads a registry.

Each extension lives in its own module; the registrations name their factories by import path,
so listing mafine's names never imports them.
"""

from __future__ import annotations

from mafine.data.registry import SOURCES, SourceKind
from mafine.grading.registry import GRADERS, GraderEntry
from mafine.methods import METHODS, Method
from mafine.providers.base import Capabilities
from mafine.providers.registry import PROVIDERS, ProviderEntry
from mafine_example_plugin.settings import CalculatorSettings, CountdownSource


def register() -> None:
    PROVIDERS.register(
        ProviderEntry(
            "calculator",
            open="mafine_example_plugin.provider:open_calculator",
            capabilities=lambda config: Capabilities(tuning=True),
            settings=CalculatorSettings,
            check="mafine_example_plugin.provider:check",
        )
    )
    SOURCES.register(
        SourceKind(
            "countdown",
            CountdownSource,
            records="mafine_example_plugin.source:records",
            describe="mafine_example_plugin.source:describe",
        )
    )
    GRADERS.register(
        GraderEntry(
            "within",
            "mafine_example_plugin.grader:WithinGrader",
            "numbers equal within grading.options.within.tolerance",
            settings="mafine_example_plugin.grader:WithinOptions",
        )
    )
    METHODS.register(
        Method("greedy", "Multiagent FT, greedy decoding", {"sampling": {"temperature": 0}})
    )
