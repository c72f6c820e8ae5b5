"""Batch mode: requests that arrive together go to Gemini as one batch job (half the price).

The debate code asks for responses concurrently, one task per problem in flight; in batch mode
every problem of a split is in flight at once, so a debate round's requests arrive together.
`BatchProvider.generate` queues each request; once no new one arrived for `batch_window_s`
(or `batch_max_requests` are queued) the queue becomes one batch job per model:

* API key (Gemini Developer API): inlined requests, `models/{m}:batchGenerateContent`, each
  carrying its key in `metadata`; the responses come back inlined, NOT in request order
  (googleapis/python-genai#1909, 2026-01-09: "the results are not ordered by the API"), so
  they are matched by the key each echoes in its `metadata` (the REST InlinedResponse has
  it: https://ai.google.dev/api/batch-api#InlinedResponse; python-genai#2124 reorders by it).
  A result set whose keys do not match the requests (missing, unknown, repeated) is refused
  in one line: no answer can land on another question. A queue over the inline size limit
  (20 MB) becomes several jobs.
* Vertex AI: a JSONL file uploaded to `batch_bucket`, a `batchPredictionJobs` job writing its
  predictions under the same prefix. Each output line echoes its request (Google's output
  docs: https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/
  batch-prediction-from-cloud-storage, read 2026-12-06), so a line is matched to its request
  by that echo: by the `labels` mafine puts in the request when they come back, else by the
  request's content, compared with the input file. A tuned model is named by its Model
  resource (generation uses its endpoint).

A failed row (a Vertex line with an error in `status` beside an empty `response`, an inline
result with `error`) is batched again only when its error can pass (429, 499, 5xx); any
other stops with Google's text, once. A request a finished job has no answer for (a
partially succeeded job leaves some out) is batched again; both `max_attempts` jobs at most.
A Vertex job that ends FAILED/CANCELLED/EXPIRED keeps the rows it answered (Google bills
them; completed rows are exported even when a job is terminated, same docs page): only the
others are submitted again, on the next run.

Every submitted job is recorded in the run directory (`batches.jsonl`: its name and the keys
of its requests, in order) before it is polled. A resumed run that asks for one of those
requests polls the stored job instead of submitting it again. Before submitting, the recent
jobs are listed and a job with the same deterministic display name (a digest of its request
keys) is reused: a job submitted by a run killed before it could record it is not paid twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path
from typing import Any

from mafine.artifacts import BatchRecord, Completion
from mafine.errors import MafineError
from mafine.jsonl import AppendLog, iter_log
from mafine.providers.base import (
    Capabilities,
    GenerationRequest,
    ProviderBase,
    TuningSpec,
    TuningStatus,
)
from mafine.providers.gemini import (
    ENDED_BADLY,
    GeminiProvider,
    completion_from_response,
    completion_from_rest,
    is_blocked,
    join_gcs,
)
from mafine.providers.limits import classify

STATE_FILE = "batches.jsonl"
# A partially succeeded job is done: its missing results are asked for again (_run_job).
DONE = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
LABEL = "mafine-key"


# Inline (API-key) batches must keep the whole request under 20 MB; larger ones are split
# into several jobs (https://ai.google.dev/gemini-api/docs/batch-api#inline-requests). The
# budget leaves room for the envelope around the requests and for the estimate's error.
INLINE_BUDGET_BYTES = 18 * 1024 * 1024
ENDPOINT = re.compile(r"projects/[^/]+/locations/[^/]+/endpoints/[^/]+")


@dataclass(frozen=True)
class RowError:
    """A request a batch job answered with an error (or, `job_failed`, left unanswered when
    the job itself ended badly)."""

    message: str
    retryable: bool
    job_failed: bool = False


Result = Completion | RowError


@dataclass
class _Pending:
    request: GenerationRequest
    future: asyncio.Future[Completion]
    reasks: int = 0
    resubmits: int = 0  # times sent again after its job returned nothing (or an error) for it


class BatchProvider(ProviderBase):
    """A provider that sends generation requests as batch jobs; tuning and embeddings go to
    `inner`, whose capabilities it passes through."""

    name = "gemini"

    def __init__(self, inner: GeminiProvider, state_dir: Path | None) -> None:
        self.inner = inner
        self.settings = inner.settings
        self.max_concurrency = self.settings.batch_max_requests
        self.state_path = (state_dir / STATE_FILE) if state_dir is not None else None
        self._log = AppendLog(self.state_path) if self.state_path is not None else None
        self._stored: dict[str, tuple[str, list[str]]] = {}  # key -> (job, its keys)
        self._known: set[str] = set()  # every job recorded: never "found" as a lost one
        self._load()
        self._pending: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._polls: dict[str, asyncio.Task[dict[str, Result]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._model_of_endpoint: dict[str, str] = {}  # tuned endpoint -> its Model resource
        self.jobs_submitted = 0

    @property
    def capabilities(self) -> Capabilities:
        return dataclasses.replace(self.inner.capabilities, batch=True)

    def embedding_client(self) -> Any:
        return self.inner.embedding_client()

    # Tuning is not batched --------------------------------------------------------------
    def start_tuning(self, spec: TuningSpec) -> str:
        return self.inner.start_tuning(spec)

    def poll_tuning(self, job_name: str) -> TuningStatus:
        status = self.inner.poll_tuning(job_name)
        if status.serving_model and status.checkpoint:
            self._model_of_endpoint[status.serving_model] = status.checkpoint
        return status

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in [*self._tasks, *self._polls.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._polls.values(), return_exceptions=True)
        if self._log is not None:
            self._log.close()
        await self.inner.aclose()

    # State ------------------------------------------------------------------------------
    def _load(self) -> None:
        if self.state_path is None:
            return
        jobs: dict[str, BatchRecord] = {}
        forgotten: dict[str, set[str]] = {}
        for _, record in iter_log(self.state_path, BatchRecord):
            self._known.add(record.job)
            if record.event == "submitted":
                jobs[record.job] = record
                forgotten.pop(record.job, None)
            elif record.event == "failed":
                # Only the requests it left unanswered (all when none are listed) go again.
                forgotten[record.job] = set(record.keys or jobs.get(record.job, record).keys)
        for job, record in jobs.items():
            for key in record.keys:
                if key not in forgotten.get(job, ()):
                    self._stored[key] = (job, record.keys)

    def _record(self, record: BatchRecord) -> None:
        self._known.add(record.job)
        if self._log is not None:
            self._log.append(record.model_copy(update={"time": _now()}))

    # Generation -------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Completion:
        key = request.key()
        stored = self._stored.get(key)
        if stored is not None:
            job, keys = stored
            results = await self._results(job, keys, request.model)
            result = results.get(key)
            if isinstance(result, Completion) and not is_blocked(result):
                return result
            del self._stored[key]  # an error or no answer for this one: batch it again
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._queue(_Pending(request, future))
        return await future

    def _queue(self, item: _Pending) -> None:
        self._pending.append(item)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if len(self._pending) >= self.settings.batch_max_requests:
            self._flush()
        else:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.settings.batch_window_s, self._flush)

    def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, []
        by_model: dict[str, list[_Pending]] = {}
        for item in pending:
            if not item.future.done():
                by_model.setdefault(item.request.model, []).append(item)
        for model, items in by_model.items():
            chunks = [items] if self.inner.vertex else self._inline_chunks(items)
            for chunk in chunks:
                task = asyncio.ensure_future(self._run_job(model, chunk))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _inline_chunks(self, items: list[_Pending]) -> list[list[_Pending]]:
        """Consecutive runs of requests whose inlined JSON stays within the inline budget."""
        chunks: list[list[_Pending]] = [[]]
        size = 0
        for item in items:
            body = {"request": self.inner.rest_request(item.request), "metadata": {"key": ""}}
            item_size = len(json.dumps(body, ensure_ascii=False).encode()) + 64  # key, commas
            if chunks[-1] and size + item_size > INLINE_BUDGET_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += item_size
        return chunks

    async def _run_job(self, model: str, items: list[_Pending]) -> None:
        try:
            keys = [item.request.key() for item in items]
            job = await self._submit(model, [item.request for item in items], keys)
            for key in keys:
                self._stored[key] = (job, keys)
            results = await self._results(job, keys, model)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else MafineError("batch cancelled")
            for item in items:
                if not item.future.done():
                    item.future.set_exception(error)
                    item.future.exception()
            if not isinstance(exc, Exception):
                raise
            return
        for item, key in zip(items, keys, strict=True):
            result = results.get(key)
            if item.future.done():
                continue
            if isinstance(result, Completion):
                if is_blocked(result) and item.reasks < self.settings.reask_blocked:
                    self._stored.pop(key, None)
                    self._queue(_Pending(item.request, item.future, item.reasks + 1))
                else:
                    self.inner.note_model_version(item.request.model, result.model_version)
                    item.future.set_result(result)
            elif isinstance(result, RowError) and not result.retryable:
                line = result.message
                if not result.job_failed:
                    line = (
                        f"batch job {job} answered a request to {model} with an error another "
                        f"job would meet again ({line}); fix what it names, then run the same "
                        "command again"
                    )
                _fail(item, MafineError(self.inner.redact(line)))
            elif item.resubmits + 1 < self.settings.max_attempts:
                # Missing (a partially succeeded job) or an error that may pass: take what
                # succeeded, ask again for the rest, a bounded number of times.
                self._stored.pop(key, None)
                self._queue(_Pending(item.request, item.future, item.reasks, item.resubmits + 1))
            else:
                why = result.message if result is not None else "no result for it"
                _fail(
                    item,
                    MafineError(
                        self.inner.redact(
                            f"batch job {job} returned no response for a request to {model} "
                            f"({why}) after {item.resubmits + 1} jobs "
                            "(provider.gemini.max_attempts); run the same command again to "
                            "resubmit it"
                        )
                    ),
                )

    async def _submit(
        self, model: str, requests: Sequence[GenerationRequest], keys: list[str]
    ) -> str:
        display = "mafine-" + sha256("\n".join(keys).encode()).hexdigest()[:20]
        existing = await self._find_job(display, model)
        if existing is not None:
            name = existing
        elif self.inner.vertex:
            name = await self._submit_vertex(model, requests, keys, display)
        else:
            name = await self._submit_api_key(model, requests, keys, display)
        self.jobs_submitted += existing is None
        self._record(
            BatchRecord(event="submitted", job=name, model=model, display_name=display, keys=keys)
        )
        from mafine.ui import console

        console.print(
            f"gemini batch: {len(keys)} requests to {model} "
            f"{'found as' if existing else 'submitted as'} {name}"
        )
        return name

    async def _create(self, create: Any, model: str) -> Any:
        """A job creation call, retried only on 429 (an explicit refusal creates no job; any
        other error may hide a created job, which the display-name lookup finds next run)."""
        try:
            return await self.inner.retrier.call_async(create, frozenset({"rate_limit"}))
        except MafineError:
            raise
        except Exception as exc:
            if classify(exc).kind in ("rate_limit", "quota"):
                text = getattr(exc, "message", None) or str(exc)
                raise MafineError(
                    self.inner.redact(
                        f"gemini refused to create a batch job for {model} with 429 "
                        f"RESOURCE_EXHAUSTED ({' '.join(str(text).split())[:300]}) "
                        f"{self.settings.max_attempts} times (provider.gemini.max_attempts); "
                        "nothing was submitted. Batch jobs have their own limits (jobs "
                        "running at once, tokens enqueued): wait for running jobs to finish, "
                        "then run the same command again"
                    )
                ) from None
            raise self.inner.user_error(exc, model) from None

    async def _submit_api_key(
        self, model: str, requests: Sequence[GenerationRequest], keys: list[str], display: str
    ) -> str:
        types = self.inner._types
        inlined = [
            types.InlinedRequest(
                model=model,
                contents=self.inner.contents(request),
                config=self.inner.generation_config(request),
                metadata={"key": key},
            )
            for request, key in zip(requests, keys, strict=True)
        ]
        job = await self._create(
            lambda: self.inner.client.aio.batches.create(
                model=model, src=inlined, config={"display_name": display}
            ),
            model,
        )
        return str(job.name)

    async def _submit_vertex(
        self, model: str, requests: Sequence[GenerationRequest], keys: list[str], display: str
    ) -> str:
        bucket = self.settings.batch_bucket or self.settings.tuning_bucket
        if not bucket:
            raise MafineError(
                "batch mode on Vertex AI needs provider.gemini.batch_bucket (gs://bucket/prefix) "
                "for the request and result files"
            )
        lines = []
        for request, key in zip(requests, keys, strict=True):
            body = self.inner.rest_request(request)
            # The label is one way back to the key; the echoed request itself is the other
            # (_vertex_results), so matching never rests on labels alone.
            body["labels"] = {LABEL: key[:60]}
            lines.append(json.dumps({"request": body}, ensure_ascii=False))
        data = "".join(line + "\n" for line in lines).encode()
        bucket_name, object_name = join_gcs(bucket, f"batch/{display}/input.jsonl")

        def upload() -> None:
            blob = self.inner.storage_client().bucket(bucket_name).blob(object_name)
            blob.upload_from_string(data, content_type="application/jsonl")

        await asyncio.to_thread(upload)
        source = f"gs://{bucket_name}/{object_name}"
        dest = source.rsplit("/", 1)[0] + "/output"
        resource = await self._batch_model(model)
        job = await self._create(
            lambda: self.inner.client_for(resource).aio.batches.create(
                model=resource, src=source, config={"display_name": display, "dest": dest}
            ),
            model,
        )
        return str(job.name)

    async def _batch_model(self, model: str) -> str:
        """What a Vertex batch job names for `model`: a tuned model's Model resource (batch
        prediction takes models, not the endpoints generation takes), else `model`."""
        if not ENDPOINT.fullmatch(model):
            return model
        resource = self._model_of_endpoint.get(model)
        if resource is None:
            resource = await asyncio.to_thread(self.inner.tuned_model_of, model)
            if resource is None:
                raise MafineError(
                    f"batch mode needs the tuned model that {model} serves, and no tuning job "
                    "in provider.gemini.tuning_location names it; set provider.gemini.batch="
                    "false to send these requests one by one"
                )
            self._model_of_endpoint[model] = resource
        return resource

    async def _find_job(self, display: str, model: str) -> str | None:
        """A recent job with this display name that has not failed and that no run
        recorded (submitted by a run killed before it could record it), in the location
        that serves `model`. A recorded one is never reused: resubmitting the rows it did
        not answer must create a new job, not find that one again."""
        client = self.inner.client_for(model)
        try:
            pager = await self._call(lambda: client.aio.batches.list(config={"page_size": 100}), "")
        except MafineError:
            return None
        for job in pager.page:
            state = job.state.name if job.state else ""
            if (
                job.display_name == display
                and state not in ENDED_BADLY
                and job.name not in self._known
            ):
                return str(job.name)
        return None

    def _results(self, job: str, keys: list[str], model: str) -> asyncio.Task[dict[str, Result]]:
        """The (shared) task polling a job until it ends; its results by request key."""
        task = self._polls.get(job)
        if task is None:
            task = asyncio.ensure_future(self._poll(job, keys, model))
            self._polls[job] = task
        return task

    async def _poll(self, job_name: str, keys: list[str], model: str) -> dict[str, Result]:
        client = self.inner.client_for(job_name)  # a Vertex job lives in its model's region
        while True:
            job = await self._call(lambda: _get_unless_gone(client, job_name), model)
            if job is None:
                self._forget(job_name, keys, "unknown to the service (404 NOT_FOUND)")
                where = "Vertex AI" if self.inner.vertex else "the Gemini API"
                raise MafineError(
                    f"{where} no longer knows batch job {job_name} (404 NOT_FOUND): it was "
                    "deleted or expired, or the project, location or API key changed since it "
                    f"was submitted. It is forgotten ({STATE_FILE}): run the same command "
                    "again to submit its requests again"
                )
            state = job.state.name if job.state else "JOB_STATE_PENDING"
            if state in DONE:
                break
            if state in ENDED_BADLY:
                return await self._ended_badly(job, job_name, state, keys)
            await asyncio.sleep(self.settings.batch_poll_s)
        try:
            if self.inner.vertex:
                results = await asyncio.to_thread(self._vertex_results, job, keys)
            else:
                results = _inlined_results(job_name, job, keys)
        except MafineError as exc:
            self._forget(job_name, keys, str(exc))
            raise
        failed = [r for r in results.values() if isinstance(r, RowError)]
        self._record(
            BatchRecord(
                event="finished",
                job=job_name,
                answered=len(results) - len(failed),
                failed=len(failed),
                error=failed[0].message if failed else None,
            )
        )
        return results

    async def _ended_badly(
        self, job: Any, job_name: str, state: str, keys: list[str]
    ) -> dict[str, Result]:
        """A job that failed, was cancelled or expired: the rows it answered are kept (and
        were billed); the others fail with the job's error and go again on the next run."""
        error = job.error.message if job.error and job.error.message else state
        results: dict[str, Result] = {}
        if self.inner.vertex:
            try:
                results = await asyncio.to_thread(self._vertex_results, job, keys)
            except MafineError:
                results = {}
        answered = {k: r for k, r in results.items() if isinstance(r, Completion)}
        unanswered = [key for key in keys if key not in answered]
        if not unanswered:
            self._record(BatchRecord(event="finished", job=job_name, answered=len(answered)))
            return dict(answered)
        self._forget(job_name, unanswered, str(error), answered=len(answered))
        line = RowError(
            f"batch job {job_name} ended {state} ({error}); {len(answered)} of its "
            f"{len(keys)} requests were answered and are kept: run the same command again "
            f"to submit the other {len(unanswered)}",
            retryable=False,
            job_failed=True,
        )
        return {**answered, **dict.fromkeys(unanswered, line)}

    def _forget(self, job_name: str, keys: list[str], error: str, answered: int = 0) -> None:
        """Record a job as failed for `keys`: they are batched again when next asked for."""
        self._record(
            BatchRecord(
                event="failed",
                job=job_name,
                keys=keys,
                error=error,
                answered=answered,
                failed=len(keys),
            )
        )
        for key in keys:
            self._stored.pop(key, None)
        self._polls.pop(job_name, None)

    def _vertex_results(self, job: Any, keys: list[str]) -> dict[str, Result]:
        """The job's output lines by request key; a line whose request is none of `keys`,
        or a request answered twice, refuses the whole set (one line)."""
        directory = job.output_info.gcs_output_directory if job.output_info else None
        if not directory:
            directory = job.dest.gcs_uri if job.dest else None
        if not directory:
            return {}
        storage = self.inner.storage_client()
        by_label = {key[:60]: key for key in keys}
        by_content = self._keys_by_content(job, by_label)
        bucket_name, prefix = join_gcs(directory, "")
        results: dict[str, Result] = {}
        unknown = repeated = 0
        for blob in storage.list_blobs(bucket_name, prefix=prefix.rstrip("/") + "/"):
            if not blob.name.endswith(".jsonl"):
                continue
            for line in blob.download_as_bytes().decode("utf-8").splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                request = row.get("request") if isinstance(row.get("request"), dict) else {}
                label = (request.get("labels") or {}).get(LABEL)
                key = by_label.get(str(label)) if label else by_content.get(_content(request))
                if key is None:
                    unknown += 1
                elif key in results:
                    repeated += 1
                else:
                    results[key] = _vertex_row(row)
        if unknown or repeated:
            raise _mismatch(job.name, len(keys), 0, unknown, repeated)
        return results

    def _keys_by_content(self, job: Any, by_label: dict[str, str]) -> dict[str, str]:
        """Request key by the content of each request in the job's input file (its label
        names the key): how an output line whose echo lost the labels finds its key."""
        uris = (job.src.gcs_uri if job.src else None) or []
        found: dict[str, str] = {}
        storage = self.inner.storage_client()
        for uri in [uris] if isinstance(uris, str) else uris:
            bucket_name, name = join_gcs(uri, "")
            blob = storage.bucket(bucket_name).blob(name.rstrip("/"))
            for line in blob.download_as_bytes().decode("utf-8").splitlines():
                if line.strip():
                    request = json.loads(line).get("request") or {}
                    key = by_label.get(str((request.get("labels") or {}).get(LABEL)))
                    if key is not None:
                        found[_content(request)] = key
        return found

    async def _call(self, call: Any, model: str, retry: bool = True) -> Any:
        """A control-plane call, retried on transient errors (creation is never retried: a lost
        reply may hide a created job, which the display-name lookup finds on the next run)."""
        with self.inner.user_errors(model):
            return await self.inner.retrier.call_async(call, retry)


