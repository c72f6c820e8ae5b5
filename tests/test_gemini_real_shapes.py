"""Gemini as it really behaves (issue 11), through the real google-genai client against the
fake, on both transports: bad keys, detail-less Vertex 429s, thinking, regions."""

from __future__ import annotations

import asyncio

import pytest

from mafine.artifacts import Message
from mafine.config import FakeSettings, GeminiSettings, ProviderConfig
from mafine.errors import MafineError
from mafine.prompts import QUESTION
from mafine.providers import fake_connection
from mafine.providers.base import GenerationRequest, Sampling
from mafine.providers.fake_gemini import FakeGemini
from mafine.providers.gemini import Connection, GeminiProvider, generation
from mafine.providers.limits import Limits, Pacer, classify
from mafine.providers.retry import Retrier, RetryPolicy, Tries
from tests.gemini_transports import transport  # noqa: F401  (a fixture)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore:Inheritance class:DeprecationWarning"),  # aiohttp
    pytest.mark.usefixtures("transport"),
]

KEY = "AIzaSy-real-shapes-test-key"
FAST = {"tier": "none", "retry_initial_s": 0.01, "retry_max_s": 0.05}


def request(model: str = "gemini-3.1-flash-lite", max_tokens: int = 256) -> GenerationRequest:
    return GenerationRequest(
        model=model,
        messages=(Message(role="user", content=QUESTION.format(question="What is 2 + 7?")),),
        sampling=Sampling(temperature=1.0, top_p=0.9, max_output_tokens=max_tokens),
        sample_index=0,
        seed=3,
    )


def provider(connection: Connection, model: str = "gemini-3.1-flash-lite", **gemini):
    config = ProviderConfig(
        name="gemini", model=model, timeout_s=10.0, gemini=GeminiSettings(**{**FAST, **gemini})
    )
    return GeminiProvider(config, connection, pace_by_tier=False)


def generate(connection: Connection, *requests: GenerationRequest, **options):
    async def main():
        gemini = provider(connection, **options)
        try:
            return [await gemini.generate(r) for r in requests], gemini
        finally:
            await gemini.aclose()

    return asyncio.run(main())


def vertex(fake: FakeGemini, location: str = "global") -> Connection:
    connection = fake_connection(fake.url)
    return Connection(**{**connection.__dict__, "location": location})


def test_a_bad_api_key_gets_the_credentials_message():
    fake = FakeGemini(FakeSettings(api_key="the-right-key"))
    with fake, pytest.raises(MafineError) as caught:
        generate(Connection(api_key=KEY, base_url=fake.url), request())
    message = str(caught.value)
    assert "refused the credentials" in message and "API_KEY_INVALID" in message
    assert "GEMINI_API_KEY" in message and KEY not in message


def test_detailless_vertex_429s_are_retried_to_an_answer():
    settings = FakeSettings(fault_rate=0.5, fault_kinds=["rate_limit"], error_rate=0.0)
    with FakeGemini(settings) as fake:
        # (A high explicit rate: the slow-down after each 429 then stays fast.)
        requests = [request() for _ in range(6)]
        completions, gemini = generate(vertex(fake), *requests, requests_per_minute=60_000)
        injected = fake.fault_stats().get("rate_limit", 0)
    assert injected >= 1 and gemini.retries["rate_limit"] == injected
    assert all(c.finish_reason == "STOP" for c in completions)


def test_detailless_429_waits_grow_and_are_jittered():
    from google.genai import errors

    message = (
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
    )
    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    exc = errors.ClientError(429, body)
    assert classify(exc).kind == "rate_limit" and classify(exc).delay is None
    retrier = Retrier(RetryPolicy(retry_initial_s=1.0, retry_max_s=64.0), Pacer(Limits()))
    tries = Tries()
    delays = []
    for _ in range(6):
        assert retrier._should_retry(exc, tries)
        delays.append(tries.delay)
        tries.rate_limited_s += tries.delay
    for n, delay in enumerate(delays, start=1):
        assert 2 ** (n - 1) * 0.5 <= delay <= 2 ** (n - 1), delays
    assert len(set(delays)) == len(delays)


def test_a_limit_zero_429_without_quota_value_is_a_quota():
    from google.genai import errors

    # The shape of continuedev/continue#10066: the limit in the text, violations without it.
    message = (
        "You exceeded your current quota, please check your plan and billing details.\n"
        "* Quota exceeded for metric: generativelanguage.googleapis.com/"
        "generate_content_free_tier_requests, limit: 0, model: gemini-3.5-flash\n"
        "Please retry in 7.9s."
    )
    violation = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    }
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}]
    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    body["error"]["details"] = details
    assert classify(errors.ClientError(429, body)).kind == "quota"


