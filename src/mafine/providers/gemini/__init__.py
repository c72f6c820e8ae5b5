"""Gemini through google-genai: generation on an API key or Vertex AI, tuning on Vertex AI.

One module a job: `settings` (the config section), `connection` (where and how to reach it),
`models` (what mafine knows of model families: thinking, locations), `generation` (the wire
format), `errors` (one-line messages), `tuning` (Vertex AI tuning), `provider` (the provider:
pacing and retries around all of them)."""

from mafine.providers.gemini.connection import Connection, resolve_connection
from mafine.providers.gemini.generation import (
    completion_from_response,
    completion_from_rest,
    is_blocked,
)
from mafine.providers.gemini.provider import GeminiProvider
from mafine.providers.gemini.settings import TUNING_ROUTES, GeminiSettings
from mafine.providers.gemini.tuning import ENDED_BADLY, join_gcs

__all__ = [
    "ENDED_BADLY",
    "TUNING_ROUTES",
    "Connection",
    "GeminiProvider",
    "GeminiSettings",
    "completion_from_response",
    "completion_from_rest",
    "is_blocked",
    "join_gcs",
    "resolve_connection",
]
