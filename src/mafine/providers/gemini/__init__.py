"""Gemini through google-genai: generation on an API key or Vertex AI, tuning on Vertex AI.

One module a job: `settings` (the config section), `connection` (where and how to reach it),
`models` (what mafine knows of model families: thinking, locations), `generation` (the wire
format), `errors` (one-line messages), `tuning` (Vertex AI tuning), `provider` (the provider:
pacing and retries around all of them).

The names below are imported on first use: the config imports `settings`, and loading a
config must not load the provider, tenacity and the wire format with it.
"""

from typing import Any

from mafine.registry import resolve

_HOMES = {
    "Connection": "connection",
    "resolve_connection": "connection",
    "completion_from_response": "generation",
    "completion_from_rest": "generation",
    "is_blocked": "generation",
    "GeminiProvider": "provider",
    "GeminiSettings": "settings",
    "TUNING_ROUTES": "settings",
    "ENDED_BADLY": "tuning",
    "join_gcs": "tuning",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return resolve(f"{__name__}.{_HOMES[name]}:{name}")
