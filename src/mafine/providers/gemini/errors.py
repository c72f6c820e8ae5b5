"""Gemini's errors as one line the user can act on, with the API key never in it."""

from __future__ import annotations

import re

from mafine.errors import MafineError, QuotaExhausted
from mafine.providers.gemini import models
from mafine.providers.gemini.connection import Connection
from mafine.providers.gemini.models import location_in_name
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


# ErrorInfo reasons of a request refused for its credentials whatever its status code: a bad
# API key is 400 INVALID_ARGUMENT with reason API_KEY_INVALID on the Gemini API
# (continuedev/continue#9330, micr0-dev/lexido#54), an expired one API_KEY_EXPIRED.
BAD_CREDENTIALS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"})


def not_found(model: str, connection: Connection, google_says: str = "") -> MafineError:
    """A 404 for a model, saying whether the model or the location is the problem, with
    Google's own words (already scrubbed of the key) kept: they name a retirement and its
    replacement ("This model models/gemini-2.5-flash is no longer available to new users",
    thedotmack/claude-mem#3278) better than any guess of ours."""
    said = f' Google says: "{google_says}"' if google_says else ""
    if not connection.vertex:
        return MafineError(
            f"model {model} is not available on the Gemini API (404 NOT_FOUND); set "
            f"provider.model to a current model (docs/gemini.md, Models).{said}"
        )
    endpoint_location = location_in_name(model)
    if endpoint_location is not None:  # a tuned model, called in its own region
        return MafineError(
            f"tuned model {model} was not found in {endpoint_location} (404 NOT_FOUND): it "
            "was deleted, its base model retired (tuned models retire with it), or "
            f"provider.gemini.project changed since it was tuned.{said}"
        )
    location = connection.location
    facts = models.facts_of(model)
    if facts is not None and facts.retired_on_vertex():
        return MafineError(
            f"model {model} was retired on Vertex AI on {facts.vertex_retired} (404 "
            "NOT_FOUND); set provider.model to a current model (docs/gemini.md, Models)."
            f"{said}"
        )
    if not models.served_in(model, location):
        return MafineError(
            f"model {model} is not served in {location} (404 NOT_FOUND): the region is the "
            "problem, not the model; Vertex AI serves it from global (or the us/eu "
            f"multi-regions): set provider.gemini.location=global.{said}"
        )
    return MafineError(
        f"model {model} is not available in {location} (404 NOT_FOUND): the model is the "
        "problem, not the region; set provider.model to a current model, or check that the "
        "project may use it (docs/gemini.md, Models)."
        f"{said}"
    )


def rate_limited(
    message: str, quota: str | None, waited_s: float, connection: Connection
) -> MafineError:
    """The line for a request that kept getting 429s: a named per-minute quota, or a 429
    naming none, which may be a spend cap. Google's rate-limit page documents spend-based
    limits answered with 429 RESOURCE_EXHAUSTED, which waiting does not lift
    (https://ai.google.dev/gemini-api/docs/rate-limits, "Spend-based rate limits", read
    2026-12-06; Project Spend Caps: https://blog.google/innovation-and-ai/technology/
    developers-tools/more-control-over-gemini-api-costs, 2026-03)."""
    waited = f"after {waited_s:.0f}s of waiting" if waited_s >= 1 else "at once"
    if quota:
        return MafineError(
            f"gemini kept answering 429 RESOURCE_EXHAUSTED for {quota} ({message}) {waited} "
            "(provider.gemini.rate_limit_wait_s); lower provider.gemini.requests_per_minute "
            "or provider.max_concurrency, then run the same command again"
        )
    where = (
        "Vertex AI's shared capacity is busy (retry later, or use Provisioned Throughput)"
        if connection.vertex
        else "it may be a spend cap (the project's monthly cap or its tier's), which waiting "
        "does not lift: see the Spend and Rate limit pages of Google AI Studio"
    )
    return MafineError(
        f"gemini kept answering 429 RESOURCE_EXHAUSTED naming no quota ({message}) {waited} "
        f"(provider.gemini.capacity_wait_s): {where}; every finished response is kept: run "
        "the same command again later"
    )


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
            return rate_limited(message, failure.quota, rate_limited_s, connection)
        if code == 404:
            return not_found(model, connection, message)
        if code == 401 or failure.reason in BAD_CREDENTIALS:
            return MafineError(
                f"gemini refused the credentials ({code} {exc.status}"
                f"{', ' + failure.reason if failure.reason else ''}): {message}; check {hint}"
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
