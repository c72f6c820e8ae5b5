"""The gemini provider against the fake's injected faults: what is retried, waited on, stopped."""

from __future__ import annotations

import asyncio
import time

import pytest

from mafine.artifacts import Message
from mafine.config import FakeSettings, GeminiSettings, ProviderConfig
from mafine.errors import MafineError, QuotaExhausted
from mafine.prompts import QUESTION
from mafine.providers.base import GenerationRequest, Sampling
from mafine.providers.fake_gemini import FakeGemini
from mafine.providers.gemini import Connection, GeminiProvider
from tests.gemini_transports import transport  # noqa: F401  (a fixture)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore:Inheritance class:DeprecationWarning"),  # aiohttp
    pytest.mark.usefixtures("transport"),
]

KEY = "test-key-not-secret"


def request(number: int = 0) -> GenerationRequest:
    question = QUESTION.format(question=f"What is {number} + 7?")
    return GenerationRequest(
        model="gemini-3.1-flash-lite",
        messages=(Message(role="user", content=question),),
        sampling=Sampling(temperature=1.0, top_p=0.9, max_output_tokens=256),
        sample_index=0,
        seed=11,
    )


def provider(fake: FakeGemini, timeout_s: float = 10.0, **gemini) -> GeminiProvider:
    settings = {"tier": "none", "retry_initial_s": 0.01, "retry_max_s": 0.05, **gemini}
    config = ProviderConfig(name="gemini", timeout_s=timeout_s, gemini=GeminiSettings(**settings))
    return GeminiProvider(config, Connection(api_key=KEY, base_url=fake.url))


def run(fake: FakeGemini, *requests: GenerationRequest, **options):
    async def main():
        gemini = provider(fake, **options)
        try:
            return await asyncio.gather(*(gemini.generate(r) for r in requests)), gemini
        finally:
            await gemini.aclose()

    return asyncio.run(main())


def faulty(kinds: list[str], rate: float = 1.0, **settings) -> FakeGemini:
    return FakeGemini(FakeSettings(fault_rate=rate, fault_kinds=kinds, **settings))


def test_a_clean_answer_passes_through():
    with FakeGemini(FakeSettings(error_rate=0.0)) as fake:
        (completion,), _ = run(fake, request(5))
    assert completion.finish_reason == "STOP" and "\\boxed{12}" in completion.text
    assert completion.usage.total_tokens > 0


@pytest.mark.parametrize("kind", ["server_error", "unavailable", "drop", "malformed", "cancelled"])
def test_transient_faults_are_retried_and_bounded(kind):
    with faulty([kind]) as fake:
        with pytest.raises(MafineError, match="after 4 attempts") as raised:
            run(fake, request(), max_attempts=4)
        assert fake.fault_stats() == {kind: 4}
    assert "run the same command again" in str(raised.value)


def test_a_hang_past_the_timeout_is_retried():
    with faulty(["hang"], hang_s=5.0) as fake:
        started = time.monotonic()
        with pytest.raises(MafineError, match="did not answer after 2 attempts"):
            run(fake, request(), timeout_s=0.3, max_attempts=2)
        assert time.monotonic() - started < 4.5  # the client gave up; it did not wait 5 s
        assert fake.fault_stats() == {"hang": 2}


def test_twenty_percent_faults_still_give_the_clean_answers():
    requests = [request(n) for n in range(40)]
    with FakeGemini(FakeSettings()) as clean:
        expected, _ = run(clean, *requests)
    with faulty(
        ["rate_limit", "server_error", "unavailable", "drop", "malformed", "empty", "safety"],
        rate=0.2,
        retry_delay_s=0.01,
    ) as fake:
        answers, gemini = run(fake, *requests)
        assert sum(fake.fault_stats().values()) > 0
    assert answers == expected
    assert gemini.retries["transient"] + gemini.retries["blocked"] > 0


@pytest.mark.parametrize(("kind", "reason"), [("safety", "SAFETY"), ("empty", "NO_CANDIDATES")])
def test_blocked_responses_are_asked_again_then_recorded(kind, reason):
    with faulty([kind]) as fake:
        (completion,), gemini = run(fake, request(), reask_blocked=2)
        assert fake.fault_stats() == {kind: 3}
    assert completion.text == "" and completion.finish_reason == reason
    assert gemini.retries["blocked"] == 2


