"""Model backends behind one interface (see base.Provider); each imported only when used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mafine.providers.base import Provider

if TYPE_CHECKING:
    from mafine.config import ProviderConfig
    from mafine.providers.gemini import Connection, GeminiProvider

FAKE_TUNING_BUCKET = "gs://mafine-fake/tuning"
FAKE_BATCH_BUCKET = "gs://mafine-fake/batch"


@asynccontextmanager
async def open_provider(
    config: ProviderConfig, seed: int, state_dir: Path | None = None
) -> AsyncIterator[Provider]:
    """The configured provider, closed (and the fake server stopped) on exit.

    `state_dir` (the run directory) is where a provider keeps what a resumed run needs, such
    as the names of the batch jobs it submitted.
    """
    if config.name == "fake":
        async with _fake_gemini(config, state_dir) as provider:
            yield provider
        return
    if config.name == "gemini":
        from mafine.providers.gemini import GeminiProvider, resolve_connection

        provider: Provider = _batched(GeminiProvider(config, resolve_connection(config)), state_dir)
    else:
        from mafine.providers.local import LocalProvider

        provider = LocalProvider(
            config.model,
            config.local,
            max_concurrency=config.max_concurrency,
            run_dir=state_dir,
        )
    try:
        yield provider
    finally:
        await provider.aclose()


def _batched(provider: GeminiProvider, state_dir: Path | None) -> Provider:
    """The gemini provider, wrapped to send its requests as batch jobs when configured."""
    if not provider.settings.batch:
        return provider
    from mafine.providers.batch import BatchProvider

    return BatchProvider(provider, state_dir)


@asynccontextmanager
async def _fake_gemini(config: ProviderConfig, state_dir: Path | None) -> AsyncIterator[Provider]:
    """The production gemini provider, talking to a fake Gemini served on loopback.

    Requests are paced only by an explicit `provider.gemini.requests_per_minute` or
    `tokens_per_minute` (a tier's limits are for the real service)."""
    from mafine.providers.fake_gemini import FakeGemini
    from mafine.providers.gemini import GeminiProvider

    gemini = config.gemini.model_copy(
        update={"tuning_bucket": FAKE_TUNING_BUCKET, "batch_bucket": FAKE_BATCH_BUCKET}
    )
    with FakeGemini(config.fake) as fake:
        connection = fake_connection(fake.url)
        provider = _batched(
            GeminiProvider(
                config.model_copy(update={"gemini": gemini}), connection, pace_by_tier=False
            ),
            state_dir,
        )
        try:
            yield provider
        finally:
            await provider.aclose()


def fake_connection(url: str) -> Connection:
    """How the gemini provider reaches a fake Gemini at `url`: Vertex AI paths, a static
    token, and the same server for Cloud Storage."""
    from google.oauth2.credentials import Credentials

    from mafine.providers.fake_gemini import FAKE_LOCATION, FAKE_PROJECT
    from mafine.providers.gemini import Connection

    return Connection(
        vertex=True,
        project=FAKE_PROJECT,
        location=FAKE_LOCATION,
        base_url=url,
        credentials=Credentials(token="fake-token"),
        storage_endpoint=url,
    )
