"""An offline fake of Gemini (generation, Vertex tuning) and Cloud Storage uploads.

A real HTTP server on loopback that the real `google-genai` and `google-cloud-storage`
clients talk to unchanged. See `FakeGemini`.
"""

from mafine.providers.fake_gemini.server import (
    FAKE_LOCATION,
    FAKE_PROJECT,
    FakeGemini,
    Reply,
    Request,
)

__all__ = ["FAKE_LOCATION", "FAKE_PROJECT", "FakeGemini", "Reply", "Request"]