def test_a_max_tokens_cut_is_kept_as_it_is():
    long = GenerationRequest(
        model="gemini-3.1-flash-lite",
        messages=(Message(role="user", content=QUESTION.format(question="What is 2 + 2?")),),
        sampling=Sampling(temperature=1.0, top_p=0.9, max_output_tokens=3),
        sample_index=0,
        seed=1,
    )
    with FakeGemini(FakeSettings()) as fake:
        (completion,), gemini = run(fake, long)
        assert fake.stats()["by_kind"]["generate"] == 1
    assert completion.finish_reason == "MAX_TOKENS" and completion.text
    assert gemini.retries["blocked"] == 0


def test_a_per_minute_429_waits_its_retry_delay_and_slows_down():
    with faulty(["rate_limit"], rate=0.5, retry_delay_s=0.2) as fake:
        started = time.monotonic()
        answers, gemini = run(fake, *(request(n) for n in range(12)), requests_per_minute=6000)
        waited = time.monotonic() - started
        limited = fake.fault_stats().get("rate_limit", 0)
    assert limited > 0 and len(answers) == 12
    assert waited >= 0.2  # at least one retry delay
    assert gemini.pacer.rate_limited_count == limited
    assert gemini.pacer.requests_per_minute < 6000


def test_a_per_day_quota_stops_the_provider():
    with FakeGemini(FakeSettings(daily_quota=True)) as fake:

        async def main():
            gemini = provider(fake)
            try:
                with pytest.raises(QuotaExhausted) as first:
                    await gemini.generate(request(1))
                sent = fake.stats()["by_kind"]["generate"]
                with pytest.raises(QuotaExhausted):
                    await gemini.generate(request(2))
                assert fake.stats()["by_kind"]["generate"] == sent == 1
                return str(first.value)
            finally:
                await gemini.aclose()

        message = asyncio.run(main())
    assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in message
    assert "journal" in message


def test_requests_are_paced_to_the_configured_rate():
    with FakeGemini(FakeSettings()) as fake:
        started = time.monotonic()
        answers, _ = run(fake, *(request(n) for n in range(25)), requests_per_minute=600)
        elapsed = time.monotonic() - started
        assert fake.fault_stats() == {}
    # 600/min with 3% headroom: a 1-second burst (~9.7), then ~9.7 a second
    assert len(answers) == 25 and elapsed >= 1.2


def test_the_fake_enforces_its_own_minute_window():
    with FakeGemini(FakeSettings(requests_per_minute=5, retry_delay_s=0.01)) as fake:
        with pytest.raises(MafineError, match="429"):
            run(fake, *(request(n) for n in range(8)), rate_limit_wait_s=0.5)
        assert fake.fault_stats()["over_limit"] >= 1


def test_a_refused_connection_is_retried_then_reported():
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    class Closed:
        url = f"http://127.0.0.1:{port}"

    with pytest.raises(MafineError, match="did not answer after 3 attempts") as caught:
        run(Closed(), request(1), max_attempts=3)
    assert KEY not in str(caught.value)


def test_a_429_naming_no_quota_is_waited_on_within_capacity_wait_s_then_stops_in_one_line():
    from mafine.providers import fake_connection

    with faulty(["rate_limit"]) as fake:  # on Vertex paths: the detail-less 429

        async def main():
            settings = GeminiSettings(
                tier="none", retry_initial_s=0.01, retry_max_s=0.02, capacity_wait_s=0.1
            )
            gemini = GeminiProvider(
                ProviderConfig(name="gemini", gemini=settings), fake_connection(fake.url)
            )
            try:
                await gemini.generate(request(3))
            finally:
                await gemini.aclose()

        with pytest.raises(MafineError) as raised:
            asyncio.run(main())
        assert fake.fault_stats()["rate_limit"] >= 2  # retried, then stopped
    line = str(raised.value)
    assert "naming no quota" in line and "capacity_wait_s" in line and "\n" not in line
    assert "Resource exhausted" in line  # Google's own words


def test_scattered_429s_do_not_slow_the_others():
    with faulty(["rate_limit"], rate=0.1, retry_delay_s=0.01) as fake:
        # The fake's 429 names a 600/min quota: paced at it, mafine has no reason to slow.
        answers, gemini = run(fake, *(request(n) for n in range(30)), requests_per_minute=600)
        limited = fake.fault_stats().get("rate_limit", 0)
    assert len(answers) == 30 and 0 < limited == gemini.pacer.rate_limited_count
    assert gemini.pacer.decreases == 0 and gemini.pacer.requests_per_minute == 600
