"""An offline fake of Gemini (generation, batches, Vertex tuning) and Cloud Storage uploads.

A real HTTP server on loopback that the real `google-genai` and `google-cloud-storage`
clients talk to unchanged. See `FakeGemini`; one module per responsibility: `routing` (HTTP
vocabulary), `faults`, `storage`, `tuning`, `batches`, `generation`, `settings`.

The names below are imported on first use: the config imports `settings`, and loading a
config must not load the whole server with it.
"""

from typing import Any

from mafine.registry import resolve

_HOMES = {
    "FAKE_LOCATION": "routing",
    "FAKE_PROJECT": "routing",
    "Reply": "routing",
    "Request": "routing",
    "FakeGemini": "server",
    "FAULT_KINDS": "settings",
    "FakeSettings": "settings",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return resolve(f"{__name__}.{_HOMES[name]}:{name}")
