"""One retry loop for any HTTP provider: paced attempts, retried by error class.

A provider hands `Retrier.run` one attempt (an async call) and gets its result, or the last
exception once retrying is over. What happens in between depends on `limits.classify`:

* `rate_limit` (a per-minute 429): the request that got it waits the delay the error carries
  (plus up to 10%), or, when it carries none (Vertex AI's 429s: "Resource exhausted. Please
  try again later."), backs off exponentially with jitter; the others slow down only when
  the evidence says so (`Pacer.rate_limited`). A 429 naming a quota stops once one request
  has waited `rate_limit_wait_s` in all; a 429 naming none (shared capacity, or a spend cap
  that waiting does not lift) once it has waited `capacity_wait_s`.
* `transient` (5xx, timeouts, dropped connections, malformed bodies): back off exponentially
  with jitter, `max_attempts` tries at most.
* `quota` and `fatal`: no retry.

An attempt may raise `AskAgain` (a well-formed answer the provider wants asked again, e.g. a
response without text): it is asked again at once, still paced; the provider bounds how
often. Control-plane calls (synchronous, unpaced) go through `Retrier.call`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, stop_never

from mafine.providers.limits import Failure, Pacer, classify

T = TypeVar("T")
RETRY_ALL = frozenset({"transient", "rate_limit"})


class AskAgain(Exception):
    """Raised by an attempt whose (well-formed) answer should be asked again."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry; `GeminiSettings` has these fields, as may any other
    provider's settings."""

    max_attempts: int = 8
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    rate_limit_wait_s: float = 900.0
    capacity_wait_s: float = 300.0

    @classmethod
    def of(cls, settings: Any) -> RetryPolicy:
        """The policy in a settings object that has these fields (`capacity_wait_s` is
        optional)."""
        return cls(
            max_attempts=settings.max_attempts,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            rate_limit_wait_s=settings.rate_limit_wait_s,
            capacity_wait_s=getattr(settings, "capacity_wait_s", cls.capacity_wait_s),
        )

    def rate_limit_budget(self, failure: Failure) -> float:
        """How long one request may wait in all on 429s like this one."""
        return self.rate_limit_wait_s if failure.quota else self.capacity_wait_s

    def backoff(self, attempt: int) -> float:
        """Exponential backoff (attempt 1, 2, ...) with full jitter in its upper half, capped."""
        base = min(self.retry_max_s, self.retry_initial_s * 2 ** (attempt - 1))
        return base * (0.5 + 0.5 * random.random())


@dataclass
class Tries:
    """One request's retry budget, spent by error class."""

    transient: int = 0
    rate_limits: int = 0
    rate_limited_s: float = 0.0
    reasks: int = 0
    last: Failure | None = None
    delay: float = 0.0  # the next wait on a 429


@dataclass
class Retrier:
    """Shared by every request of one provider; counts retries by class."""

    policy: RetryPolicy
    pacer: Pacer
    label: str = "provider"
    notice: Callable[[str, str], None] = lambda kind, text: None
    counts: dict[str, int] = field(
        default_factory=lambda: {"rate_limit": 0, "transient": 0, "blocked": 0}
    )

    async def run(self, attempt: Callable[[], Awaitable[T]], tries: Tries, tokens: int = 0) -> T:
        """The attempt's result, retried by error class; else the last exception."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: self._should_retry(exc, tries)),
            wait=lambda state: self._wait(tries),
            stop=stop_never,
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                await self.pacer.acquire(tokens)
                result = await attempt()
        self.pacer.answered()
        return result

    def call(self, call: Callable[[], T], retry_transient: bool = True) -> T:
        """A synchronous control-plane call, retried on transient errors and 429s."""
        return Retrying(**self._control(RETRY_ALL if retry_transient else frozenset()))(call)

    async def call_async(
        self, call: Callable[[], Awaitable[T]], retry: bool | frozenset[str] = True
    ) -> T:
        """An asynchronous control-plane call, retried as `call` retries; `retry` may name
        the error classes to retry instead (e.g. only `rate_limit`)."""
        kinds = retry if isinstance(retry, frozenset) else (RETRY_ALL if retry else frozenset())
        async for try_ in AsyncRetrying(**self._control(kinds)):
            with try_:
                result = await call()
        return result

    def _control(self, kinds: frozenset[str]) -> dict[str, Any]:
        """Tenacity's settings for a control-plane call: `max_attempts` tries at most."""
        return {
            "retry": retry_if_exception(lambda exc: classify(exc).kind in kinds),
            "wait": lambda state: self.policy.backoff(state.attempt_number),
            "stop": stop_after_attempt(self.policy.max_attempts),
            "reraise": True,
        }

    def _should_retry(self, exc: BaseException, tries: Tries) -> bool:
        if isinstance(exc, AskAgain):
            tries.last = None
            return True
        failure = classify(exc)
        tries.last = failure
        if failure.kind == "rate_limit":
            tries.rate_limits += 1
            if failure.delay is not None:
                tries.delay = failure.delay * (1.0 + 0.1 * random.random())
            else:
                tries.delay = self.policy.backoff(tries.rate_limits)
            return tries.rate_limited_s + tries.delay <= self.policy.rate_limit_budget(failure)
        if failure.kind == "transient":
            tries.transient += 1
            return tries.transient < self.policy.max_attempts
        return False

    def _wait(self, tries: Tries) -> float:
        failure = tries.last
        if failure is None:  # asked again at once (still paced)
            self.counts["blocked"] += 1
            return 0.0
        if failure.kind == "rate_limit":
            self.counts["rate_limit"] += 1
            delay = tries.delay
            slowed = self.pacer.rate_limited(delay, failure.quota_rpm)
            tries.rate_limited_s += delay
            named = f", {failure.quota}" if failure.quota else ", no quota named"
            pace = self.pacer.requests_per_minute
            effect = (
                f"everyone pauses {delay:.1f}s and slows to {pace or 0:.0f} requests/min"
                if slowed
                else f"retrying that request in {delay:.1f}s"
                + (f" (pace unchanged: {pace:.0f} requests/min)" if pace else "")
            )
            self.notice("rate_limit", f"{self.label}: rate limited (429{named}); {effect}")
            return delay
        self.counts["transient"] += 1
        return self.policy.backoff(tries.transient)
