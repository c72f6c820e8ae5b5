"""Client-side limits for any HTTP provider: pacing (requests and tokens per minute) and
error classes. `providers/retry.py` turns both into one retry loop.

Pacing uses `aiolimiter` (a leaky bucket per limit: small, asyncio-native, well kept). What
this module adds is the policy:

* `Pacer.acquire` waits for a request slot and for its estimated input tokens, and for any
  pause an overload imposed on everyone. Buckets hold one second of traffic (at least one
  request), and pacing runs at `HEADROOM` of the limit, so no 60-second window exceeds it.
* `Pacer.rate_limited` hears of every 429 (the request that got it backs off on its own, in
  `retry.py`). The pace drops only as far as the evidence says (additive increase,
  multiplicative decrease):
  - a 429 naming a per-minute request quota whose value is below the pace: the pace becomes
    that value (Google said what the limit is);
  - 429s that are at least `OVERLOAD_SHARE` of the attempts of the last `EVIDENCE_S` seconds
    (the window really is exceeded, whatever the 429s say): everyone pauses for the delay and
    the pace drops to `DECREASE` of itself (at most once per `BURST_S`; down to `SLOWEST`);
  - anything else (a scattered 429: another client on the project, Vertex AI's shared
    capacity under load) changes nothing for the others.
  Each answered request then raises the pace by `STEP` of the limit, at most once per
  `RAISE_EVERY_S`, until it is back at the limit. Without a configured limit, the first
  decrease starts from the rate observed over the last minute.
* `classify` sorts an exception into `rate_limit` (wait and retry), `quota` (per-day or
  `limit: 0`: waiting will not help, stop), `transient` (5xx, 499 CANCELLED, timeouts,
  dropped connections, a malformed body: back off and retry) and `fatal` (400, 401, 403,
  404 and anything else: fail at once). It reads the HTTP status from google-genai's
  `APIError`, httpx's `HTTPStatusError` or aiohttp's `ClientResponseError`, and knows both
  transports' errors, so a provider on any of them shares it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiolimiter import AsyncLimiter

# mafine's conservative default pace per tier (requests and input tokens per minute), NOT
# Google's figures: the Gemini API's rate-limit page (https://ai.google.dev/gemini-api/docs/
# rate-limits, read 2026-12-06) no longer publishes per-tier numbers; it sends each project to
# its active limits in Google AI Studio and adds spend-based limits. These defaults are the
# lowest Flash/Flash-Lite figures that page listed when it still did; a 429 naming a lower
# per-minute quota lowers the pace to it (Pacer.rate_limited). Set requests_per_minute to
# the figure AI Studio shows for the project.
TIER_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "free": (10, 250_000),
    "tier1": (1_000, 1_000_000),
    "tier2": (2_000, 3_000_000),
    "tier3": (10_000, 8_000_000),
    "none": (None, None),
}
HEADROOM = 0.97
EVIDENCE_S = 10.0  # the window in which the share of 429s among attempts is judged
OVERLOAD_SHARE = 0.25  # 429s at least this share of recent attempts: the window is exceeded
OVERLOAD_MIN = 3  # ... and at least this many of them
DECREASE = 0.7
BURST_S = 5.0  # decreases closer together than this (or than the 429's delay) count once
SLOWEST = 1 / 16
STEP = 0.02  # additive increase per answered request, as a share of the limit
RAISE_EVERY_S = 1.0
# 499 CANCELLED arrives from Gemini under load ("The operation was cancelled.", reason
# backendError: google-gemini/gemini-cli#20309, 2026-02-25): retried like 500/503.
TRANSIENT_CODES = frozenset({408, 499, 500, 502, 503, 504})
_REQUEST_QUOTA = re.compile(r"requests?", re.IGNORECASE)
_PER_MINUTE = re.compile(r"per ?minute|PerMinute", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


def resolve_limits(settings: Any, use_tier: bool = True) -> Limits:
    """Explicit `requests_per_minute`/`tokens_per_minute` win; else the tier's (when asked)."""
    rpm, tpm = TIER_LIMITS[settings.tier] if use_tier else (None, None)
    return Limits(
        requests_per_minute=settings.requests_per_minute or rpm,
        tokens_per_minute=settings.tokens_per_minute or tpm,
    )


