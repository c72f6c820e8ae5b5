"""Gemini provider throughput: 200 ms per request, a 600 requests/min limit, against the fake.

The fake Gemini adds 200 ms to every generation and refuses (429) any attempt past 600 in a
trailing minute; the provider paces itself with `requests_per_minute: 600`, 16 requests in
flight. Each run is measured while there is work left to start (the drain of the last
retries is excluded): attempts sent per minute as a share of the limit (every attempt,
refused or not, counts against the fake's window as against Google's), the answered
requests per minute, and the 429s the fake's own window produced (target 0). Targets:
>= 0.90 of the limit clean and with 5% random 429s, >= 0.95 with 20% random 5xx and dropped
connections. One-at-a-time and unlimited runs give the reference speeds.
"""

from __future__ import annotations

import asyncio
import sys
import time
import warnings
from dataclasses import dataclass

from mafine.artifacts import Message
from mafine.config import FakeSettings, GeminiSettings, ProviderConfig
from mafine.prompts import QUESTION
from mafine.providers.base import GenerationRequest, Sampling
from mafine.providers.fake_gemini import FakeGemini
from mafine.providers.gemini import Connection, GeminiProvider

LATENCY_S = 0.2
LIMIT_RPM = 600
PACED = 400  # requests in a paced run (about 40 s)
SEQUENTIAL = 100  # requests sent one at a time (about 20 s)
IN_FLIGHT = 16

warnings.filterwarnings("ignore")


@dataclass(frozen=True)
class Scenario:
    name: str
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ()
    target: float | None = None


SCENARIOS = (
    Scenario("clean", target=0.90),
    Scenario("5% random 429s", 0.05, ("rate_limit",), target=0.90),
    Scenario("20% random 5xx and drops", 0.20, ("server_error", "unavailable", "drop"), 0.95),
    Scenario("20% faults: 429, 500, 503, drops", 0.20,
             ("rate_limit", "server_error", "unavailable", "drop")),
)  # fmt: skip


@dataclass(frozen=True)
class Result:
    seconds: float  # until the last request started
    attempts: int  # sent until then
    answered: int  # answered until then
    total_seconds: float  # until the last answer
    pace_at_end: float | None
    rate_limited: int


def request(number: int) -> GenerationRequest:
    question = QUESTION.format(question=f"What is {number} + {number % 7}?")
    return GenerationRequest(
        model="gemini-3.1-flash-lite",
        messages=(Message(role="user", content=question),),
        sampling=Sampling(temperature=1.0, top_p=0.9, max_output_tokens=256),
        sample_index=0,
        seed=number,
    )


async def send(fake: FakeGemini, count: int, in_flight: int, rpm: float | None, offset: int):
    settings = GeminiSettings(tier="none", requests_per_minute=rpm)
    provider = GeminiProvider(
        ProviderConfig(name="gemini", gemini=settings, max_concurrency=in_flight),
        Connection(api_key="bench", base_url=fake.url),
    )
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(count):
        queue.put_nowait(number)
    answered = 0
    snapshot: list[tuple[float, int, int]] = []

    async def worker() -> None:
        nonlocal answered
        while not queue.empty():
            number = queue.get_nowait()
            if queue.empty():  # the last request starts: the backlog ends here
                snapshot.append((time.monotonic(), provider.pacer.attempts, answered))
            await provider.generate(request(offset + number))
            answered += 1

    try:
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        total = time.monotonic() - started
    finally:
        await provider.aclose()
    at, attempts, done = snapshot[0]
    return Result(
        at - started,
        attempts,
        done,
        total,
        provider.pacer.requests_per_minute,
        provider.pacer.rate_limited_count,
    )


def main() -> None:
    rows = []
    for scenario in SCENARIOS:
        settings = FakeSettings(
            latency_s=LATENCY_S,
            requests_per_minute=LIMIT_RPM,
            fault_rate=scenario.fault_rate,
            fault_kinds=list(scenario.fault_kinds or ["rate_limit"]),
        )
        with FakeGemini(settings) as fake:
            asyncio.run(send(fake, 4, 4, None, 10**6))  # warm up (not measured)
            fake.reset_stats()
            result = asyncio.run(send(fake, PACED, IN_FLIGHT, LIMIT_RPM, 0))
            refused = fake.fault_stats().get("over_limit", 0)
        rows.append((scenario, result, refused))
    with FakeGemini(FakeSettings(latency_s=LATENCY_S)) as fake:
        one = asyncio.run(send(fake, SEQUENTIAL, 1, None, 10**5))
        unlimited = asyncio.run(send(fake, PACED, IN_FLIGHT, None, 2 * 10**5))
    print(
        f"Fake Gemini with {LATENCY_S * 1000:.0f} ms per request; limit {LIMIT_RPM} requests/min "
        f"in the fake's trailing minute; mafine paced at {LIMIT_RPM}/min, {IN_FLIGHT} in flight, "
        f"{PACED} requests a run."
    )
    print()
    print(
        "| faults | attempts/min | share of the limit | target | answered/min "
        "| over the fake's window | client 429s | pace at the end | all answered after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for scenario, result, refused in rows:
        attempts_rpm = result.attempts / result.seconds * 60
        share = attempts_rpm / LIMIT_RPM
        target = f">= {scenario.target:.2f}" if scenario.target else ""
        met = "" if scenario.target is None else (" ok" if share >= scenario.target else " MISSED")
        pace = f"{result.pace_at_end:.0f}" if result.pace_at_end else "unpaced"
        print(
            f"| {scenario.name} | {attempts_rpm:.0f} | **{share:.3f}**{met} | {target} "
            f"| {result.answered / result.seconds * 60:.0f} | {refused} | {result.rate_limited} "
            f"| {pace} | {result.total_seconds:.1f} s |"
        )
    sequential_rpm = SEQUENTIAL / one.total_seconds * 60
    unlimited_rpm = PACED / unlimited.total_seconds * 60
    print()
    print(
        "- shares count every attempt sent while requests were waiting to start (retries "
        "included: the fake's window, like Google's, counts them); pacing aims at 97% of the "
        "limit after a one-second burst, so no minute exceeds it"
    )
    print(
        f"- references without a limit: one at a time {sequential_rpm:.0f}/min (bound by the "
        f"{LATENCY_S * 1000:.0f} ms latency), {IN_FLIGHT} in flight {unlimited_rpm:.0f}/min"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
