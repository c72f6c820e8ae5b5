"""Gemini through google-genai: generation on an API key or Vertex AI, tuning on Vertex AI.

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

import json
import os
import random
import re
import time
import warnings
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, stop_never

from mafine.artifacts import Completion, Message, SFTExample, Usage
from mafine.errors import MafineError, QuotaExhausted
from mafine.jsonl import read_rows
from mafine.providers.base import (
    Capabilities,
    GenerationRequest,
    ProviderBase,
    TuningSpec,
    TuningStatus,
)
from mafine.providers.limits import Failure, Pacer, classify, resolve_limits
from mafine.providers.settings import ProviderConfig

ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR",
                 8: "ADAPTER_SIZE_EIGHT", 16: "ADAPTER_SIZE_SIXTEEN"}  # fmt: skip
TUNING_ROUTES = (
    "Gemini tuning runs on Vertex AI only: set provider.gemini.vertex=true with a project "
    "and provider.gemini.tuning_bucket, or use provider.name=local to tune an open model"
)
# Finish reasons of a response that carries no usable text: asked again (bounded).
BLOCKED = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
     "NO_CANDIDATES", "OTHER", "LANGUAGE", "MALFORMED_FUNCTION_CALL"}
)  # fmt: skip
ENDED_BADLY = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
NOTICE_EVERY_S = 15.0


@dataclass(frozen=True)
class Connection:
    """Where and how to reach Gemini. Production resolves it from config and environment;
    the fake provider passes its loopback URL and a static token instead."""

    api_key: str | None = None
    vertex: bool = False
    project: str | None = None
    location: str = "us-central1"
    base_url: str | None = None
    credentials: Any = None
    storage_endpoint: str | None = None

    def __repr__(self) -> str:  # never show the key, not even in a traceback
        return f"Connection(vertex={self.vertex}, project={self.project!r}, base_url=...)"


def resolve_connection(config: ProviderConfig) -> Connection:
    """The connection for a `gemini` config, or a one-line error saying what is missing."""
    settings = config.gemini
    if settings.vertex:
        project = settings.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise MafineError(
                "gemini on Vertex AI needs a project: set provider.gemini.project "
                "or GOOGLE_CLOUD_PROJECT"
            )
        return Connection(
            vertex=True, project=project, location=settings.location, base_url=settings.base_url
        )
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise MafineError(
            f"gemini needs an API key: set the environment variable {settings.api_key_env} "
            "(in Colab: userdata.get from Colab secrets), or use provider.gemini.vertex=true"
        )
    return Connection(api_key=key, base_url=settings.base_url)


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


class GeminiProvider(ProviderBase):
    name = "gemini"

    def __init__(
        self, config: ProviderConfig, connection: Connection, pace_by_tier: bool = True
    ) -> None:
        from google import genai
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
        http_options = types.HttpOptions(
            base_url=connection.base_url, timeout=int(config.timeout_s * 1000)
        )
        if connection.vertex:
            self._client = genai.Client(
                vertexai=True,
                project=connection.project,
                location=connection.location,
                credentials=connection.credentials,
                http_options=http_options,
            )
        else:
            self._client = genai.Client(api_key=connection.api_key, http_options=http_options)

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
        types = self._types
        return [
            types.Content(
                role="user" if message.role == "user" else "model",
                parts=[types.Part(text=message.content)],
            )
            for message in request.messages
        ]

    def generation_config(self, request: GenerationRequest) -> Any:
        return self._types.GenerateContentConfig(
            temperature=request.sampling.temperature,
            top_p=request.sampling.top_p,
            max_output_tokens=request.sampling.max_output_tokens,
            candidate_count=1,
            seed=request.seed,
        )

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
                    await self.pacer.acquire(estimate_tokens(request))
                    response = await self._client.aio.models.generate_content(
                        model=request.model, contents=contents, config=generation_config
                    )
                    completion = completion_from_response(response)
                    if is_blocked(completion) and tries.reasks < self.settings.reask_blocked:
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
        from google.genai import errors

        failure = classify(exc)
        if isinstance(exc, errors.APIError):
            message = self.redact(" ".join(str(exc.message or exc.status or "").split()))[:400]
            code = exc.code
            if failure.kind == "quota":
                error = QuotaExhausted(
                    f"gemini quota exhausted ({self.redact(failure.quota or message)}): waiting "
                    "will not help until it resets (per-day quotas reset at midnight Pacific "
                    "time). Every finished response is kept in the run directory's journal: "
                    "run the same command again after the reset, or use a higher tier"
                )
                self._stopped = error
                return error
            if failure.kind == "rate_limit":
                waited = tries.rate_limited_s if tries else 0.0
                return MafineError(
                    f"gemini kept answering 429 RESOURCE_EXHAUSTED ({message}) after "
                    f"{waited:.0f}s of waiting (provider.gemini.rate_limit_wait_s); lower "
                    "provider.gemini.requests_per_minute or provider.max_concurrency, then run "
                    "the same command again"
                )
            if code == 404:
                return MafineError(
                    f"model {model} is not available (404 NOT_FOUND); set provider.model "
                    "to a current model (docs/gemini.md says how to list them)"
                )
            if code == 401:
                return MafineError(
                    f"gemini refused the credentials (401 UNAUTHENTICATED): {message}; check "
                    f"{self._credential_hint()}"
                )
            if code == 403:
                return MafineError(
                    f"gemini denied access (403 PERMISSION_DENIED): {message}; check "
                    f"{self._credential_hint()} and that the project may use {model}"
                )
            if code == 400:
                return MafineError(
                    f"gemini rejected the request for {model} (400 {exc.status}): {message}"
                )
            if failure.kind == "transient":
                return MafineError(
                    f"gemini error {code} {exc.status} after "
                    f"{tries.transient if tries else 1} attempts: {message}; every finished "
                    "response is kept: run the same command again to resume"
                )
            return MafineError(f"gemini error {code} {exc.status}: {message}")
        if failure.kind == "transient":
            attempts = tries.transient if tries else 1
            return MafineError(
                f"gemini did not answer after {attempts} attempts ({type(exc).__name__}; "
                f"timeout {self.config.timeout_s:g}s); every finished response is kept: "
                "run the same command again to resume"
            )
        raise exc

    def _credential_hint(self) -> str:
        if self._connection.vertex:
            return "the Vertex AI credentials (gcloud auth application-default login)"
        return f"the API key in {self.settings.api_key_env}"

    def redact(self, text: str) -> str:
        key = self._connection.api_key
        text = scrub_url(text)
        return text.replace(key, "***") if key else text

    def _notice(self, kind: str, text: str) -> None:
        """A progress note, at most once per NOTICE_EVERY_S per kind."""
        now = time.monotonic()
        if now - self._noticed.get(kind, -NOTICE_EVERY_S) < NOTICE_EVERY_S:
            return
        self._noticed[kind] = now
        from mafine.ui import console

        console.print(self.redact(text))

    # Tuning -------------------------------------------------------------------------------
    def start_tuning(self, spec: TuningSpec) -> str:
        """Submit a tuning job, or find the one a killed earlier attempt already submitted.

        The job's display name is derived from the spec and a digest of the uploaded data, so
        a job that was submitted but never recorded (the process died in between) is found by
        name and polled instead of being paid for twice.
        """
        if not self._connection.vertex:
            raise MafineError(TUNING_ROUTES)
        bucket = self.config.gemini.tuning_bucket
        if not bucket:
            raise MafineError(
                "tuning on Vertex AI needs provider.gemini.tuning_bucket (gs://bucket/prefix)"
            )
        types = self._types
        vertex_file, digest = self._vertex_file(spec)
        display = tuning_display_name(spec, digest)
        try:
            existing = self._find_tuning_job(display)
        except MafineError as exc:  # listing is a safeguard, not a requirement
            self._notice("tuning_list", f"gemini: could not list tuning jobs ({exc})")
            existing = None
        if existing is not None:
            return existing
        uri = self._upload(vertex_file, bucket, f"{spec.display_name}-{digest}.jsonl")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=Warning)  # "tuning is experimental"
            job = self._call(
                lambda: self._client.tunings.tune(
                    base_model=spec.start_checkpoint,
                    training_dataset=types.TuningDataset(gcs_uri=uri),
                    config=types.CreateTuningJobConfig(
                        epoch_count=spec.epochs,
                        learning_rate_multiplier=spec.learning_rate_multiplier,
                        adapter_size=ADAPTER_SIZES[spec.adapter_size],
                        tuned_model_display_name=display,
                    ),
                ),
                spec.start_checkpoint,
                retry_transient=False,  # a lost reply may hide a created job: list first
            )
        return str(job.name)

    def _find_tuning_job(self, display: str, pages: int = 5) -> str | None:
        """The newest job with this display name that did not fail, from the first pages."""
        found: list[Any] = []
        pager = self._call(lambda: self._client.tunings.list(config={"page_size": 100}), "")
        for _ in range(pages):
            found += [
                job
                for job in pager.page
                if job.tuned_model_display_name == display
                and (job.state is None or job.state.name not in ENDED_BADLY)
            ]
            if not pager.config.get("page_token"):
                break
            self._call(pager.next_page, "")
        if not found:
            return None
        found.sort(key=lambda job: str(job.create_time or ""), reverse=True)
        return str(found[0].name)

    def poll_tuning(self, job_name: str) -> TuningStatus:
        job = self._call(lambda: self._client.tunings.get(name=job_name), job_name)
        state = job.state.name if job.state else "JOB_STATE_PENDING"
        if state == "JOB_STATE_SUCCEEDED" and job.tuned_model:
            return TuningStatus(
                state="succeeded",
                serving_model=job.tuned_model.endpoint,
                checkpoint=job.tuned_model.model,
            )
        if state in ENDED_BADLY:
            error = job.error.message if job.error and job.error.message else state
            return TuningStatus(state="failed", error=self.redact(str(error)))
        return TuningStatus(state="running")

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

    def _vertex_file(self, spec: TuningSpec) -> tuple[Any, str]:
        """The SFT file in Vertex's format, next to the job's other files; and its digest."""
        vertex_file = spec.output_dir / f"{spec.display_name}.vertex.jsonl"
        vertex_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(to_vertex_example(row.messages)) for row in _sft_rows(spec)]
        vertex_file.write_text("".join(line + "\n" for line in lines))
        return vertex_file, sha256(vertex_file.read_bytes()).hexdigest()[:12]

    def storage_client(self) -> Any:
        try:
            from google.cloud import storage
        except ImportError:
            raise MafineError(
                "Cloud Storage needs the 'vertex' extra: pip install 'mafine[vertex]'"
            ) from None
        options = (
            {"api_endpoint": self._connection.storage_endpoint}
            if self._connection.storage_endpoint
            else None
        )
        return storage.Client(
            project=self._connection.project,
            credentials=self._connection.credentials,
            client_options=options,
        )

    def _upload(self, path: Any, bucket_uri: str, name: str) -> str:
        """Upload a local file under `gs://bucket/prefix/name`; returns its URI."""
        bucket_name, object_name = join_gcs(bucket_uri, name)
        client = self.storage_client()
        client.bucket(bucket_name).blob(object_name).upload_from_filename(str(path))
        return f"gs://{bucket_name}/{object_name}"

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()


def tuning_display_name(spec: TuningSpec, data_digest: str) -> str:
    """Deterministic per job: the spec's name and a digest of everything the job depends on."""
    material = json.dumps(
        [
            spec.display_name,
            spec.start_checkpoint,
            data_digest,
            spec.epochs,
            spec.learning_rate_multiplier,
            spec.adapter_size,
        ]
    )
    suffix = sha256(material.encode()).hexdigest()[:10]
    return f"{spec.display_name[:100]}-{suffix}"


