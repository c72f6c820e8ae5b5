"""Batch generation jobs: the Gemini API's inlined batches (API key) and Vertex AI batch
prediction jobs reading and writing Cloud Storage JSON Lines.

Gemini API batch mode: https://ai.google.dev/gemini-api/docs/batch-mode
Vertex AI batch prediction for Gemini:
https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-gemini

As the real services do, by default:
* results come back in no particular order: inline responses shuffled (each with the
  `metadata` its request carried), Vertex output lines too. The Gemini API returns inlined
  responses out of request order (googleapis/python-genai#1909, 2026-01-09, "the results
  are not ordered by the API"; PR #2124, 2026-03-05, reorders them by a metadata marker),
  and a JSONL job's answers came back out of order too (same thread, 2026-01-11).
* a Vertex output line echoes its request; a failed line carries its error in `status`
  beside an empty `response` (https://cloud.google.com/vertex-ai/generative-ai/docs/
  multimodal/batch-prediction-from-cloud-storage, "for succeeded rows, model responses are
  stored in the response field", errors in `status`, read 2026-12-06; BerriAI/litellm#25627,
  2026-05-01, tells rows apart the same way). The status text here is the error as JSON;
  its exact wording on Vertex is not documented.
* with `fault_rate`, a batch row may fail as online requests do under load (429, 499, 500,
  503 among `fault_kinds`), drawn per job and row.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mafine.providers.fake_gemini import routing
from mafine.providers.fake_gemini.generation import Generation, base_model
from mafine.providers.fake_gemini.routing import FakeError, Reply, Request, Route, route
from mafine.providers.fake_gemini.settings import FakeSettings
from mafine.providers.fake_gemini.state import Collection
from mafine.providers.fake_gemini.storage import Storage
from mafine.providers.fake_gemini.tuning import TUNED_NAME, TunedModel, Tuning
from mafine.seeds import unit_interval

INLINE_LIMIT_BYTES = 20 * 1024 * 1024
ENDPOINT_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/endpoints/[^/]+")

_VERTEX_JOBS = rf"{routing.VERTEX}/batchPredictionJobs"


@dataclass
class BatchJob:
    """A batch of generation requests: inlined (API key) or a Cloud Storage file (Vertex)."""

    number: int
    backend: str  # "mldev" or "vertex"
    model: str
    display_name: str
    create_time: str
    requests: list[dict[str, Any]]  # {"request": body, "metadata": ...} per line
    parent: str = ""  # Vertex: projects/P/locations/L
    input_config: dict[str, Any] = field(default_factory=dict)
    output_prefix: str = ""  # Vertex: gs://bucket/prefix
    polls: int = 0
    state: str = "PENDING"
    results: list[dict[str, Any] | None] = field(default_factory=list)  # None: unattempted
    order: list[int] = field(default_factory=list)  # the order results come back in
    output_dir: str = ""
    error: str = ""  # why a FAILED job failed


class Batches:
    """Batch jobs of both backends; a job answers its requests on the poll that finishes it."""

    ROUTES: ClassVar[list[Route]] = [
        route(
            "POST",
            rf"{routing.VERSION}/models/(?P<model>[^/:]+):batchGenerateContent",
            "batch_create",
            "create_api_key",
        ),
        route("GET", rf"{routing.VERSION}/batches/(?P<id>[^/:]+)", "batch_get", "get_api_key"),
        route("GET", rf"{routing.VERSION}/batches", "batch_list", "list_api_key"),
        route("GET", _VERTEX_JOBS, "batch_list", "list_vertex"),
        route("POST", _VERTEX_JOBS, "batch_create", "create_vertex"),
        route("GET", _VERTEX_JOBS + r"/(?P<id>[^/:]+)", "batch_get", "get_vertex"),
    ]

    def __init__(
        self,
        settings: Callable[[], FakeSettings],
        generation: Generation,
        tuning: Tuning,
        storage: Storage,
        state: Collection,
    ) -> None:
        self._settings = settings
        self._generation = generation
        self._tuning = tuning
        self._storage = storage
        self._state = state
        self._lock = threading.Lock()
        self.jobs = {job.number: job for job in (BatchJob(**r) for r in state.records())}
        self._next = 1 + max(self.jobs, default=0)

    # ---- Gemini API (API key) --------------------------------------------------------
    def create_api_key(self, request: Request, model: str) -> Reply:
        routing.require_api_key(request)
        # Inline requests must keep the whole request under 20 MB; larger batches belong in
        # an input file (https://ai.google.dev/gemini-api/docs/batch-api#inline-requests).
        # The refusal is Google's front end's 400 on an oversized body, whose wording is
        # seen in googleworkspace/dotnet-samples#23 (there with a 10 MiB limit).
        if len(request.body) > INLINE_LIMIT_BYTES:
            raise FakeError(
                400, f"Request payload size exceeds the limit: {INLINE_LIMIT_BYTES} bytes."
            )
        base = base_model(self._settings(), model, "batchGenerateContent")
        batch = routing.json_body(request).get("batch") or {}
        inlined = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(inlined, list) or not inlined:
            raise FakeError(400, "batch.inputConfig.requests.requests is required")
        lines = []
        for item in inlined:
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                raise FakeError(400, "every inlined request needs a request object")
            lines.append({"request": item["request"], "metadata": item.get("metadata")})
        job = self._new("mldev", f"models/{base}", batch.get("displayName"), lines)
        self._save(job)
        return Reply.json(200, _mldev_resource(job))

    def get_api_key(self, request: Request, id: str) -> Reply:
        routing.require_api_key(request)
        return Reply.json(200, _mldev_resource(self._poll(id, "mldev")))

    def list_api_key(self, request: Request) -> Reply:
        routing.require_api_key(request)
        with self._lock:
            jobs = [j for j in self.jobs.values() if j.backend == "mldev"]
        jobs.sort(key=lambda j: -j.number)
        return Reply.json(200, {"operations": [_mldev_resource(j) for j in jobs[:100]]})

    # ---- Vertex AI -------------------------------------------------------------------
    def create_vertex(self, request: Request, project: str, location: str) -> Reply:
        routing.require_auth(request)
        body = routing.json_body(request)
        model = str(body.get("model") or "")
        if ENDPOINT_NAME.fullmatch(model):
            # A batch prediction job names a Model resource, never an Endpoint: a tuned
            # model is `projects/P/locations/L/models/ID` (BatchPredictionJob.model,
            # https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs;
            # Google's sample https://cloud.google.com/vertex-ai/generative-ai/docs/samples/
            # googlegenaisdk-batchpredict-with-gcs; litellm resolves a tuned endpoint to its
            # model for the same reason, BerriAI/litellm#39668). The wording is ours.
            raise FakeError(
                400,
                f"Invalid Model resource name {model!r}: a batch prediction job takes a "
                "Model (projects/{project}/locations/{location}/models/{model}), not an "
                "Endpoint.",
            )
        self._model(model)  # 404 for an unknown model, before anything is queued
        input_config = body.get("inputConfig") or {}
        uris = (input_config.get("gcsSource") or {}).get("uris") or []
        prefix = ((body.get("outputConfig") or {}).get("gcsDestination") or {}).get(
            "outputUriPrefix"
        )
        if not uris or not prefix:
            raise FakeError(400, "inputConfig.gcsSource.uris and an output prefix are required")
        lines = []
        for uri in uris:
            stored = self._storage.read(uri)
            if stored is None:
                raise FakeError(400, f"batch input {uri} not found")
            for number, line in enumerate(stored.decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise FakeError(400, f"{uri} line {number}: not JSON") from None
                if not isinstance(row, dict) or not isinstance(row.get("request"), dict):
                    raise FakeError(400, f"{uri} line {number}: needs a request object")
                lines.append(row)
        job = self._new("vertex", model, body.get("displayName"), lines)
        job.parent = f"projects/{project}/locations/{location}"
        job.input_config = input_config
        job.output_prefix = str(prefix).rstrip("/")
        self._save(job)
        return Reply.json(200, _vertex_resource(job))

    def get_vertex(self, request: Request, project: str, location: str, id: str) -> Reply:
        routing.require_auth(request)
        return Reply.json(200, _vertex_resource(self._poll(id, "vertex")))

    def list_vertex(self, request: Request, project: str, location: str) -> Reply:
        routing.require_auth(request)
        parent = f"projects/{project}/locations/{location}"
        with self._lock:
            jobs = [j for j in self.jobs.values() if j.parent == parent]
        jobs.sort(key=lambda j: -j.number)
        return Reply.json(200, {"batchPredictionJobs": [_vertex_resource(j) for j in jobs[:100]]})

    # ---- the jobs --------------------------------------------------------------------
    def _new(self, backend: str, model: str, display: Any, lines: list[dict[str, Any]]) -> BatchJob:
        with self._lock:
            number = self._next
            self._next += 1
            job = BatchJob(
                number=number,
                backend=backend,
                model=model,
                display_name=str(display or f"batch-{number}"),
                create_time=routing.now(),
                requests=lines,
            )
            self.jobs[number] = job
        return job

    def _poll(self, id: str, backend: str) -> BatchJob:
        with self._lock:
            job = self.jobs.get(int(id)) if id.isdigit() else None
        if job is None or job.backend != backend:
            raise FakeError(404, f"batch {id} not found")
        if job.state not in ("PENDING", "RUNNING"):
            return job
        if job.polls < self._settings().batch_polls:
            job.polls += 1
            job.state = "RUNNING"
            self._save(job)
            return job
        results: list[dict[str, Any] | None] = []
        for index, line in enumerate(job.requests):
            if job.backend == "vertex" and self._left_unattempted(job, index):
                results.append(None)
                continue
            body = dict(line["request"])
            model = str(body.pop("model", "") or job.model)
            body.pop("labels", None)
            try:
                fault = self._row_fault(job, index)
                if fault is not None:
                    raise fault
                name, tuned = self._model(model)
                payload = self._generation.answer(f"batch:{name}", body, name, tuned)
                results.append({"response": payload, "metadata": line.get("metadata")})
            except FakeError as exc:
                error = {"code": exc.status, "message": exc.message, "status": _name(exc)}
                results.append({"error": error, "metadata": line.get("metadata")})
        job.results = results
        job.order = _shuffled(len(results), f"{self._settings().fault_seed}:{job.number}")
        if job.backend == "vertex":
            self._write_predictions(job)
        # Some predictions never attempted: the job ends PARTIALLY_SUCCEEDED, the missing
        # lines absent from its output (a BatchPredictionJob "may finish without attempting
        # predictions for all remaining instances", completionStats.incompleteCount:
        # https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs;
        # the state is JobState.JOB_STATE_PARTIALLY_SUCCEEDED in google-genai's types, handled
        # by taking the available results in freelawproject/courtlistener#6907).
        job.state = "PARTIALLY_SUCCEEDED" if None in results else "SUCCEEDED"
        self._save(job)
        return job

    def _left_unattempted(self, job: BatchJob, index: int) -> bool:
        """Whether the job leaves this line unattempted: drawn per job, so the same request
        in a later job is drawn afresh."""
        settings = self._settings()
        material = f"incomplete:{settings.fault_seed}:{job.number}:{index}"
        return unit_interval(material) < settings.batch_incomplete_rate

    def _row_fault(self, job: BatchJob, index: int) -> FakeError | None:
        """The error a row meets under load, drawn per job and row from `fault_kinds`."""
        settings = self._settings()
        kinds = [k for k in settings.fault_kinds if k in _ROW_FAULTS]
        material = f"batch-fault:{settings.fault_seed}:{job.number}:{index}"
        if not kinds or unit_interval(material) >= settings.fault_rate:
            return None
        status, message = _ROW_FAULTS[kinds[int(unit_interval("kind:" + material) * len(kinds))]]
        return FakeError(status, message)

    def _save(self, job: BatchJob) -> None:
        self._state.put(str(job.number), dataclasses.asdict(job))

    def _write_predictions(self, job: BatchJob) -> None:
        stamp = routing.now()
        job.output_dir = f"{job.output_prefix}/prediction-model-{stamp}"
        out = []
        for index in job.order or range(len(job.requests)):
            line, result = job.requests[index], job.results[index]
            if result is None:  # never attempted: no output line
                continue
            row = {"status": "", "processed_time": routing.now(), "request": line["request"]}
            if "response" in result:
                row["response"] = result["response"]
            else:  # a failed row: the error in `status`, beside an empty response
                row["response"] = {}
                row["status"] = json.dumps({"error": result["error"]}, sort_keys=True)
            out.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
        bucket, _, name = job.output_dir.removeprefix("gs://").partition("/")
        data = "".join(line + "\n" for line in out).encode()
        self._storage.store(bucket, f"{name}/predictions.jsonl", data, "application/jsonl")

    def _model(self, model: str) -> tuple[str, TunedModel | None]:
        """(name used to seed answers, tuned model or None) of a batch request's model."""
        if TUNED_NAME.fullmatch(model):
            tuned = self._tuning.tuned_model(model)
            # Seeded as the endpoint serving it online: one model, one set of answers.
            return f"endpoints/{tuned.number}", tuned
        return base_model(self._settings(), model, "batch prediction"), None


