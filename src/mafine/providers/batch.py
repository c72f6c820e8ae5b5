"""Batch mode: requests that arrive together go to Gemini as one batch job (half the price).

The debate code asks for responses concurrently, one task per problem in flight; in batch mode
every problem of a split is in flight at once, so a debate round's requests arrive together.
`BatchProvider.generate` queues each request; once no new one arrived for `batch_window_s`
(or `batch_max_requests` are queued) the queue becomes one batch job per model:

* API key (Gemini Developer API): inlined requests, `models/{m}:batchGenerateContent`; the
  responses come back inlined, in request order.
* Vertex AI: a JSONL file uploaded to `batch_bucket` (each request labelled with its key),
  a `batchPredictionJobs` job writing its predictions under the same prefix.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

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
    rest_request,
)
from mafine.providers.limits import classify

STATE_FILE = "batches.jsonl"
LABEL = "mafine-key"


@dataclass
class _Pending:
    request: GenerationRequest
    future: asyncio.Future[Completion]
    reasks: int = 0


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
        return self.inner.poll_tuning(job_name)

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
            task = asyncio.ensure_future(self._run_job(model, items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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
            else:
                item.future.set_exception(
                    MafineError(
                        f"batch job {job} returned no response for a request to {model} "
                        f"({result or 'missing'}); run the same command again to resubmit it"
                    )
                )
                item.future.exception()

    async def _submit(
        self, model: str, requests: Sequence[GenerationRequest], keys: list[str]
    ) -> str:
        display = "mafine-" + sha256("\n".join(keys).encode()).hexdigest()[:20]
        existing = await self._find_job(display)
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
            body = rest_request(request)
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
        job = await self._call(
            lambda: self.inner.client.aio.batches.create(
                model=model, src=source, config={"display_name": display, "dest": dest}
            ),
            model,
            retry=False,
        )
        return str(job.name)

    async def _find_job(self, display: str) -> str | None:
        """A recent job with this display name that has not failed (from a killed run)."""
        try:
            pager = await self._call(
                lambda: self.inner.client.aio.batches.list(config={"page_size": 100}), ""
            )
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
        client = self.inner.client
        while True:
            job = await self._call(lambda: client.aio.batches.get(name=job_name), model)
            state = job.state.name if job.state else "JOB_STATE_PENDING"
            if state == "JOB_STATE_SUCCEEDED":
                break
            if state in ENDED_BADLY:
                error = job.error.message if job.error and job.error.message else state
                self._record(BatchRecord(event="failed", job=job_name, error=str(error)))
                for key in keys:
                    self._stored.pop(key, None)
                self._polls.pop(job_name, None)
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
        retrying = AsyncRetrying(
            retry=retry_if_exception(
                lambda exc: retry and classify(exc).kind in ("transient", "rate_limit")
            ),
            wait=lambda state: self.inner._backoff(state.attempt_number),
            stop=stop_after_attempt(self.settings.max_attempts),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except MafineError:
            raise
        except Exception as exc:
            raise self.inner.user_error(exc, model) from None
        raise AssertionError("unreachable")  # pragma: no cover


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