async def _get_unless_gone(client: Any, job_name: str) -> Any:
    """The batch job, or None where the service answers 404 (it does not know the job)."""
    from google.genai import errors

    try:
        return await client.aio.batches.get(name=job_name)
    except errors.APIError as exc:
        if exc.code == 404:
            return None
        raise


def _inlined_results(job_name: str, job: Any, keys: list[str]) -> dict[str, Result]:
    """API-key batches answer inline, in no promised order: matched by the key each result
    echoes in its metadata; every request must have exactly one result."""
    responses = (job.dest.inlined_responses if job.dest else None) or []
    expected = set(keys)
    results: dict[str, Result] = {}
    unknown = repeated = 0
    for item in responses:
        key = (item.metadata or {}).get("key")
        if key not in expected:
            unknown += 1
        elif key in results:
            repeated += 1
        elif item.response is not None:
            results[key] = completion_from_response(item.response)
        else:
            error = item.error
            results[key] = row_error(
                getattr(error, "code", None), getattr(error, "message", None) or "no response"
            )
    missing = len(expected - results.keys())
    if missing or unknown or repeated:
        raise _mismatch(job_name, len(keys), missing, unknown, repeated)
    return results


def _mismatch(job: str, requests: int, missing: int, unknown: int, repeated: int) -> MafineError:
    return MafineError(
        f"batch job {job} returned results that do not match its {requests} requests "
        f"({missing} missing, {unknown} with no key or another key, {repeated} repeated): "
        "mafine cannot tell which answer belongs to which question, so it keeps none of them. "
        f"The job is forgotten ({STATE_FILE}): run the same command again to submit them "
        "again, or set provider.gemini.batch=false to send them one by one"
    )


