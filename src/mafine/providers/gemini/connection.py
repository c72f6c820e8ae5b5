"""Where and how to reach Gemini: an API key, or Vertex AI with a project and a location."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mafine.errors import MafineError
from mafine.providers.gemini.options import ProviderOptions


@dataclass(frozen=True)
class Connection:
    """Where and how to reach Gemini. Production resolves it from config and environment;
    the fake provider passes its loopback URL and a static token instead."""

    api_key: str | None = None
    vertex: bool = False
    project: str | None = None
    location: str = "global"  # base models
    tuning_location: str = "us-central1"  # tuning jobs and tuned endpoints
    base_url: str | None = None
    credentials: Any = None
    storage_endpoint: str | None = None

    def __repr__(self) -> str:  # never show the key, not even in a traceback
        return f"Connection(vertex={self.vertex}, project={self.project!r}, base_url=...)"


CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"  # as google-genai asks


def resolve_connection(config: ProviderOptions) -> Connection:
    """The connection for a `gemini` config, or a one-line error saying what is missing."""
    settings = config.gemini
    if settings.vertex:
        project = settings.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise MafineError(
                "gemini on Vertex AI needs a project: set provider.gemini.project "
                "or GOOGLE_CLOUD_PROJECT"
            )
        return Connection(
            vertex=True,
            project=project,
            location=settings.location,
            tuning_location=settings.tuning_location,
            base_url=settings.base_url,
            credentials=_application_default_credentials(),
        )
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise MafineError(
            f"gemini needs an API key: set the environment variable {settings.api_key_env} "
            "(in Colab: userdata.get from Colab secrets), or use provider.gemini.vertex=true"
        )
    return Connection(api_key=key, base_url=settings.base_url)


def make_client(connection: Connection, timeout_s: float, location: str | None = None) -> Any:
    """A google-genai client for the connection (on Vertex AI: at `location`, by default the
    base models' location).

    Its async transport is aiohttp when that can be imported (as in Colab), else httpx
    (google-genai 3.x, `BaseApiClient._use_aiohttp`). `attempts=1` leaves every retry to
    mafine's loop: without retry options the SDK's aiohttp path sleeps 1-10 s and retries a
    dropped connection once on its own, unseen by the pacer and the retry budget."""
    from google import genai
    from google.genai import types

    http_options = types.HttpOptions(
        base_url=connection.base_url,
        timeout=int(timeout_s * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    if connection.vertex:
        return genai.Client(
            vertexai=True,
            project=connection.project,
            location=location or connection.location,
            credentials=connection.credentials,
            http_options=http_options,
        )
    return genai.Client(api_key=connection.api_key, http_options=http_options)


def _application_default_credentials() -> Any:
    """Vertex AI's credentials, found now (google-genai would look them up at the first
    request), so a machine without them is refused before a stage starts or notes a request."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except DefaultCredentialsError as exc:
        raise MafineError(
            f"Google credentials: {' '.join(str(exc).split())}; for Vertex AI run `gcloud auth "
            "application-default login` (in Colab: google.colab.auth.authenticate_user()) or "
            "set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    return credentials
