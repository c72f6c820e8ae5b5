"""Model backends behind one interface (see base.Provider), opened by name from the registry
(`providers.registry.PROVIDERS`); each is imported only when it is opened."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mafine.providers.base import Provider
from mafine.registry import resolve

if TYPE_CHECKING:
    from mafine.providers.gemini import Connection, GeminiProvider
    from mafine.providers.settings import ProviderConfig

FAKE_TUNING_BUCKET = "gs://mafine-fake/tuning"
FAKE_BATCH_BUCKET = "gs://mafine-fake/batch"
FAKE_STATE_DIR = "fake-gemini"  # inside the run directory

Opener = Callable[["ProviderConfig", int, "Path | None"], AbstractAsyncContextManager[Provider]]


def open_provider(
    config: ProviderConfig, seed: int, state_dir: Path | None = None
) -> AbstractAsyncContextManager[Provider]:
    """The configured provider, closed (and whatever it started stopped) on exit.

    `state_dir` (the run directory) is where a provider keeps what a resumed run needs, such
    as the names of the batch jobs it submitted.
    """
    opener: Opener = resolve(config.entry.open)
    return opener(config, seed, state_dir)


def closing(make: Callable[[ProviderConfig, int, Path | None], Provider]) -> Opener:
    """An opener for a provider built by `make(config, seed, state_dir)` and closed with
    `aclose()` on exit: what most registry entries need."""

    @asynccontextmanager
    async def opened(
        config: ProviderConfig, seed: int, state_dir: Path | None
    ) -> AsyncIterator[Provider]:
        provider = make(config, seed, state_dir)
        try:
            yield provider
        finally:
            await provider.aclose()

    return opened


def _gemini(config: ProviderConfig, seed: int, state_dir: Path | None) -> Provider:
    from mafine.providers.gemini import GeminiProvider, resolve_connection

    return _batched(GeminiProvider(config, resolve_connection(config)), state_dir)


def _local(config: ProviderConfig, seed: int, state_dir: Path | None) -> Provider:
    from mafine.providers.local import LocalProvider

    return LocalProvider(
        config.model,
        config.local,
        max_concurrency=config.max_concurrency,
        run_dir=state_dir,
    )


open_gemini = closing(_gemini)
open_local = closing(_local)


def _batched(provider: GeminiProvider, state_dir: Path | None) -> Provider:
    """The gemini provider, wrapped to send its requests as batch jobs when configured."""
    if not provider.settings.batch:
        return provider
    from mafine.providers.batch import BatchProvider

    return BatchProvider(provider, state_dir)


@asynccontextmanager
async def open_fake(
    config: ProviderConfig, seed: int, state_dir: Path | None
) -> AsyncIterator[Provider]:
    """The production gemini provider, talking to a fake Gemini served on loopback.

    Requests are paced only by an explicit `provider.gemini.requests_per_minute` or
    `tokens_per_minute` (a tier's limits are for the real service)."""
    from mafine.providers.fake_gemini import FakeGemini
    from mafine.providers.gemini import GeminiProvider

    gemini = config.gemini.model_copy(
        update={"tuning_bucket": FAKE_TUNING_BUCKET, "batch_bucket": FAKE_BATCH_BUCKET}
    )
    # The fake's jobs, tuned models and objects outlive the process, as Gemini's do.
    fake_state = state_dir / FAKE_STATE_DIR if state_dir is not None else None
    with FakeGemini(config.fake, state_dir=fake_state) as fake:
        # The configured locations, so the fake's regional serving answers as Vertex would.
        connection = fake_connection(
            fake.url, config.gemini.location, config.gemini.tuning_location
        )
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


def fake_connection(
    url: str, location: str = "global", tuning_location: str | None = None
) -> Connection:
    """How the gemini provider reaches a fake Gemini at `url`: Vertex AI paths at the given
    locations (base models: `global` serves every Gemini 3 model; tuning: the fake's region),
    a static token, and the same server for Cloud Storage."""
    from google.oauth2.credentials import Credentials

    from mafine.providers.fake_gemini import FAKE_LOCATION, FAKE_PROJECT
    from mafine.providers.gemini import Connection

    return Connection(
        vertex=True,
        project=FAKE_PROJECT,
        location=location,
        tuning_location=tuning_location or FAKE_LOCATION,
        base_url=url,
        credentials=Credentials(token="fake-token"),
        storage_endpoint=url,
    )
