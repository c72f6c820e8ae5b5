"""Gemini's errors as one line the user can act on, with the API key never in it."""

from __future__ import annotations

import re

from mafine.errors import MafineError, QuotaExhausted
from mafine.providers.gemini.connection import Connection
from mafine.providers.gemini.settings import GeminiSettings
from mafine.providers.limits import classify

_KEY_IN_URL = re.compile(r"([?&]key=)[^&\s]+")


def scrub_url(text: str) -> str:
    """Remove `?key=...` from URLs in a message."""
    return _KEY_IN_URL.sub(r"\1***", text)


def redact(text: str, connection: Connection) -> str:
    """The text without the connection's API key (in URLs or anywhere else)."""
    key = connection.api_key
    text = scrub_url(text)
    return text.replace(key, "***") if key else text


def credential_hint(connection: Connection, settings: GeminiSettings) -> str:
    if connection.vertex:
        return "the Vertex AI credentials (gcloud auth application-default login)"
    return f"the API key in {settings.api_key_env}"


def user_error(
    exc: Exception,
    model: str,
    connection: Connection,
    settings: GeminiSettings,
    timeout_s: float,
    transient_attempts: int = 1,
    rate_limited_s: float = 0.0,
) -> MafineError:
    """An exception as one line the user can act on (QuotaExhausted for a spent quota);
    re-raises what it does not recognise."""
    from google.genai import errors

    failure = classify(exc)
    hint = credential_hint(connection, settings)
    if isinstance(exc, errors.APIError):
        message = redact(" ".join(str(exc.message or exc.status or "").split()), connection)
        message = message[:400]
        code = exc.code
        if failure.kind == "quota":
            return QuotaExhausted(
                f"gemini quota exhausted ({redact(failure.quota or message, connection)}): "
                "waiting will not help until it resets (per-day quotas reset at midnight "
                "Pacific time). Every finished response is kept in the run directory's "
                "journal: run the same command again after the reset, or use a higher tier"
            )
        if failure.kind == "rate_limit":
            return MafineError(
                f"gemini kept answering 429 RESOURCE_EXHAUSTED ({message}) after "
                f"{rate_limited_s:.0f}s of waiting (provider.gemini.rate_limit_wait_s); lower "
                "provider.gemini.requests_per_minute or provider.max_concurrency, then run "
                "the same command again"
            )
        if code == 404:
            return MafineError(
                f"model {model} is not available (404 NOT_FOUND); set provider.model "
                "to a current model (docs/gemini.md says how to list them)"
            )
        if code == 401:
            return MafineError(
                f"gemini refused the credentials (401 UNAUTHENTICATED): {message}; check {hint}"
            )
        if code == 403:
            return MafineError(
                f"gemini denied access (403 PERMISSION_DENIED): {message}; check "
                f"{hint} and that the project may use {model}"
            )
        if code == 400:
            return MafineError(
                f"gemini rejected the request for {model} (400 {exc.status}): {message}"
            )
        if failure.kind == "transient":
            return MafineError(
                f"gemini error {code} {exc.status} after {transient_attempts} attempts: "
                f"{message}; every finished response is kept: run the same command again "
                "to resume"
            )
        return MafineError(f"gemini error {code} {exc.status}: {message}")
    if failure.kind == "transient":
        return MafineError(
            f"gemini did not answer after {transient_attempts} attempts "
            f"({type(exc).__name__}; timeout {timeout_s:g}s); every finished response is "
            "kept: run the same command again to resume"
        )
    raise exc
