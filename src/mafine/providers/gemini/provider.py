"""The gemini provider: generation paced and retried by error class, tuning on Vertex AI.

Every request is paced (`limits.Pacer`: requests and tokens per minute) and retried by error
class (`limits.classify`, a `tenacity` loop): a per-minute 429 waits the delay the error
carries and slows everyone down; 5xx, timeouts, dropped connections and malformed bodies back
off exponentially with jitter, `max_attempts` times at most; a per-day quota (or `limit: 0`)
raises `QuotaExhausted` and stops the provider; 400/401/403/404 fail at once with one line.
A response without text (no candidates, SAFETY, RECITATION, ...) is asked again up to
`reask_blocked` times, then returned as it is (empty text, its finish reason). The API key is
never part of any message this module produces.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, stop_never

from mafine.artifacts import Completion
from mafine.errors import MafineError, QuotaExhausted
from mafine.providers.base import Capabilities, GenerationRequest, ProviderBase
from mafine.providers.gemini import errors, generation
from mafine.providers.gemini.connection import Connection, make_client
from mafine.providers.gemini.options import ProviderOptions
from mafine.providers.gemini.tuning import VertexTuning
from mafine.providers.limits import Failure, Pacer, classify, resolve_limits

NOTICE_EVERY_S = 15.0


class _Blocked(Exception):
    """A response without text, raised inside the retry loop so it is asked again."""

    def __init__(self, completion: Completion) -> None:
        super().__init__(completion.finish_reason)
        self.completion = completion


@dataclass
class _Tries:
    """One request's retry budget, spent by error class."""

    transient: int = 0
    rate_limited_s: float = 0.0
    reasks: int = 0
    last: Failure | None = None
    delay: float = 0.0  # the next wait on a 429


class GeminiProvider(VertexTuning, ProviderBase):
    name = "gemini"

    def __init__(
        self, config: ProviderOptions, connection: Connection, pace_by_tier: bool = True
    ) -> None:
        from google.genai import types

        self.config = config
        self.settings = config.gemini
        self.max_concurrency = config.max_concurrency
        self._connection = connection
        self._types = types
        self.pacer = Pacer(resolve_limits(config.gemini, use_tier=pace_by_tier))
        self._stopped: QuotaExhausted | None = None
        self._noticed: dict[str, float] = {}
        self.retries = {"rate_limit": 0, "transient": 0, "blocked": 0}
        self._client = make_client(connection, config.timeout_s)

    @property
    def client(self) -> Any:
        return self._client

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(tuning=self._connection.vertex, embedding=True)

    def embedding_client(self) -> Any:
        return self._client

    @property
    def vertex(self) -> bool:
        return self._connection.vertex

    # Generation ---------------------------------------------------------------------------
    def contents(self, request: GenerationRequest) -> list[Any]:
        return generation.contents(request)

    def generation_config(self, request: GenerationRequest) -> Any:
        return generation.generation_config(request)

    async def generate(self, request: GenerationRequest) -> Completion:
        if self._stopped is not None:
            raise QuotaExhausted(str(self._stopped))
        contents = self.contents(request)
        generation_config = self.generation_config(request)
        tries = _Tries()
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: self._should_retry(exc, tries)),
            wait=lambda state: self._wait(tries),
            stop=stop_never,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.pacer.acquire(generation.estimate_tokens(request))
                    response = await self._client.aio.models.generate_content(
                        model=request.model, contents=contents, config=generation_config
                    )
                    completion = generation.completion_from_response(response)
                    if (
                        generation.is_blocked(completion)
                        and tries.reasks < self.settings.reask_blocked
                    ):
                        tries.reasks += 1
                        self.retries["blocked"] += 1
                        raise _Blocked(completion)
        except _Blocked as blocked:  # pragma: no cover - the loop never gives up on _Blocked
            return blocked.completion
        except Exception as exc:
            raise self.user_error(exc, request.model, tries) from None
        return completion

    def _should_retry(self, exc: BaseException, tries: _Tries) -> bool:
        if isinstance(exc, _Blocked):
            tries.last = None
            return True
        failure = classify(exc)
        tries.last = failure
        if failure.kind == "rate_limit":
            delay = failure.delay if failure.delay is not None else self._backoff(1)
            tries.delay = delay * (1.0 + 0.1 * random.random())
            return tries.rate_limited_s + tries.delay <= self.settings.rate_limit_wait_s
        if failure.kind == "transient":
            tries.transient += 1
            return tries.transient < self.settings.max_attempts
        return False

    def _wait(self, tries: _Tries) -> float:
        failure = tries.last
        if failure is None:  # a blocked response: ask again at once (still paced)
            return 0.0
        if failure.kind == "rate_limit":
            self.retries["rate_limit"] += 1
            delay = tries.delay
            self.pacer.rate_limited(delay)
            tries.rate_limited_s += delay
            self._notice(
                "rate_limit",
                f"gemini: rate limited (429{', ' + failure.quota if failure.quota else ''}); "
                f"pausing {delay:.1f}s and slowing to "
                f"{self.pacer.requests_per_minute or 0:.0f} requests/min",
            )
            return delay
        self.retries["transient"] += 1
        return self._backoff(tries.transient)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter in its upper half, capped."""
        base = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** (attempt - 1))
        return base * (0.5 + 0.5 * random.random())

    def user_error(self, exc: Exception, model: str, tries: _Tries | None = None) -> MafineError:
        """An exception as one line the user can act on; QuotaExhausted also stops the provider."""
        error = errors.user_error(
            exc,
            model,
            self._connection,
            self.settings,
            self.config.timeout_s,
            transient_attempts=tries.transient if tries else 1,
            rate_limited_s=tries.rate_limited_s if tries else 0.0,
        )
        if isinstance(error, QuotaExhausted):
            self._stopped = error
        return error

    def redact(self, text: str) -> str:
        return errors.redact(text, self._connection)

    def _notice(self, kind: str, text: str) -> None:
        """A progress note, at most once per NOTICE_EVERY_S per kind."""
        now = time.monotonic()
        if now - self._noticed.get(kind, -NOTICE_EVERY_S) < NOTICE_EVERY_S:
            return
        self._noticed[kind] = now
        from mafine.ui import console

        console.print(self.redact(text))

    def _call(self, call: Any, model: str, retry_transient: bool = True) -> Any:
        """A synchronous control-plane call, retried on transient errors and 429s."""
        retrying = Retrying(
            retry=retry_if_exception(
                lambda exc: retry_transient and classify(exc).kind in ("transient", "rate_limit")
            ),
            wait=lambda state: self._backoff(state.attempt_number),
            stop=stop_after_attempt(self.settings.max_attempts),
            reraise=True,
        )
        try:
            return retrying(call)
        except MafineError:
            raise
        except Exception as exc:
            raise self.user_error(exc, model) from None

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()
