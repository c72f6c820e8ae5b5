"""An offline fake of Gemini (generation, batches, Vertex tuning) and Cloud Storage uploads.

A real HTTP server on loopback that the real `google-genai` and `google-cloud-storage`
clients talk to unchanged. See `FakeGemini`; one module per responsibility: `routing` (HTTP
vocabulary), `faults`, `storage`, `tuning`, `batches`, `generation`, `settings`.
"""

from mafine.providers.fake_gemini.routing import FAKE_LOCATION, FAKE_PROJECT, Reply, Request
from mafine.providers.fake_gemini.server import FakeGemini
from mafine.providers.fake_gemini.settings import FAULT_KINDS, FakeSettings

__all__ = [
    "FAKE_LOCATION",
    "FAKE_PROJECT",
    "FAULT_KINDS",
    "FakeGemini",
    "FakeSettings",
    "Reply",
    "Request",
]
