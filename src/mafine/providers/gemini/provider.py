"""The gemini provider: generation paced and retried by error class, tuning on Vertex AI.

Every request is paced (`limits.Pacer`: requests and tokens per minute) and retried by
error class (`retry.Retrier`, the loop any HTTP provider shares): a per-minute 429 waits the
delay the error carries (or backs off exponentially when it carries none) and slows the
others only on evidence (`limits.Pacer`); 5xx, 499, timeouts, dropped connections and
malformed bodies back off exponentially with
jitter, `max_attempts` times at most; a per-day quota (or `limit: 0`) raises `QuotaExhausted`
and stops the provider; 400/401/403/404 fail at once with one line. A response without text
(no candidates, SAFETY, RECITATION, ...) is asked again up to `reask_blocked` times, then
returned as it is (empty text, its finish reason). The API key is never part of any message
this module produces.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mafine.artifacts import Completion
from mafine.errors import MafineError, QuotaExhausted
from mafine.providers.base import Capabilities, GenerationRequest, ProviderBase
from mafine.providers.gemini import errors, generation, models
from mafine.providers.gemini.connection import Connection, make_client
from mafine.providers.gemini.models import location_in_name
from mafine.providers.gemini.options import ProviderOptions
from mafine.providers.gemini.tuning import VertexTuning
from mafine.providers.limits import Pacer, resolve_limits
from mafine.providers.retry import AskAgain, Retrier, RetryPolicy, Tries

NOTICE_EVERY_S = 15.0
MIN_RESPONSES_TO_WARN = 20


class FinishTally:
    """How many responses ended at the token cap, and a warning when too many did: with
    thinking on, thinking tokens count against `max_output_tokens` and can leave no answer."""

    def __init__(self, warn_share: float) -> None:
        self.warn_share = warn_share
        self.responses = 0
        self.max_tokens = 0
        self.empty = 0
        self.thoughts_tokens = 0

    def add(self, completion: Completion) -> str | None:
        """Count a response; a warning text once the share at the cap is too high."""
        self.responses += 1
        self.thoughts_tokens += completion.usage.thoughts_tokens
        if completion.finish_reason == "MAX_TOKENS":
            self.max_tokens += 1
            self.empty += not completion.text.strip()
        if self.responses < MIN_RESPONSES_TO_WARN or self.share <= self.warn_share:
            return None
        return (
            f"{self.share:.0%} of {self.responses} responses ended at "
            f"sampling.max_output_tokens ({self.empty} with no text; "
            f"{self.thoughts_tokens / self.responses:.0f} thinking tokens a response): raise "
            "sampling.max_output_tokens or lower provider.gemini.thinking_level / "
            "thinking_budget"
        )

    @property
    def share(self) -> float:
        return self.max_tokens / self.responses if self.responses else 0.0

    def summary(self) -> str | None:
        """The share at the cap over everything counted, when any response hit it."""
        if not self.max_tokens:
            return None
        return (
            f"{self.max_tokens} of {self.responses} responses ({self.share:.0%}) ended at "
            f"sampling.max_output_tokens, {self.empty} of them with no text"
        )


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
        self.retrier = Retrier(RetryPolicy.of(config.gemini), self.pacer, "gemini", self._notice)
        self.retries = self.retrier.counts
        self.thinking = generation.thinking(config.model, config.gemini)
        self.finishes = FinishTally(config.gemini.max_tokens_warn_share)
        self._stopped: QuotaExhausted | None = None
        self._noticed: dict[str, float] = {}
        self._client = make_client(connection, config.timeout_s)
        self._clients = {connection.location: self._client}
        self._versions_seen: set[tuple[str, str]] = set()
        self._tuning_reported: set[tuple[str, str]] = set()
        facts = models.facts_of(config.model)
        if facts is not None and facts.ignores_sampling:
            self._notice(
                "ignored_sampling",
                f"gemini: {config.model} ignores sampling.temperature and sampling.top_p "
                "(Google's model page: custom values are ignored), so agents sample at the "
                "model's own settings; pick another provider.model if the method's "
                "temperature matters to you",
            )

    @property
    def client(self) -> Any:
        """The client for base models (at `location` on Vertex AI)."""
        return self._client

    @property
    def _tuning_client(self) -> Any:
        return self.client_for_location(self._connection.tuning_location)

    def client_for(self, model: str) -> Any:
        """The client that serves `model`: a tuned model's own region (its endpoint lives
        there), else the base models' location."""
        location = location_in_name(model) if self._connection.vertex else None
        return self.client_for_location(location or self._connection.location)

    def client_for_location(self, location: str) -> Any:
        if not self._connection.vertex:
            return self._client
        if location not in self._clients:
            self._clients[location] = make_client(self._connection, self.config.timeout_s, location)
        return self._clients[location]

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(tuning=self._connection.vertex, embedding=True)

    def embedding_client(self) -> Any:
        return self._client

    @property
    def vertex(self) -> bool:
        return self._connection.vertex

    @property
    def connection(self) -> Connection:
        return self._connection

    # Generation ---------------------------------------------------------------------------
    def contents(self, request: GenerationRequest) -> list[Any]:
        return generation.contents(request)

    def generation_config(self, request: GenerationRequest) -> Any:
        return generation.generation_config(request, self.thinking)

    def rest_request(self, request: GenerationRequest) -> dict[str, Any]:
        """The request as REST JSON (a Vertex batch input line), thinking included."""
        return generation.rest_request(request, self.thinking)

    async def generate(self, request: GenerationRequest) -> Completion:
        if self._stopped is not None:
            raise QuotaExhausted(str(self._stopped))
        contents = self.contents(request)
        generation_config = self.generation_config(request)
        tries = Tries()

        async def attempt() -> Completion:
            response = await self.client_for(request.model).aio.models.generate_content(
                model=request.model, contents=contents, config=generation_config
            )
            completion = generation.completion_from_response(response)
            if generation.is_blocked(completion) and tries.reasks < self.settings.reask_blocked:
                tries.reasks += 1
                raise AskAgain
            return completion

        try:
            completion = await self.retrier.run(attempt, tries, generation.estimate_tokens(request))
        except Exception as exc:
            raise self.user_error(exc, request.model, tries) from None
        warning = self.finishes.add(completion)
        if warning:
            self._notice("max_tokens", f"gemini: {warning}")
        self.note_model_version(request.model, completion.model_version)
        return completion

    def note_model_version(self, requested: str, version: str | None) -> None:
        """Warn once per (model, version) when the service answered with another model than
        the one asked for (the Gemini API routes retired names to newer models and bills at
        their price: docs/gemini.md, "Retired models"). Tuned endpoints are not compared."""
        if not version or models.family(requested) is None:
            return
        if models.same_model(requested, version) or (requested, version) in self._versions_seen:
            return
        self._versions_seen.add((requested, version))
        from mafine.ui import console

        console.print(
            f"gemini: asked for {models.short_name(requested)}, answered by {version} "
            "(the response's modelVersion, kept in the journal): Google serves this name "
            "with another model, billed at that model's price; set provider.model to "
            f"{version} to say so"
        )

    def user_error(self, exc: Exception, model: str, tries: Tries | None = None) -> MafineError:
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

    @contextmanager
    def user_errors(self, model: str) -> Iterator[None]:
        """Any error but a `MafineError` raised inside becomes `user_error`'s one line."""
        try:
            yield
        except MafineError:
            raise
        except Exception as exc:
            raise self.user_error(exc, model) from None

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

    def control_call(self, call: Any, model: str, retry_transient: bool = True) -> Any:
        """A synchronous control-plane call, retried on transient errors and 429s."""
        with self.user_errors(model):
            return self.retrier.call(call, retry_transient)

    async def aclose(self) -> None:
        summary = self.finishes.summary()
        if summary:
            self._notice("max_tokens_summary", f"gemini: {summary}")
        for client in self._clients.values():
            await client.aio.aclose()
            client.close()
