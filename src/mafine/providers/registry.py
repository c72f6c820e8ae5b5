"""The model backends a config can name in `provider.name`.

An entry says how to open the provider, what it can do under the given settings (known before
anything is opened, so a run that needs tuning on a provider that cannot tune stops before it
spends anything), and whether its tokens are billed at Gemini's prices. Builtin entries are
registered in `mafine.providers.settings` (a plugin of mafine's own); docs/architecture.md has
the recipe for a new one, as a plugin package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mafine.providers.base import Capabilities
from mafine.registry import Registry


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    # (provider config, run seed, state dir or None) -> an async context manager giving the
    # Provider and closing it on exit; `mafine.providers.closing` makes one from a constructor.
    open: str | Callable[..., Any]
    # (provider config) -> what the provider will be able to do with these settings.
    capabilities: Callable[[Any], Capabilities]
    settings: type | None = None  # the model of its `provider.<name>` section, if it has one
    priced: bool = False  # tokens billed at the prices in mafine.pricing
    tuning_hint: str = ""  # what to do when these settings cannot tune (a run refused up front)
    description: str = ""  # what it is, for `mafine plugins` and the docs
    # "module:attribute" (or a callable) of `check(config) -> list[CheckOutcome]`, the
    # preflight of `mafine check`, given the whole config (its settings:
    # `config.provider.settings_of(name)`); None: nothing remote to check.
    check: str | Callable[..., Any] | None = None
    # "module:attribute" (or a callable) of `notes(config, estimate) -> list[str]`: what `mafine
    # estimate` says about this provider under the table (pacing, batch mode, billing).
    estimate_notes: str | Callable[..., Any] | None = None


PROVIDERS: Registry[ProviderEntry] = Registry("provider")
