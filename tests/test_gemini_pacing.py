"""The pacer under 429s (a fake clock, no waiting): a scattered 429 slows no one, a named
lower quota or a window really exceeded does, and the pace climbs back additively."""

from __future__ import annotations

import asyncio

import pytest

from mafine.errors import MafineError
from mafine.providers import limits
from mafine.providers.gemini.connection import Connection
from mafine.providers.gemini.errors import rate_limited
from mafine.providers.limits import HttpError, Limits, Pacer, _classify_429, classify


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def started(pacer: Pacer, clock: Clock, count: int, spacing: float) -> None:
    """Record `count` attempts `spacing` seconds apart (as acquire would, without waiting)."""

    async def go() -> None:
        for _ in range(count):
            clock.now += spacing
            pacer._requests = None  # no real waiting: only the bookkeeping is under test
            await pacer.acquire()

    saved = pacer._requests
    asyncio.run(go())
    pacer._requests = saved


def test_a_scattered_429_backs_off_only_its_request():
    clock = Clock()
    pacer = Pacer(Limits(requests_per_minute=600), clock)
    started(pacer, clock, 95, 0.1)  # ~570/min for 9.5 s
    for _ in range(4):  # 4 of ~100 attempts: 4%, scattered
        assert pacer.rate_limited(1.0) is False
        clock.now += 2.0
    assert pacer.requests_per_minute == 600 and pacer.decreases == 0
    assert pacer._pause_until < clock.now  # nobody else paused


def test_429s_that_show_the_window_exceeded_slow_everyone_then_the_pace_climbs_back():
    clock = Clock()
    pacer = Pacer(Limits(requests_per_minute=600), clock)
    started(pacer, clock, 20, 0.1)
    slowed = [pacer.rate_limited(2.0) for _ in range(8)]  # 8 of 20 attempts: 40%
    assert slowed.count(True) == 1  # one burst, one decrease
    assert pacer.requests_per_minute == pytest.approx(600 * limits.DECREASE)
    assert pacer._pause_until == pytest.approx(clock.now + 2.0)
    paces = []
    for _ in range(40):  # answered requests, one a second: +2% of the limit each
        clock.now += 1.0
        pacer.answered()
        paces.append(pacer.requests_per_minute)
    assert paces == sorted(paces) and paces[0] == pytest.approx(420 + 12)
    assert paces[-1] == 600  # back at the limit, never above it


def test_a_429_naming_a_lower_per_minute_quota_lowers_the_pace_to_it():
    clock = Clock()
    pacer = Pacer(Limits(requests_per_minute=1000), clock)
    failure = _classify_429(
        HttpError(
            429,
            "You exceeded your current quota",
            (
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_paid_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                            "quotaValue": "300",
                        }
                    ],
                },
            ),
        )
    )
    assert failure.kind == "rate_limit" and failure.quota_rpm == 300
    assert pacer.rate_limited(1.0, failure.quota_rpm) is True
    assert pacer.requests_per_minute == 300
    for _ in range(10):
        clock.now += 5.0
        pacer.answered()
    assert pacer.requests_per_minute == 300  # Google's figure is the ceiling now


def test_an_unpaced_provider_paces_at_the_observed_rate_only_when_overloaded_and_lets_go():
    clock = Clock()
    pacer = Pacer(Limits(), clock)
    started(pacer, clock, 50, 0.1)  # 600/min observed
    assert pacer.rate_limited(1.0) is False and pacer.requests_per_minute is None
    for _ in range(20):
        pacer.rate_limited(1.0)
    assert pacer.requests_per_minute is not None and pacer.requests_per_minute < 600
    for _ in range(60):
        clock.now += 1.0
        pacer.answered()
    assert pacer.requests_per_minute is None  # unpaced again


def test_499_cancelled_is_transient():
    from google.genai import errors

    message = "The operation was cancelled."
    body = {"error": {"code": 499, "message": message, "status": "CANCELLED"}}
    assert classify(errors.APIError(499, body)).kind == "transient"


def test_a_429_without_details_is_bounded_and_may_be_a_spend_cap():
    vertex = Connection(vertex=True, project="p")
    api_key = Connection(api_key="AIza-secret-key")
    line = str(rate_limited("Resource exhausted.", None, 300.0, api_key))
    assert "capacity_wait_s" in line and "spend cap" in line and "waiting does not lift" in line
    assert "AIza-secret-key" not in line
    assert "shared capacity" in str(rate_limited("Resource exhausted.", None, 300.0, vertex))
    named = rate_limited("quota", "GenerateRequestsPerMinute (limit 600)", 900.0, api_key)
    assert "rate_limit_wait_s" in str(named) and "after 900s" in str(named)
    assert isinstance(named, MafineError)
