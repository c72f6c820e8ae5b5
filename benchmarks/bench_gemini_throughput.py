"""Gemini provider throughput: 200 ms per request, a 600 requests/min limit, against the fake.

The fake Gemini adds 200 ms to every generation and refuses (429) anything past 600 requests
in a trailing minute; the provider paces itself with `requests_per_minute: 600`. Figures: the
requests per minute achieved as a share of the limit (target at least 90%), the 429s the
limit produced (target 0), and the speed-up over sending the same requests one at a time.
"""

from __future__ import annotations

import asyncio
import sys
import time
import warnings

from mafine.artifacts import Message
from mafine.config import FakeSettings, GeminiSettings, ProviderConfig
from mafine.prompts import QUESTION
from mafine.providers.base import GenerationRequest, Sampling
from mafine.providers.fake_gemini import FakeGemini
from mafine.providers.gemini import Connection, GeminiProvider

LATENCY_S = 0.2
LIMIT_RPM = 600
CONCURRENT = 400  # requests in the paced run (about 40 s)
SEQUENTIAL = 100  # requests sent one at a time (about 20 s)
IN_FLIGHT = 16

warnings.filterwarnings("ignore")


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
    slots = asyncio.Semaphore(in_flight)
    starts: list[float] = []

    async def one(number: int) -> None:
        async with slots:
            starts.append(time.monotonic())
            await provider.generate(request(offset + number))

    try:
        started = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(count)))
        elapsed = time.monotonic() - started
    finally:
        await provider.aclose()
    return elapsed, provider.retries["rate_limit"]


def main() -> None:
    settings = FakeSettings(latency_s=LATENCY_S, requests_per_minute=LIMIT_RPM)
    rows = []
    with FakeGemini(settings) as fake:
        # warm up the client and the fake's threads (not measured)
        asyncio.run(send(fake, 4, 4, None, 10**6))
        fake.reset_stats()
        paced, paced_429 = asyncio.run(send(fake, CONCURRENT, IN_FLIGHT, LIMIT_RPM, 0))
        refused = fake.fault_stats().get("over_limit", 0)
    with FakeGemini(FakeSettings(latency_s=LATENCY_S)) as fake:
        one_at_a_time, _ = asyncio.run(send(fake, SEQUENTIAL, 1, None, 10**5))
        unlimited, _ = asyncio.run(send(fake, CONCURRENT, IN_FLIGHT, None, 2 * 10**5))
    paced_rpm = CONCURRENT / paced * 60
    sequential_rpm = SEQUENTIAL / one_at_a_time * 60
    unlimited_rpm = CONCURRENT / unlimited * 60
    rows.append(
        (
            f"paced at {LIMIT_RPM}/min, {IN_FLIGHT} in flight",
            CONCURRENT,
            paced,
            paced_rpm,
            f"{100 * paced_rpm / LIMIT_RPM:.1f}%",
        )
    )
    rows.append(("one at a time", SEQUENTIAL, one_at_a_time, sequential_rpm, ""))
    reference = f"no limit, {IN_FLIGHT} in flight (reference)"
    rows.append((reference, CONCURRENT, unlimited, unlimited_rpm, ""))
    latency_ms = LATENCY_S * 1000
    print(f"Fake Gemini with {latency_ms:.0f} ms per request; limit {LIMIT_RPM} requests/min.")
    print()
    print("| run | requests | seconds | requests/min | share of the limit |")
    print("|---|---:|---:|---:|---:|")
    for name, count, seconds, rpm, share in rows:
        print(f"| {name} | {count} | {seconds:.1f} | {rpm:.0f} | {share} |")
    print()
    print(
        f"- achieved {paced_rpm:.0f} requests/min = **{100 * paced_rpm / LIMIT_RPM:.1f}% of the "
        f"limit** (target >= 90%); pacing aims at 97% of the limit after a one-second "
        "burst, so no minute exceeds it"
    )
    print(f"- 429s from the fake's own {LIMIT_RPM}/min window: {refused} (client saw {paced_429})")
    print(
        f"- speed-up over one at a time: **{paced_rpm / sequential_rpm:.2f}x** within the "
        f"limit (one at a time is bound by the {LATENCY_S * 1000:.0f} ms latency to "
        f"{60 / LATENCY_S:.0f}/min); without a limit {IN_FLIGHT} in flight reach "
        f"{unlimited_rpm / sequential_rpm:.1f}x"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