def join_gcs(bucket_uri: str, name: str) -> tuple[str, str]:
    """(bucket, object name) of `name` under `gs://bucket/prefix`."""
    bucket_name, _, prefix = bucket_uri.removeprefix("gs://").partition("/")
    return bucket_name, "/".join(p for p in (prefix.strip("/"), name) if p)


def to_vertex_example(messages: list[Message]) -> dict[str, Any]:
    """A conversational SFT example in Vertex AI's tuning format."""
    return {
        "contents": [
            {"role": "user" if m.role == "user" else "model", "parts": [{"text": m.content}]}
            for m in messages
        ]
    }


def rest_request(request: GenerationRequest) -> dict[str, Any]:
    """The request as Gemini's REST JSON (what a Vertex batch input line holds)."""
    return {
        "contents": to_vertex_example(list(request.messages))["contents"],
        "generationConfig": {
            "temperature": request.sampling.temperature,
            "topP": request.sampling.top_p,
            "maxOutputTokens": request.sampling.max_output_tokens,
            "candidateCount": 1,
            "seed": request.seed,
        },
    }


def estimate_tokens(request: GenerationRequest) -> int:
    """Input tokens of a request, roughly (4 characters a token), for the token limiter."""
    return sum(len(m.content) for m in request.messages) // 4 + 1


