"""Fault injection and latency for generation requests: what an overloaded, rate-limited or
flaky Gemini answers instead of a reply.

Every draw is deterministic: a pure function of (fault_seed, request path and body, how many
times that body arrived before), so a run with faults is reproducible and a retry of the
same request can succeed where its first attempt failed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mafine.providers.fake_gemini.routing import Reply, Request
from mafine.providers.fake_gemini.settings import FAULT_KINDS, FakeSettings
from mafine.seeds import unit_interval


class Faults:
    """Decides, per generation attempt, whether to answer with a fault (and which)."""

    def __init__(self, settings: Callable[[], FakeSettings], stopping: threading.Event) -> None:
        self._settings = settings  # read per request: a test may swap the fake's settings
        self._stopping = stopping  # set when the server stops: ends injected hangs
        self._lock = threading.Lock()
        self._arrivals: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._window: deque[float] = deque()

    def counts(self) -> dict[str, int]:
        """How many faults of each kind were injected (and 429s from `requests_per_minute`)."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts = {}

    def intercept(self, kind: str, request: Request) -> Reply | None:
        """A Reply to answer instead of the real route, or None.

        Only generation requests are touched. Order: the per-day quota switch, the server-side
        requests-per-minute window, the added latency, then a fault drawn deterministically
        from (fault_seed, request body, how many times this body arrived before).
        """
        if kind != "generate":
            return None
        settings = self._settings()
        if settings.daily_quota:
            self._note("daily_quota")
            return quota_reply(per_day=True, delay=settings.retry_delay_s)
        if settings.requests_per_minute is not None:
            refused = self._over_window(settings.requests_per_minute)
            if refused is not None:
                self._note("over_limit")
                return quota_reply(per_day=False, delay=refused)
        if settings.latency_s > 0:
            self._stopping.wait(settings.latency_s)
        if settings.fault_rate <= 0 or not settings.fault_kinds:
            return None
        key = hashlib.sha256(request.path.encode() + b"\0" + request.body).hexdigest()
        with self._lock:
            attempt = self._arrivals.get(key, 0)
            self._arrivals[key] = attempt + 1
        if unit_interval(f"fault:{settings.fault_seed}:{key}:{attempt}") >= settings.fault_rate:
            return None
        kinds = settings.fault_kinds
        fault = kinds[
            int(unit_interval(f"kind:{settings.fault_seed}:{key}:{attempt}") * len(kinds))
        ]
        self._note(fault)
        return self._reply(fault, request, settings)

    def _note(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1

    def _over_window(self, limit: int) -> float | None:
        """None if a request may pass the trailing-minute limit now, else seconds to wait."""
        with self._lock:
            now = time.monotonic()
            while self._window and self._window[0] <= now - 60.0:
                self._window.popleft()
            if len(self._window) >= limit:
                return max(self._window[0] + 60.0 - now, 0.001)
            self._window.append(now)
            return None

    def _reply(self, fault: str, request: Request, settings: FakeSettings) -> Reply:
        if fault == "rate_limit" and request.path.split("/")[2:3] == ["projects"]:
            return vertex_rate_limit_reply()
        prompt = len(request.body) // 16
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        return _REPLIES[fault](_Context(settings, usage, self._stopping))


@dataclass(frozen=True)
class _Context:
    settings: FakeSettings
    usage: dict[str, int]
    stopping: threading.Event


def _hang(context: _Context) -> Reply:
    context.stopping.wait(context.settings.hang_s)
    return Reply.error(504, "Deadline expired before operation could complete.")


def _safety(context: _Context) -> Reply:
    ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]
    candidate = {"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}
    return Reply.json(200, {"candidates": [candidate], "usageMetadata": context.usage})


def _cancelled(context: _Context) -> Reply:
    """Gemini's 499 under load, as google-gemini/gemini-cli#20309 (2026-02-25) shows it."""
    message = "The operation was cancelled."
    error = {
        "code": 499,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": "backendError"}],
        "status": "CANCELLED",
    }
    return Reply.json(499, {"error": error})


_MALFORMED = b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "tru'

# One reply per kind in settings.FAULT_KINDS (checked below, at import).
_REPLIES: dict[str, Callable[[_Context], Reply]] = {
    "rate_limit": lambda c: quota_reply(per_day=False, delay=c.settings.retry_delay_s),
    "server_error": lambda c: Reply.error(500, "An internal error has occurred. Please retry."),
    "unavailable": lambda c: Reply.error(503, "The model is overloaded. Please try again later."),
    "hang": _hang,
    "drop": lambda c: Reply(200, drop=True),
    "empty": lambda c: Reply.json(200, {"usageMetadata": c.usage, "modelVersion": "fake"}),
    "safety": _safety,
    "malformed": lambda c: Reply(200, _MALFORMED, {"Content-Type": "application/json"}),
    "cancelled": _cancelled,
}
if set(_REPLIES) != set(FAULT_KINDS):  # pragma: no cover - a fault kind without a reply
    raise RuntimeError("faults._REPLIES must answer every kind in settings.FAULT_KINDS")


def vertex_rate_limit_reply() -> Reply:
    """Vertex AI's 429: no QuotaFailure, no RetryInfo, only this text (google-gemini/gemini-cli
    #15911 and #15498; https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429)."""
    return Reply.error(
        429,
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    )


def quota_reply(per_day: bool, delay: float) -> Reply:
    """A 429 RESOURCE_EXHAUSTED shaped like Gemini's: QuotaFailure and RetryInfo details."""
    if per_day:
        quota_id = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        value = "250"
    else:
        quota_id = "GenerateRequestsPerMinutePerProjectPerModel"
        metric = "generativelanguage.googleapis.com/generate_content_paid_tier_requests"
        value = "600"
    message = (
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: https://ai.google.dev/gemini-api/docs/"
        f"rate-limits.\n* Quota exceeded for metric: {metric}, limit: {value}\n"
        f"Please retry in {delay:g}s."
    )
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": metric, "quotaId": quota_id, "quotaValue": value}],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay:g}s"},
    ]
    return Reply.error(429, message, details)