def _bucket(per_minute: float, burst_s: float) -> AsyncLimiter:
    """A leaky bucket pacing `per_minute` (times the headroom), holding `burst_s` seconds."""
    rate = per_minute * HEADROOM / 60.0  # per second
    capacity = max(1.0, rate * burst_s)
    return AsyncLimiter(capacity, capacity / rate)


class Pacer:
    """Shared by every request of one provider (one event loop)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._limit = limits.requests_per_minute  # the ceiling (lowered by a named quota)
        self._observed = False  # the ceiling is an observed rate, not a configured limit
        self._rpm = self._limit  # the pace now
        self._requests = _bucket(self._rpm, 1.0) if self._rpm else None
        self._unfilled: AsyncLimiter | None = None  # a swapped-in bucket, to fill before use
        self._tokens = _bucket(limits.tokens_per_minute, 10.0) if limits.tokens_per_minute else None
        self._pause_until = 0.0
        self._last_decrease = float("-inf")
        self._last_raise = float("-inf")
        self._starts: deque[float] = deque()
        self._limited: deque[float] = deque()
        self.attempts = 0
        self.rate_limited_count = 0
        self.decreases = 0

    @property
    def requests_per_minute(self) -> float | None:
        """The rate requests are paced at now (None: unpaced)."""
        return self._rpm

    async def acquire(self, tokens: int = 0) -> None:
        while True:
            pause = self._pause_until - self._clock()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            limiter = self._requests
            if limiter is not None:
                if self._unfilled is limiter:
                    # A new bucket starts empty, which would allow a burst on top of the
                    # traffic the old one just let through: start it full instead.
                    self._unfilled = None
                    await limiter.acquire(limiter.max_rate)
                await limiter.acquire()
                if limiter is not self._requests:  # the pace changed while waiting: queue again
                    continue
            if self._pause_until > self._clock():
                continue
            break
        if self._tokens is not None and tokens > 0:
            await self._tokens.acquire(min(float(tokens), self._tokens.max_rate))
        now = self._clock()
        self.attempts += 1
        self._starts.append(now)
        _trim(self._starts, now - 60.0)

    def rate_limited(self, delay: float, quota_rpm: float | None = None) -> bool:
        """A 429 (the request itself backs off); True when the pace dropped for everyone.

        `quota_rpm` is the value of a per-minute request quota the 429 named, if any."""
        now = self._clock()
        self.rate_limited_count += 1
        self._limited.append(now)
        _trim(self._limited, now - EVIDENCE_S)
        slowed = False
        if quota_rpm is not None and quota_rpm > 0:
            if self._limit is None or quota_rpm < self._limit:
                self._limit, self._observed = quota_rpm, False
            if self._rpm is None or quota_rpm < self._rpm:
                self._set_pace(quota_rpm)
                slowed = True
        if self._overloaded(now) and now - self._last_decrease >= max(delay, BURST_S):
            if self._limit is None:
                self._limit, self._observed = self._observed_rpm(now), True
            current = self._rpm if self._rpm is not None else self._limit
            self._set_pace(max(current * DECREASE, self._limit * SLOWEST))
            self._pause_until = max(self._pause_until, now + delay)
            self._last_decrease = now
            self.decreases += 1
            slowed = True
        return slowed

    def answered(self) -> None:
        """A request was answered: climb back towards the limit, additively."""
        if self._rpm is None or self._limit is None or self._rpm >= self._limit:
            return
        now = self._clock()
        if now - self._last_raise < RAISE_EVERY_S or now - self._last_decrease < RAISE_EVERY_S:
            return
        self._last_raise = now
        raised = min(self._limit, self._rpm + STEP * self._limit)
        if raised >= self._limit and self._observed:
            self._limit = self._rpm = self._requests = None  # back to unpaced
            self._observed = False
            return
        self._set_pace(raised)

    def _set_pace(self, rpm: float) -> None:
        self._rpm = rpm
        self._requests = _bucket(rpm, 1.0)
        self._unfilled = self._requests

    def _overloaded(self, now: float) -> bool:
        """Whether recent 429s are too many to be scattered: the window is really exceeded."""
        attempts = sum(1 for t in self._starts if t >= now - EVIDENCE_S)
        limited = len(self._limited)
        return limited >= OVERLOAD_MIN and limited >= OVERLOAD_SHARE * max(attempts, 1)

    def _observed_rpm(self, now: float) -> float:
        """Requests per minute started over the last minute (or since the first request)."""
        recent = [t for t in self._starts if t >= now - 60.0]
        if not recent:
            return 1.0
        elapsed = max(now - recent[0], 1.0)
        return max(len(recent) * 60.0 / elapsed, 1.0)


def _trim(times: deque[float], before: float) -> None:
    while times and times[0] < before:
        times.popleft()


# ---- error classes ---------------------------------------------------------------------
Kind = Literal["rate_limit", "quota", "transient", "fatal"]


@dataclass(frozen=True)
class Failure:
    kind: Kind
    delay: float | None = None  # the server's retry hint, seconds
    quota: str | None = None  # which quota a 429 names (None: a 429 without details)
    quota_rpm: float | None = None  # the value of a per-minute request quota it names
    reason: str | None = None  # the google.rpc.ErrorInfo reason, e.g. API_KEY_INVALID


@dataclass(frozen=True)
class HttpError:
    """What classification needs from an HTTP error, whichever client raised it."""

    code: int
    message: str = ""
    details: tuple[dict[str, Any], ...] = ()
    retry_after: float | None = None  # a Retry-After header, seconds


_PER_DAY = re.compile(r"per ?day|PerDay|daily", re.IGNORECASE)
_LIMIT_ZERO = re.compile(r"limit: ?0(?![\d.])")
_RETRY_IN = re.compile(r"retry in ([\d.]+)\s*(ms|s)\b", re.IGNORECASE)
_METRIC_IN_MESSAGE = re.compile(r"Quota exceeded for metric: ?([^\s,]+), limit: ?([\d.]+)")
_DURATION = re.compile(r"^\s*([\d.]+)\s*s?\s*$")  # "17s"; a Retry-After header: "17"
# Transport errors by class name, so neither aiohttp nor httpx2 needs importing to know them:
# httpx's TransportError covers connect/read/write errors, timeouts and protocol errors;
# aiohttp's ClientConnectionError covers ServerDisconnectedError, ClientConnectorError and
# ClientOSError, ClientPayloadError a body cut short, ServerTimeoutError a read timeout;
# google-auth's TransportError a network failure while refreshing credentials.
TRANSPORT_ERRORS = frozenset(
    {"TransportError", "TimeoutException", "TimeoutError", "ConnectionError", "ReadError",
     "ClientConnectionError", "ClientPayloadError", "ServerTimeoutError",
     "APIConnectionError"}  # openai's (APITimeoutError is one)
)  # fmt: skip
# ... except a TLS certificate or configuration problem, which no retry fixes.
NOT_TRANSIENT = frozenset({"ClientSSLError", "SSLError", "ClientConnectorCertificateError"})


def classify(exc: BaseException) -> Failure:
    """What to do about an exception raised by an HTTP client (google-genai, httpx, aiohttp)."""
    error = http_error(exc)
    if error is not None:
        if error.code == 429:
            return _classify_429(error)
        if error.code in TRANSIENT_CODES:
            return Failure("transient")
        return Failure("fatal", reason=error_reason(error.details))
    if is_transport_error(exc) or isinstance(exc, json.JSONDecodeError):
        return Failure("transient")
    return Failure("fatal")


def http_error(exc: BaseException) -> HttpError | None:
    """The HTTP status of an error response, or None for anything else."""
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        return HttpError(int(exc.code), str(exc.message or ""), _error_details(exc.details))
    names = {cls.__name__ for cls in type(exc).__mro__}
    response = getattr(exc, "response", None)
    if names & {"HTTPStatusError", "APIStatusError"} and response is not None:  # httpx, openai
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"message": response.text}}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        return HttpError(
            response.status_code,
            str(message),
            _error_details(body),
            parse_duration(response.headers.get("retry-after")),
        )
    if "ClientResponseError" in names:  # aiohttp
        headers = getattr(exc, "headers", None) or {}
        return HttpError(
            int(getattr(exc, "status", 0)),
            str(getattr(exc, "message", "")),
            retry_after=parse_duration(headers.get("Retry-After")),
        )
    return None


_HTTP_FIXES = {
    401: "check the API key it reads",
    403: "check the API key it reads and what the key may do",
    404: "check provider.model and the service's URL",
    429: "its rate limit outlasted the retries: lower its requests_per_minute, or rerun later",
}


def unanswered(provider: str, exc: BaseException) -> str | None:
    """The one line for an HTTP or transport error that a provider gave up on (after its
    retries); None for anything else (not the service's doing). What a provider that does not
    translate its client's errors itself (as gemini does) gets for free."""
    resume = "requests already answered are kept: rerun to resume"
    if is_transport_error(exc):
        detail = str(exc).strip() or "no detail"
        return (
            f"provider {provider}: the service could not be reached ({type(exc).__name__}: "
            f"{detail}); check its URL and the network; {resume}"
        )
    error = http_error(exc)
    if error is None:
        return None
    fix = _HTTP_FIXES.get(error.code, "the service kept failing: rerun later")
    message = f": {_first_line(error.message)}" if error.message.strip() else ""
    return f"provider {provider}: the service answered HTTP {error.code}{message}; {fix}; {resume}"


def error_reason(details: tuple[dict[str, Any], ...]) -> str | None:
    """The `reason` of a google.rpc.ErrorInfo detail (API_KEY_INVALID, ...), if any."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("ErrorInfo") and detail.get("reason"):
            return str(detail["reason"])
    return None


def _classify_429(error: HttpError) -> Failure:
    message = error.message
    delay = error.retry_after
    quota_ids: list[str] = []
    quota_rpm: list[float] = []
    for detail in error.details:
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo"):
            delay = parse_duration(detail.get("retryDelay"))
        elif kind.endswith("QuotaFailure"):
            for violation in detail.get("violations") or []:
                if isinstance(violation, dict):
                    name = violation.get("quotaId") or violation.get("quotaMetric")
                    value = violation.get("quotaValue")
                    if name:
                        quota_ids.append(f"{name} (limit {value})" if value else str(name))
                        if str(value) == "0":
                            quota_ids[-1] += " limit: 0"
                        rpm = _per_minute_requests(violation, value)
                        if rpm is not None:
                            quota_rpm.append(rpm)
    if delay is None:
        match = _RETRY_IN.search(message)
        if match:
            delay = float(match.group(1)) / (1000.0 if match.group(2).lower() == "ms" else 1.0)
    hard = [q for q in quota_ids if _PER_DAY.search(q) or _LIMIT_ZERO.search(q)]
    # The message's "limit: 0" counts even when the violations carry no quotaValue (a free
    # tier without access to a model: continuedev/continue#10066 shows such a 429).
    in_message = _LIMIT_ZERO.search(message) or (not quota_ids and _PER_DAY.search(message))
    if hard or in_message:
        named = "; ".join(hard) if hard else _first_line(message)
        return Failure("quota", delay, named)
    if not quota_ids:  # no details, but the message may name the metric (and its limit)
        match = _METRIC_IN_MESSAGE.search(message)
        if match:
            quota_ids.append(f"{match.group(1)} (limit {match.group(2)})")
    return Failure(
        "rate_limit", delay, "; ".join(quota_ids) or None, quota_rpm=min(quota_rpm, default=None)
    )


def _per_minute_requests(violation: dict[str, Any], value: Any) -> float | None:
    """The value of a QuotaFailure violation that limits requests per minute, else None."""
    names = f"{violation.get('quotaId') or ''} {violation.get('quotaMetric') or ''}"
    if not (_PER_MINUTE.search(names) and _REQUEST_QUOTA.search(names)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _error_details(details: Any) -> tuple[dict[str, Any], ...]:
    """The `details` list of a google.rpc.Status error body."""
    if isinstance(details, list) and len(details) == 1:
        details = details[0]
    if not isinstance(details, dict):
        return ()
    error = details.get("error", details)
    found = error.get("details") if isinstance(error, dict) else None
    return tuple(d for d in found or [] if isinstance(d, dict))


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON ("17s", "0.25s") in seconds, or None."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1))
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    quota = [line for line in lines if "quota" in line.lower() and "metric" in line.lower()]
    return (quota or lines or ["(no message)"])[0]


def is_transport_error(exc: BaseException) -> bool:
    """A timeout, a refused or dropped connection, or a body cut short, on any transport."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & TRANSPORT_ERRORS) and not names & NOT_TRANSIENT
