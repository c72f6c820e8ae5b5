"""Model backends behind one interface (see base.Provider); each imported only when used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from mafine.providers.base import Provider

if TYPE_CHECKING:
    from mafine.config import ProviderConfig

FAKE_TUNING_BUCKET = "gs://mafine-fake/tuning"


@asynccontextmanager
async def open_provider(config: ProviderConfig, seed: int) -> AsyncIterator[Provider]:
    """The configured provider, closed (and the fake server stopped) on exit."""
    if config.name == "fake":
        async with _fake_gemini(config) as provider:
            yield provider
        return
    if config.name == "gemini":
        from mafine.providers.gemini import GeminiProvider, resolve_connection

        provider: Provider = GeminiProvider(config, resolve_connection(config))
    else:
        from mafine.providers.local import LocalProvider

        provider = LocalProvider(config, seed)
    try:
        yield provider
    finally:
        await provider.aclose()


@asynccontextmanager
async def _fake_gemini(config: ProviderConfig) -> AsyncIterator[Provider]:
    """The production gemini provider, talking to a fake Gemini served on loopback."""
    from google.oauth2.credentials import Credentials

    from mafine.providers.fake_gemini import FAKE_LOCATION, FAKE_PROJECT, FakeGemini
    from mafine.providers.gemini import Connection, GeminiProvider

    gemini = config.gemini.model_copy(update={"tuning_bucket": FAKE_TUNING_BUCKET})
    with FakeGemini(config.fake) as fake:
        connection = Connection(
            vertex=True,
            project=FAKE_PROJECT,
            location=FAKE_LOCATION,
            base_url=fake.url,
            credentials=Credentials(token="fake-token"),
            storage_endpoint=fake.url,
        )
        provider = GeminiProvider(config.model_copy(update={"gemini": gemini}), connection)
        try:
            yield provider
        finally:
            await provider.aclose()