# Errors a batch row meets under load, as online requests do (faults.py has the online ones).
_ROW_FAULTS: dict[str, tuple[int, str]] = {
    "rate_limit": (429, "Resource exhausted. Please try again later."),
    "server_error": (500, "An internal error has occurred. Please retry."),
    "unavailable": (503, "The model is overloaded. Please try again later."),
    "cancelled": (499, "The operation was cancelled."),
}
_STATUS = {
    400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
    500: "INTERNAL", 503: "UNAVAILABLE",
}  # fmt: skip


def _name(error: FakeError) -> str:
    return _STATUS.get(error.status, "UNKNOWN")


def _shuffled(count: int, seed: str) -> list[int]:
    """A deterministic permutation of range(count): the order a job's results come back in."""
    return sorted(range(count), key=lambda i: unit_interval(f"batch-order:{seed}:{i}"))


def _mldev_resource(job: BatchJob) -> dict[str, Any]:
    name = f"batches/{job.number}"
    metadata: dict[str, Any] = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "name": name,
        "displayName": job.display_name,
        "model": job.model,
        "state": f"BATCH_STATE_{job.state}",
        "createTime": job.create_time,
        "updateTime": routing.now(),
    }
    operation: dict[str, Any] = {"name": name, "metadata": metadata}
    if job.state == "SUCCEEDED":
        results = [job.results[i] for i in job.order or range(len(job.results))]
        metadata["endTime"] = routing.now()
        metadata["output"] = {"inlinedResponses": {"inlinedResponses": results}}
        operation["done"] = True
        operation["response"] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
            "GenerateContentBatchOutput",
            "inlinedResponses": {"inlinedResponses": results},
        }
    return operation


def _vertex_resource(job: BatchJob) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "name": f"{job.parent}/batchPredictionJobs/{job.number}",
        "displayName": job.display_name,
        "model": job.model,
        "state": f"JOB_STATE_{job.state}",
        "createTime": job.create_time,
        "updateTime": routing.now(),
        "inputConfig": job.input_config,
        "outputConfig": {
            "predictionsFormat": "jsonl",
            "gcsDestination": {"outputUriPrefix": job.output_prefix},
        },
    }
    if job.error:
        resource["error"] = {"code": 13, "message": job.error}
    # A job that ended, even FAILED, has exported the rows it completed (Google's output
    # docs, module docstring: "if the batch prediction job is terminated, all completed rows
    # are exported").
    if job.output_dir and job.state in ("SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED"):
        incomplete = sum(1 for r in job.results if r is None)
        failed = sum(1 for r in job.results if r is not None and "error" in r)
        resource["endTime"] = routing.now()
        resource["outputInfo"] = {"gcsOutputDirectory": job.output_dir}
        resource["completionStats"] = {
            "successfulCount": str(len(job.results) - failed - incomplete),
            "failedCount": str(failed),
            "incompleteCount": str(incomplete),
        }
    return resource
