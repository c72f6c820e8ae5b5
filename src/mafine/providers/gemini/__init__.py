"""Gemini through google-genai: generation on an API key or Vertex AI, tuning on Vertex AI.

One module a job: `settings` (the config section), `connection` (where and how to reach it),
`generation` (the wire format), `errors` (one-line messages), `tuning` (Vertex AI tuning),
`provider` (the provider: pacing and retries around all of them)."""

from mafine.providers.gemini.connection import Connection, resolve_connection
from mafine.providers.gemini.errors import scrub_url
from mafine.providers.gemini.generation import (
    BLOCKED,
    completion_from_response,
    completion_from_rest,
    estimate_tokens,
    is_blocked,
    rest_request,
)
from mafine.providers.gemini.provider import GeminiProvider
from mafine.providers.gemini.settings import GeminiSettings
from mafine.providers.gemini.tuning import (
    ENDED_BADLY,
    TUNING_ROUTES,
    join_gcs,
    to_vertex_example,
    tuning_display_name,
)

__all__ = [
    "BLOCKED",
    "ENDED_BADLY",
    "TUNING_ROUTES",
    "Connection",
    "GeminiProvider",
    "GeminiSettings",
    "completion_from_response",
    "completion_from_rest",
    "estimate_tokens",
    "is_blocked",
    "join_gcs",
    "resolve_connection",
    "rest_request",
    "scrub_url",
    "to_vertex_example",
    "tuning_display_name",
]
