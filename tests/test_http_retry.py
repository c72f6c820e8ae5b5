"""The retry loop is written once for any HTTP provider: a provider on plain httpx (not
google-genai) gets the same pacing, backoff and 429 handling from `Retrier`."""

from __future__ import annotations

import asyncio

import pytest

try:  # google-genai 3.x depends on httpx2 (a fork of httpx, the same API), older ones on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed google-genai
    import httpx

from mafine.providers.limits import Limits, Pacer
from mafine.providers.retry import Retrier, RetryPolicy, Tries

POLICY = RetryPolicy(max_attempts=4, retry_initial_s=0.01, retry_max_s=0.02)


def serve(*statuses: int):
    """A transport answering each status in turn (429s with Retry-After: 0), then 200."""
    answers = list(statuses)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0) if answers else 200
        seen.append(status)
        headers = {"retry-after": "0"} if status == 429 else {}
        return httpx.Response(status, headers=headers, json={"ok": status == 200})

    return httpx.MockTransport(handler), seen


def call(transport, policy: RetryPolicy = POLICY):
    async def main():
        retrier = Retrier(policy, Pacer(Limits()), label="other-provider")
        async with httpx.AsyncClient(transport=transport) as client:

            async def attempt():
                response = await client.post("https://api.example.invalid/v1/chat")
                response.raise_for_status()
                return response.json()

            return await retrier.run(attempt, Tries()), retrier.counts

    return asyncio.run(main())


def test_another_http_provider_reuses_the_retry_loop():
    transport, seen = serve(503, 429, 502)
    answer, counts = call(transport)
    assert answer == {"ok": True} and seen == [503, 429, 502, 200]
    assert counts["transient"] == 2 and counts["rate_limit"] == 1


def test_its_client_errors_fail_at_once_and_transients_are_bounded():
    transport, seen = serve(401)
    with pytest.raises(httpx.HTTPStatusError):
        call(transport)
    assert seen == [401]
    transport, seen = serve(500, 500, 500, 500, 500)
    with pytest.raises(httpx.HTTPStatusError):
        call(transport)
    assert seen == [500] * POLICY.max_attempts
