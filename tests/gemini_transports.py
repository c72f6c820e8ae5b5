"""Run a Gemini test on each of google-genai's async transports: httpx and aiohttp.

google-genai 3.x sends async requests through aiohttp whenever it can import it (the module
flag `google.genai._api_client.has_aiohttp`), else through httpx; Colab has aiohttp. The
`transport` fixture sets that flag, so each test runs once per transport."""

from __future__ import annotations

import pytest

TRANSPORTS = ("httpx", "aiohttp")


@pytest.fixture(params=TRANSPORTS)
def transport(request, monkeypatch) -> str:
    from google.genai import _api_client

    if request.param == "aiohttp":
        import aiohttp  # noqa: F401  (the dev extra installs it; a missing one fails here)

        assert _api_client.has_aiohttp, "google-genai did not find aiohttp"
    monkeypatch.setattr(_api_client, "has_aiohttp", request.param == "aiohttp")
    return request.param
