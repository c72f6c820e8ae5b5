"""What the gemini provider reads from the provider config, without importing mafine.config."""

from __future__ import annotations

from typing import Protocol

from mafine.providers.gemini.settings import GeminiSettings


class ProviderOptions(Protocol):
    """The provider section of the config, as the gemini provider sees it."""

    @property
    def gemini(self) -> GeminiSettings: ...

    @property
    def model(self) -> str: ...

    @property
    def max_concurrency(self) -> int: ...

    @property
    def timeout_s(self) -> float: ...
