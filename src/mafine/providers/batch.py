"""Batch mode: requests that arrive together go to Gemini as one batch job (half the price).

The debate code asks for responses concurrently, one task per problem in flight; in batch mode
every problem of a split is in flight at once, so a debate round's requests arrive together.
`BatchProvider.generate` queues each request; once no new one arrived for `batch_window_s`
(or `batch_max_requests` are queued) the queue becomes one batch job per model:

* API key (Gemini Developer API): inlined requests, `models/{m}:batchGenerateContent`; the
  responses come back inlined, in request order. A queue over the inline size limit (20 MB)
  becomes several jobs.
* Vertex AI: a JSONL file uploaded to `batch_bucket` (each request labelled with its key),
  a `batchPredictionJobs` job writing its predictions under the same prefix. A tuned model is
  named by its Model resource (generation uses its endpoint).

A request a finished job has no answer for (a partially succeeded job leaves some out) or an
error is batched again, `max_attempts` jobs at most.

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

STATE_FILE = "batches.jsonl"
# A partially succeeded job is done: its missing results are asked for again (_run_job).
DONE = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
LABEL = "mafine-key"


# Inline (API-key) batches must keep the whole request under 20 MB; larger ones are split
# into several jobs (https://ai.google.dev/gemini-api/docs/batch-api#inline-requests). The
# budget leaves room for the envelope around the requests and for the estimate's error.
INLINE_BUDGET_BYTES = 18 * 1024 * 1024
ENDPOINT = re.compile(r"projects/[^/]+/locations/[^/]+/endpoints/[^/]+")


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
        self._load()
        self._pending: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._polls: dict[str, asyncio.Task[dict[str, Completion | str]]] = {}
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
        for _, record in iter_log(self.state_path, BatchRecord):
            if record.event == "submitted":
                jobs[record.job] = record
            elif record.event == "failed":
                jobs.pop(record.job, None)
        for job, record in jobs.items():
            for key in record.keys:
                self._stored[key] = (job, record.keys)

    def _record(self, record: BatchRecord) -> None:
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
                    item.future.set_result(result)
            elif item.resubmits + 1 < self.settings.max_attempts:
                # Missing (a partially succeeded job) or failed: take what succeeded, ask
                # again for the rest, a bounded number of times.
                self._stored.pop(key, None)
                self._queue(_Pending(item.request, item.future, item.reasks, item.resubmits + 1))
            else:
                item.future.set_exception(
                    MafineError(
                        f"batch job {job} returned no response for a request to {model} "
                        f"({result or 'missing'}) after {item.resubmits + 1} jobs "
                        "(provider.gemini.max_attempts); run the same command again to "
                        "resubmit it"
                    )
                )
                item.future.exception()

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
        job = await self._call(
            lambda: self.inner.client.aio.batches.create(
                model=model, src=inlined, config={"display_name": display}
            ),
            model,
            retry=False,
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
        job = await self._call(
            lambda: self.inner.client_for(resource).aio.batches.create(
                model=resource, src=source, config={"display_name": display, "dest": dest}
            ),
            model,
            retry=False,
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
        """A recent job with this display name that has not failed (from a killed run), in
        the location that serves `model`."""
        client = self.inner.client_for(model)
        try:
            pager = await self._call(lambda: client.aio.batches.list(config={"page_size": 100}), "")
        except MafineError:
            return None
        for job in pager.page:
            state = job.state.name if job.state else ""
            if job.display_name == display and state not in ENDED_BADLY:
                return str(job.name)
        return None

    def _results(
        self, job: str, keys: list[str], model: str
    ) -> asyncio.Task[dict[str, Completion | str]]:
        """The (shared) task polling a job until it ends; its results by request key."""
        task = self._polls.get(job)
        if task is None:
            task = asyncio.ensure_future(self._poll(job, keys, model))
            self._polls[job] = task
        return task

    async def _poll(
        self, job_name: str, keys: list[str], model: str
    ) -> dict[str, Completion | str]:
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
                error = job.error.message if job.error and job.error.message else state
                self._forget(job_name, keys, str(error))
                raise MafineError(
                    f"batch job {job_name} ended {state} ({error}); run the same command again "
                    "to resubmit its requests"
                )
            await asyncio.sleep(self.settings.batch_poll_s)
        if self.inner.vertex:
            results = await asyncio.to_thread(self._vertex_results, job, keys)
        else:
            results = _inlined_results(job, keys)
        self._record(BatchRecord(event="finished", job=job_name))
        return results

    def _forget(self, job_name: str, keys: list[str], error: str) -> None:
        """Record a job as failed: its requests are batched again when next asked for."""
        self._record(BatchRecord(event="failed", job=job_name, error=error))
        for key in keys:
            self._stored.pop(key, None)
        self._polls.pop(job_name, None)

    def _vertex_results(self, job: Any, keys: list[str]) -> dict[str, Completion | str]:
        directory = job.output_info.gcs_output_directory if job.output_info else None
        if not directory:
            directory = job.dest.gcs_uri if job.dest else None
        if not directory:
            return {}
        bucket_name, prefix = join_gcs(directory, "")
        by_label = {key[:60]: key for key in keys}
        results: dict[str, Completion | str] = {}
        storage = self.inner.storage_client()
        for blob in storage.list_blobs(bucket_name, prefix=prefix.rstrip("/") + "/"):
            if not blob.name.endswith(".jsonl"):
                continue
            for line in blob.download_as_bytes().decode("utf-8").splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                label = ((row.get("request") or {}).get("labels") or {}).get(LABEL)
                key = by_label.get(str(label))
                if key is None:
                    continue
                if isinstance(row.get("response"), dict):
                    results[key] = completion_from_rest(row["response"])
                else:
                    results[key] = str(row.get("status") or "no response")
        return results

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


def _inlined_results(job: Any, keys: list[str]) -> dict[str, Completion | str]:
    """API-key batches answer inline, in request order."""
    responses = (job.dest.inlined_responses if job.dest else None) or []
    results: dict[str, Completion | str] = {}
    for key, item in zip(keys, responses, strict=False):
        if item.response is not None:
            results[key] = completion_from_response(item.response)
        else:
            error = item.error.message if item.error and item.error.message else "no response"
            results[key] = str(error)
    return results


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
