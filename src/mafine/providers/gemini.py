"""Gemini through google-genai: generation on an API key or Vertex AI, tuning on Vertex AI."""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mafine.artifacts import Completion, Message, SFTExample, Usage
from mafine.config import ProviderConfig
from mafine.errors import MafineError, QuotaExhausted
from mafine.jsonl import read_rows
from mafine.providers.base import GenerationRequest, TuningSpec, TuningStatus

TRANSIENT_CODES = {408, 429, 500, 502, 503, 504}
ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR",
                 8: "ADAPTER_SIZE_EIGHT", 16: "ADAPTER_SIZE_SIXTEEN"}  # fmt: skip
TUNING_ROUTES = (
    "Gemini tuning runs on Vertex AI only: set provider.gemini.vertex=true with a project "
    "and provider.gemini.tuning_bucket, or use provider.name=local to tune an open model"
)


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


class GeminiProvider:
    name = "gemini"

    def __init__(self, config: ProviderConfig, connection: Connection) -> None:
        from google import genai
        from google.genai import types

        self.config = config
        self.max_concurrency = config.max_concurrency
        self._connection = connection
        self._types = types
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

    # Generation ---------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Completion:
        types = self._types
        contents = [
            types.Content(
                role="user" if message.role == "user" else "model",
                parts=[types.Part(text=message.content)],
            )
            for message in request.messages
        ]
        generation_config = types.GenerateContentConfig(
            temperature=request.sampling.temperature,
            top_p=request.sampling.top_p,
            max_output_tokens=request.sampling.max_output_tokens,
            candidate_count=1,
            seed=request.seed,
        )
        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            wait=wait_exponential_jitter(initial=1, max=60),
            stop=stop_after_attempt(6),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._client.aio.models.generate_content(
                        model=request.model, contents=contents, config=generation_config
                    )
        except Exception as exc:
            raise self._user_error(exc, request.model) from None
        return _completion(response)

    def _user_error(self, exc: Exception, model: str) -> MafineError:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            message = self._redact(str(exc.message or exc.status or ""))
            if exc.code == 404:
                return MafineError(
                    f"model {model} is not available (404 NOT_FOUND); set provider.model "
                    "to a current model (the README says how to list them)"
                )
            if exc.code == 429 and _is_hard_quota(message):
                return QuotaExhausted(f"gemini quota exhausted, waiting will not help: {message}")
            if exc.code in (401, 403):
                return MafineError(f"gemini refused the credentials ({exc.code}): {message}")
            return MafineError(f"gemini error {exc.code} {exc.status}: {message}")
        if _is_transport_error(exc):
            return MafineError(f"gemini did not answer after retries ({type(exc).__name__})")
        raise exc

    def _redact(self, text: str) -> str:
        key = self._connection.api_key
        return text.replace(key, "***") if key else text

    # Tuning -------------------------------------------------------------------------------
    def start_tuning(self, spec: TuningSpec) -> str:
        if not self._connection.vertex:
            raise MafineError(TUNING_ROUTES)
        bucket = self.config.gemini.tuning_bucket
        if not bucket:
            raise MafineError(
                "tuning on Vertex AI needs provider.gemini.tuning_bucket (gs://bucket/prefix)"
            )
        types = self._types
        uri = self._upload(spec, bucket)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=Warning)  # "tuning is experimental"
            job = self._client.tunings.tune(
                base_model=spec.start_checkpoint,
                training_dataset=types.TuningDataset(gcs_uri=uri),
                config=types.CreateTuningJobConfig(
                    epoch_count=spec.epochs,
                    learning_rate_multiplier=spec.learning_rate_multiplier,
                    adapter_size=ADAPTER_SIZES[spec.adapter_size],
                    tuned_model_display_name=spec.display_name,
                ),
            )
        return str(job.name)

    def poll_tuning(self, job_name: str) -> TuningStatus:
        job = self._client.tunings.get(name=job_name)
        state = job.state.name if job.state else "JOB_STATE_PENDING"
        if state == "JOB_STATE_SUCCEEDED" and job.tuned_model:
            return TuningStatus(
                state="succeeded",
                serving_model=job.tuned_model.endpoint,
                checkpoint=job.tuned_model.model,
            )
        if state in {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}:
            error = job.error.message if job.error and job.error.message else state
            return TuningStatus(state="failed", error=error)
        return TuningStatus(state="running")

    def _upload(self, spec: TuningSpec, bucket_uri: str) -> str:
        """Write the SFT file in Vertex's format and upload it; returns its gs:// URI."""
        try:
            from google.cloud import storage
        except ImportError:
            raise MafineError(
                "uploading tuning data needs the 'vertex' extra: pip install 'mafine[vertex]'"
            ) from None
        vertex_file = spec.output_dir / f"{spec.display_name}.vertex.jsonl"
        vertex_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(to_vertex_example(row.messages)) for row in _sft_rows(spec)]
        vertex_file.write_text("".join(line + "\n" for line in lines))
        digest = sha256(vertex_file.read_bytes()).hexdigest()[:12]
        bucket_name, _, prefix = bucket_uri.removeprefix("gs://").partition("/")
        object_name = "/".join(
            p for p in (prefix.strip("/"), f"{spec.display_name}-{digest}.jsonl") if p
        )
        options = (
            {"api_endpoint": self._connection.storage_endpoint}
            if self._connection.storage_endpoint
            else None
        )
        client = storage.Client(
            project=self._connection.project,
            credentials=self._connection.credentials,
            client_options=options,
        )
        client.bucket(bucket_name).blob(object_name).upload_from_filename(str(vertex_file))
        return f"gs://{bucket_name}/{object_name}"

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()


def to_vertex_example(messages: list[Message]) -> dict[str, Any]:
    """A conversational SFT example in Vertex AI's tuning format."""
    return {
        "contents": [
            {"role": "user" if m.role == "user" else "model", "parts": [{"text": m.content}]}
            for m in messages
        ]
    }


def _sft_rows(spec: TuningSpec) -> list[SFTExample]:
    return list(read_rows(spec.training_file, SFTExample))


def _completion(response: Any) -> Completion:
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
        return Completion(text="", finish_reason=reason or "NO_CANDIDATES", usage=tokens)
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    reason = candidate.finish_reason.name if candidate.finish_reason else None
    return Completion(text=text, finish_reason=reason, usage=tokens)


_HARD_QUOTA = re.compile(r"per ?day|PerDay|limit: ?0\b", re.IGNORECASE)


def _is_hard_quota(message: str) -> bool:
    return bool(_HARD_QUOTA.search(message))


def _is_transient(exc: BaseException) -> bool:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        if exc.code == 429 and _is_hard_quota(str(exc.message or "")):
            return False
        return exc.code in TRANSIENT_CODES
    return _is_transport_error(exc)


def _is_transport_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "TimeoutException", "TimeoutError"})