def is_blocked(completion: Completion) -> bool:
    """No usable text: blocked, no candidates, or empty without hitting the length limit."""
    if completion.finish_reason in BLOCKED:
        return True
    return not completion.text.strip() and completion.finish_reason != "MAX_TOKENS"


def _sft_rows(spec: TuningSpec) -> list[SFTExample]:
    return list(read_rows(spec.training_file, SFTExample))


def completion_from_response(response: Any) -> Completion:
    """A google-genai GenerateContentResponse as a Completion; never raises on odd ones."""
    usage = response.usage_metadata
    tokens = Usage(
        prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
        output_tokens=(usage.candidates_token_count or 0) if usage else 0,
        thoughts_tokens=(usage.thoughts_token_count or 0) if usage else 0,
        total_tokens=(usage.total_token_count or 0) if usage else 0,
    )
    if not response.candidates:
        feedback = response.prompt_feedback
        reason = feedback.block_reason.name if feedback and feedback.block_reason else None
        return Completion(text="", finish_reason=_blocked_reason(reason), usage=tokens)
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    reason = candidate.finish_reason.name if candidate.finish_reason else None
    return Completion(text=text, finish_reason=reason, usage=tokens)


def completion_from_rest(payload: dict[str, Any]) -> Completion:
    """A GenerateContentResponse in REST JSON (a batch result line) as a Completion."""
    usage = payload.get("usageMetadata") or {}
    tokens = Usage(
        prompt_tokens=int(usage.get("promptTokenCount") or 0),
        output_tokens=int(usage.get("candidatesTokenCount") or 0),
        thoughts_tokens=int(usage.get("thoughtsTokenCount") or 0),
        total_tokens=int(usage.get("totalTokenCount") or 0),
    )
    candidates = payload.get("candidates") or []
    if not candidates:
        reason = (payload.get("promptFeedback") or {}).get("blockReason")
        return Completion(text="", finish_reason=_blocked_reason(reason), usage=tokens)
    candidate = candidates[0] or {}
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(
        str(p.get("text") or "") for p in parts if isinstance(p, dict) and not p.get("thought")
    )
    return Completion(text=text, finish_reason=candidate.get("finishReason"), usage=tokens)


def _blocked_reason(reason: str | None) -> str:
    if not reason or reason.endswith("UNSPECIFIED"):
        return "NO_CANDIDATES"
    return reason if reason in BLOCKED else f"BLOCKED_{reason}"


_KEY_IN_URL = re.compile(r"([?&]key=)[^&\s]+")


def scrub_url(text: str) -> str:
    """Remove `?key=...` from URLs in a message."""
    return _KEY_IN_URL.sub(r"\1***", text)