def test_thinking_is_off_by_default_and_counted_when_on():
    with FakeGemini(FakeSettings(error_rate=0.0)) as fake:
        (lowest,), _ = generate(vertex(fake), request())
        (high,), _ = generate(vertex(fake), request(), thinking_level="high")
        (default,), _ = generate(vertex(fake), request(), thinking_level="model_default")
    assert lowest.usage.thoughts_tokens == 0
    assert high.usage.thoughts_tokens > 0 and default.usage.thoughts_tokens > 0
    assert high.text == lowest.text  # thinking changes the tokens, not the fake's answer
    assert high.usage.total_tokens == (
        high.usage.prompt_tokens + high.usage.output_tokens + high.usage.thoughts_tokens
    )


def test_thinking_that_eats_the_cap_leaves_no_text_and_is_warned_about(capsys):
    with FakeGemini(FakeSettings(error_rate=0.0)) as fake:
        requests = [request(max_tokens=100) for _ in range(25)]
        completions, gemini = generate(vertex(fake), *requests, thinking_level="high")
    assert all(c.finish_reason == "MAX_TOKENS" and c.text == "" for c in completions)
    assert completions[0].usage.thoughts_tokens == 100
    assert gemini.finishes.share == 1.0 and gemini.retries["blocked"] == 0
    out = capsys.readouterr().out
    assert "100% of 20 responses ended at sampling.max_output_tokens" in out
    assert "25 of 25 responses (100%) ended at sampling.max_output_tokens, 25 of them" in out


@pytest.mark.parametrize(
    ("model", "settings", "expected"),
    [
        ("gemini-3.5-flash-lite", {}, {"thinkingLevel": "MINIMAL"}),
        ("gemini-3.1-pro-preview", {}, {"thinkingLevel": "LOW"}),
        ("gemini-3.5-flash", {"thinking_level": "medium"}, {"thinkingLevel": "MEDIUM"}),
        ("gemini-2.5-flash", {}, {"thinkingBudget": 0}),
        ("gemini-2.5-pro", {}, {"thinkingBudget": 128}),
        ("gemini-2.5-flash", {"thinking_budget": -1}, {"thinkingBudget": -1}),
        ("gemini-3.5-flash", {"thinking_level": "model_default"}, None),
        ("some-other-model", {}, None),
    ],
)
def test_the_thinking_setting_per_family(model, settings, expected):
    assert generation.thinking(model, GeminiSettings(**settings)) == expected


def test_the_fake_refuses_what_gemini_refuses_in_thinking():
    with FakeGemini(FakeSettings(models=["gemini-2.5-pro"])) as fake:
        with pytest.raises(MafineError, match="Budget 0 is invalid"):
            generate(
                vertex(fake),
                request("gemini-2.5-pro"),
                model="gemini-2.5-pro",
                thinking_budget=0,
            )
        (completion,), _ = generate(vertex(fake), request("gemini-2.5-pro"), model="gemini-2.5-pro")
    assert completion.finish_reason == "STOP"


def test_a_gemini_3_model_in_a_single_region_is_a_region_404():
    with FakeGemini(FakeSettings(regional_serving=True)) as fake:
        with pytest.raises(MafineError) as regional:
            generate(vertex(fake, "us-central1"), request())
        (served,), _ = generate(vertex(fake, "global"), request())
        with pytest.raises(MafineError) as unknown:
            generate(vertex(fake, "global"), request("gemini-3.5-flash-nonexistent"))
    assert "region is the problem" in str(regional.value)
    assert "provider.gemini.location=global" in str(regional.value)
    assert served.finish_reason == "STOP"
    assert "model is the problem" in str(unknown.value)


def test_tuned_models_are_called_in_their_own_region():
    with FakeGemini(FakeSettings(regional_serving=True)) as fake:
        gemini = provider(vertex(fake, "global"))
        tuned = "projects/fake-project/locations/us-central1/endpoints/7"
        assert gemini.client_for(tuned) is gemini.client_for_location("us-central1")
        assert gemini.client_for("gemini-3.1-flash-lite") is gemini.client
        assert gemini.client_for(tuned) is not gemini.client
        asyncio.run(gemini.aclose())