def _content(request: dict[str, Any]) -> str:
    """A request's content without mafine's labels: how an echoed request is recognised."""
    body = {k: v for k, v in request.items() if k != "labels"}
    return sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _vertex_row(row: dict[str, Any]) -> Result:
    """One Vertex output line: an answer, or the error its `status` holds. A failed line has
    `"response": {}` (or none) beside a non-empty `status` (Google's output docs, above;
    BerriAI/litellm#25627, 2026-05-01, reads rows the same way)."""
    status = row.get("status")
    response = row.get("response")
    if not status and isinstance(response, dict) and response:
        return completion_from_rest(response)
    return row_error(None, status or "no response and no status")


# Errors a later job may not meet: 429 RESOURCE_EXHAUSTED, 499 CANCELLED, 5xx, timeouts;
# google.rpc codes for the same (1, 4, 8, 10, 13, 14) where a status carries those instead.
_PASSING_HTTP = frozenset({408, 429, 499, 500, 502, 503, 504})
_PASSING_RPC = frozenset({1, 4, 8, 10, 13, 14})
_PASSING_NAMES = re.compile(
    r"RESOURCE_EXHAUSTED|UNAVAILABLE|INTERNAL|DEADLINE_EXCEEDED|CANCELLED|ABORTED|"
    r"overloaded|try again|temporar",
    re.IGNORECASE,
)
_CODE = re.compile(r"""["']?code["']?\s*[:=]\s*(\d{1,3})\b""")


def row_error(code: Any, status: Any) -> RowError:
    """A failed batch row as Google wrote it (a google.rpc.Status, or its text), retryable
    when its code or canonical name says the error can pass."""
    if isinstance(status, dict):
        inner = status.get("error", status)
        code = code if code is not None else inner.get("code")
        text = " ".join(str(inner.get(k) or "") for k in ("status", "message")).strip()
    else:
        text = str(status)
        match = _CODE.search(text)
        if code is None and match:
            code = int(match.group(1))
    if isinstance(code, int):
        passing = code in (_PASSING_RPC if code < 100 else _PASSING_HTTP)
    else:
        passing = bool(_PASSING_NAMES.search(text))
    text = " ".join(text.split())[:300]
    return RowError(
        f"{code} {text}" if code is not None and str(code) not in text else text or "no text",
        passing,
    )


def _fail(item: _Pending, error: MafineError) -> None:
    item.future.set_exception(error)
    item.future.exception()  # retrieved: no "never retrieved" warning if nobody awaits


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
