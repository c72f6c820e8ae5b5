"""A fake Gemini: a real HTTP server on loopback speaking Gemini's and Cloud Storage's REST.

The real `google-genai` and `google-cloud-storage` clients talk to it unchanged, pointed at
`FakeGemini.url` (`HttpOptions(base_url=...)`, `client_options={"api_endpoint": ...}`).
Standard library only. Every request goes through `FakeGemini._dispatch`, the one place
where fault injection and latency can be added.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from mafine.providers.fake_gemini import behaviour
from mafine.providers.settings import FakeSettings

FAKE_PROJECT = "fake-project"
FAKE_LOCATION = "us-central1"

_VERSION = r"/(?:v1|v1beta|v1beta1)"
_PARENT = r"/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_METHOD = r":(?P<method>generateContent|streamGenerateContent)"
FAULT_KINDS = (
    "rate_limit", "server_error", "unavailable", "hang", "drop", "empty", "safety", "malformed",
)  # fmt: skip

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MAX_BODY = 512 * 1024 * 1024


@dataclass
class Request:
    """One parsed HTTP request, as the dispatcher sees it (the body is never kept)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names; never logged
    body: bytes


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # hang up without answering (a dropped connection)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        data = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        return cls(status, data, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def error(cls, status: int, message: str, details: list[dict] | None = None) -> Reply:
        code_name = _STATUS_NAMES.get(status, "UNKNOWN")
        error: dict[str, Any] = {"code": status, "message": message, "status": code_name}
        if details:
            error["details"] = details
        return cls.json(status, {"error": error})


class FakeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class TunedModel:
    """A finished tuning: its memory of training conversations and its base model."""

    number: int
    base_model: str
    memory: dict[str, str]


@dataclass
class TuningJob:
    number: int
    project: str
    location: str
    base_model: str
    display_name: str
    create_time: str
    memory: dict[str, str] | None
    error: str | None
    pre_tuned: str | None
    polls: int = 0
    state: str = "JOB_STATE_PENDING"
    tuned: TunedModel | None = None


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
    results: list[dict[str, Any]] = field(default_factory=list)
    output_dir: str = ""


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (a cancelled request) is normal here, not an error
    to print a traceback for."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeGemini:
    """The fake service. `start()` binds and serves in a daemon thread; `stop()` ends it."""

    def __init__(self, settings: FakeSettings, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests = 0
        self._by_kind: dict[str, int] = {}
        self._generate_keys: dict[str, int] = {}
        self._objects: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._jobs: dict[int, TuningJob] = {}
        self._models: dict[int, TunedModel] = {}
        self._next_job = 1
        self._generation = 1
        self._batches: dict[int, BatchJob] = {}
        self._next_batch = 1
        self._arrivals: dict[str, int] = {}
        self._faults: dict[str, int] = {}
        self._window: deque[float] = deque()
        self._stopping = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeGemini:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _QuietServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() may wait for the loop
            name="fake-gemini",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # ends injected hangs
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve until KeyboardInterrupt (Ctrl-C), then stop cleanly."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # ---- statistics ------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "by_kind": dict(self._by_kind),
                "generate_keys": dict(self._generate_keys),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_kind = {}
            self._generate_keys = {}
            self._faults = {}

    def fault_stats(self) -> dict[str, int]:
        """How many faults of each kind were injected (and 429s from `requests_per_minute`)."""
        with self._lock:
            return dict(self._faults)

    def _count(self, kind: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_kind[kind] = self._by_kind.get(kind, 0) + 1

    # ---- the single dispatch point ---------------------------------------------------
    def _dispatch(self, request: Request) -> Reply:
        """Route one request. Fault injection and latency belong here, before the route runs."""
        route, kind, params = _route(request.method, request.path)
        if kind not in ("stats", "reset"):
            self._count(kind)
        injected = self.intercept(kind, request)
        if injected is not None:
            return injected
        if route is None:
            return Reply.error(404, f"{request.method} {request.path} is not served by the fake")
        try:
            return route(self, request, **params)
        except FakeError as exc:
            return Reply.error(exc.status, exc.message)

    def intercept(self, kind: str, request: Request) -> Reply | None:
        """Fault injection and latency: a Reply to answer instead of the real route, or None.

        Only generation requests are touched. Order: the per-day quota switch, the server-side
        requests-per-minute window, the added latency, then a fault drawn deterministically
        from (fault_seed, request body, how many times this body arrived before).
        """
        if kind != "generate":
            return None
        settings = self.settings
        if settings.daily_quota:
            self._note_fault("daily_quota")
            return _quota_reply(per_day=True, delay=settings.retry_delay_s)
        if settings.requests_per_minute is not None:
            refused = self._over_window(settings.requests_per_minute)
            if refused is not None:
                self._note_fault("over_limit")
                return _quota_reply(per_day=False, delay=refused)
        if settings.latency_s > 0:
            self._stopping.wait(settings.latency_s)
        if settings.fault_rate <= 0 or not settings.fault_kinds:
            return None
        key = hashlib.sha256(request.path.encode() + b"\0" + request.body).hexdigest()
        with self._lock:
            attempt = self._arrivals.get(key, 0)
            self._arrivals[key] = attempt + 1
        if _unit(f"fault:{settings.fault_seed}:{key}:{attempt}") >= settings.fault_rate:
            return None
        kinds = settings.fault_kinds
        fault = kinds[int(_unit(f"kind:{settings.fault_seed}:{key}:{attempt}") * len(kinds))]
        self._note_fault(fault)
        return self._fault_reply(fault, request)

    def _note_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + 1

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

    def _fault_reply(self, fault: str, request: Request) -> Reply:
        prompt = len(request.body) // 16
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        if fault == "rate_limit":
            return _quota_reply(per_day=False, delay=self.settings.retry_delay_s)
        if fault == "server_error":
            return Reply.error(500, "An internal error has occurred. Please retry.")
        if fault == "unavailable":
            return Reply.error(503, "The model is overloaded. Please try again later.")
        if fault == "hang":
            self._stopping.wait(self.settings.hang_s)
            return Reply.error(504, "Deadline expired before operation could complete.")
        if fault == "drop":
            return Reply(200, drop=True)
        if fault == "empty":
            return Reply.json(200, {"usageMetadata": usage, "modelVersion": "fake"})
        if fault == "safety":
            ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]
            candidate = {"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}
            return Reply.json(200, {"candidates": [candidate], "usageMetadata": usage})
        if fault == "malformed":
            body = b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "tru'
            return Reply(200, body, {"Content-Type": "application/json"})
        raise ValueError(f"unknown fault kind {fault!r}")

    # ---- generation ------------------------------------------------------------------
    def _generate(self, request: Request, model: str, tuned: TunedModel | None) -> Reply:
        body = _json_body(request)
        payload = self._answer(request.path, body, model, tuned)
        if request.path.endswith(":streamGenerateContent"):
            data = json.dumps(payload, ensure_ascii=False, sort_keys=True)
            if request.query.get("alt") == "sse":
                return Reply(
                    200, f"data: {data}\r\n\r\n".encode(), {"Content-Type": "text/event-stream"}
                )
            return Reply(200, f"[{data}]".encode(), {"Content-Type": "application/json"})
        return Reply.json(200, payload)

    def _answer(
        self, path: str, body: dict[str, Any], model: str, tuned: TunedModel | None
    ) -> dict[str, Any]:
        """The GenerateContentResponse (REST JSON) for one request body: a pure function of
        the model and the body, counted in `generate_keys` under the path and the body."""
        turns = behaviour.conversation(body)
        if not turns:  # also what a send cancelled before its body arrives looks like
            raise FakeError(400, "contents must not be empty")
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            key = hashlib.sha256((path + canonical).encode()).hexdigest()
            self._generate_keys[key] = self._generate_keys.get(key, 0) + 1
        material = json.dumps({"model": model, "request": canonical}, sort_keys=True)
        rng = random.Random(int.from_bytes(hashlib.sha256(material.encode()).digest()[:16], "big"))
        text = None
        if tuned is not None:
            text = tuned.memory.get(behaviour.memory_key(turns))
        if text is None:
            text = behaviour.respond(turns, self.settings, rng)
        finish = "STOP"
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        words = text.split()
        if isinstance(limit, int) and 0 < limit < len(words):
            text, finish = " ".join(words[:limit]), "MAX_TOKENS"
            words = words[:limit]
        prompt_words = sum(len(t.split()) for _, t in turns)
        system = body.get("systemInstruction")
        if isinstance(system, dict):
            prompt_words += len(behaviour.part_text(system).split())
        payload = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": finish,
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_words,
                "candidatesTokenCount": len(words),
                "totalTokenCount": prompt_words + len(words),
            },
            "modelVersion": tuned.base_model if tuned is not None else model,
        }
        return payload

    def _route_generate_api_key(self, request: Request, model: str, method: str) -> Reply:
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            raise FakeError(401, "API key not valid. Please pass a valid API key.")
        return self._generate(request, self._base_model(model), None)

    def _route_generate_vertex(
        self, request: Request, project: str, location: str, model: str, method: str
    ) -> Reply:
        _require_auth(request)
        return self._generate(request, self._base_model(model), None)

    def _route_generate_tuned(
        self, request: Request, project: str, location: str, collection: str, id: str, method: str
    ) -> Reply:
        _require_auth(request)
        with self._lock:
            tuned = self._models.get(int(id)) if id.isdigit() else None
        if tuned is None:
            raise FakeError(404, f"{collection} {id} not found")
        return self._generate(request, f"{collection}/{id}", tuned)

    def _base_model(self, model: str, purpose: str = "generateContent") -> str:
        name = model.split("/")[-1]
        if name not in self.settings.models:
            raise FakeError(
                404,
                f"models/{name} is not found for API version v1beta, or is not supported "
                f"for {purpose}.",
            )
        return name

    # ---- tuning ----------------------------------------------------------------------
    def _route_tuning_create(self, request: Request, project: str, location: str) -> Reply:
        _require_auth(request)
        body = _json_body(request)
        spec = body.get("supervisedTuningSpec") or {}
        uri = spec.get("trainingDatasetUri")
        if not isinstance(uri, str) or not uri:
            raise FakeError(400, "supervisedTuningSpec.trainingDatasetUri is required")
        pre_tuned = body.get("preTunedModel") or {}
        # google-genai 3.4 sends this one field in snake_case ("tuned_model_name"); proto
        # JSON parsing on the real service accepts both spellings, so the fake does too.
        pre = pre_tuned.get("tunedModelName") or pre_tuned.get("tuned_model_name")
        parent_memory: dict[str, str] = {}
        if pre:
            parent = self._tuned_model(str(pre))
            base_model, parent_memory = parent.base_model, parent.memory
        else:
            base = body.get("baseModel")
            if not isinstance(base, str) or not base:
                raise FakeError(400, "baseModel or preTunedModel is required")
            base_model = self._base_model(base, "tuning")
        memory, error = self._read_training(uri)
        with self._lock:
            number = self._next_job
            self._next_job += 1
            job = TuningJob(
                number=number,
                project=project,
                location=location,
                base_model=base_model,
                display_name=str(body.get("tunedModelDisplayName") or f"tuned-{number}"),
                create_time=_now(),
                memory=None if memory is None else {**parent_memory, **memory},
                error=error,
                pre_tuned=str(pre) if pre else None,
            )
            self._jobs[number] = job
            return Reply.json(200, self._job_resource(job, body))

    def _route_tuning_get(self, request: Request, project: str, location: str, id: str) -> Reply:
        _require_auth(request)
        with self._lock:
            job = self._jobs.get(int(id)) if id.isdigit() else None
            if job is None:
                raise FakeError(404, f"tuning job {id} not found")
            if job.state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                if job.error is not None:
                    job.state = "JOB_STATE_FAILED"
                elif job.polls < self.settings.tuning_polls:
                    job.polls += 1
                    job.state = "JOB_STATE_RUNNING"
                else:
                    assert job.memory is not None
                    job.tuned = TunedModel(job.number, job.base_model, job.memory)
                    self._models[job.number] = job.tuned
                    job.state = "JOB_STATE_SUCCEEDED"
            return Reply.json(200, self._job_resource(job))

    def _route_tuning_cancel(self, request: Request, project: str, location: str, id: str) -> Reply:
        _require_auth(request)
        with self._lock:
            job = self._jobs.get(int(id)) if id.isdigit() else None
            if job is None:
                raise FakeError(404, f"tuning job {id} not found")
            if job.state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                job.state = "JOB_STATE_CANCELLED"
            return Reply.json(200, {})

    def _route_tuning_list(self, request: Request, project: str, location: str) -> Reply:
        _require_auth(request)
        size = int(request.query.get("pageSize") or 100)
        start = int(request.query.get("pageToken") or 0)
        with self._lock:
            jobs = [
                j
                for j in sorted(self._jobs.values(), key=lambda j: -j.number)
                if (j.project, j.location) == (project, location)
            ]
            page = [self._job_resource(j) for j in jobs[start : start + size]]
        payload: dict[str, Any] = {"tuningJobs": page}
        if start + size < len(jobs):
            payload["nextPageToken"] = str(start + size)
        return Reply.json(200, payload)

    def _tuned_model(self, name: str) -> TunedModel:
        match = re.fullmatch(r"projects/[^/]+/locations/[^/]+/(?:models|endpoints)/(\d+)", name)
        with self._lock:
            model = self._models.get(int(match.group(1))) if match else None
        if model is None:
            raise FakeError(404, f"tuned model {name} not found")
        return model

    def _read_training(self, uri: str) -> tuple[dict[str, str] | None, str | None]:
        with self._lock:
            stored = self._objects.get(uri)
        if stored is None:
            return None, f"training dataset {uri} not found"
        memory: dict[str, str] = {}
        for number, line in enumerate(stored[0].decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                turns = behaviour.conversation(row)
            except (ValueError, AttributeError):
                return None, f"{uri} line {number}: not a JSON object"
            if len(turns) < 2 or turns[-1][0] != "model":
                return None, f"{uri} line {number}: contents must end with a model turn"
            memory[behaviour.memory_key(turns[:-1])] = turns[-1][1]
        if not memory:
            return None, f"training dataset {uri} has no examples"
        return memory, None

    def _job_resource(self, job: TuningJob, request_body: dict | None = None) -> dict[str, Any]:
        parent = f"projects/{job.project}/locations/{job.location}"
        resource: dict[str, Any] = {
            "name": f"{parent}/tuningJobs/{job.number}",
            "state": job.state,
            "createTime": job.create_time,
            "tunedModelDisplayName": job.display_name,
        }
        if job.pre_tuned:
            resource["preTunedModel"] = {"tunedModelName": job.pre_tuned}
        else:
            resource["baseModel"] = job.base_model
        if request_body and "supervisedTuningSpec" in request_body:
            resource["supervisedTuningSpec"] = request_body["supervisedTuningSpec"]
        if job.state == "JOB_STATE_SUCCEEDED":
            resource["tunedModel"] = {
                "model": f"{parent}/models/{job.number}",
                "endpoint": f"{parent}/endpoints/{job.number}",
            }
            resource["endTime"] = _now()
        if job.state == "JOB_STATE_FAILED":
            resource["error"] = {"code": 400, "message": job.error}
            resource["endTime"] = _now()
        return resource

    # ---- batch jobs ------------------------------------------------------------------
    def _route_batch_create_api_key(self, request: Request, model: str) -> Reply:
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            raise FakeError(401, "API key not valid. Please pass a valid API key.")
        base = self._base_model(model, "batchGenerateContent")
        batch = _json_body(request).get("batch") or {}
        inlined = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(inlined, list) or not inlined:
            raise FakeError(400, "batch.inputConfig.requests.requests is required")
        lines = []
        for item in inlined:
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                raise FakeError(400, "every inlined request needs a request object")
            lines.append({"request": item["request"], "metadata": item.get("metadata")})
        job = self._new_batch("mldev", f"models/{base}", batch.get("displayName"), lines)
        return Reply.json(200, self._mldev_batch(job))

    def _route_batch_get_api_key(self, request: Request, id: str) -> Reply:
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            raise FakeError(401, "API key not valid. Please pass a valid API key.")
        job = self._poll_batch(id, "mldev")
        return Reply.json(200, self._mldev_batch(job))

    def _route_batch_create_vertex(self, request: Request, project: str, location: str) -> Reply:
        _require_auth(request)
        body = _json_body(request)
        model = str(body.get("model") or "")
        self._batch_model(model)  # 404 for an unknown model, before anything is queued
        input_config = body.get("inputConfig") or {}
        uris = (input_config.get("gcsSource") or {}).get("uris") or []
        prefix = ((body.get("outputConfig") or {}).get("gcsDestination") or {}).get(
            "outputUriPrefix"
        )
        if not uris or not prefix:
            raise FakeError(400, "inputConfig.gcsSource.uris and an output prefix are required")
        lines = []
        for uri in uris:
            with self._lock:
                stored = self._objects.get(uri)
            if stored is None:
                raise FakeError(400, f"batch input {uri} not found")
            for number, line in enumerate(stored[0].decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise FakeError(400, f"{uri} line {number}: not JSON") from None
                if not isinstance(row, dict) or not isinstance(row.get("request"), dict):
                    raise FakeError(400, f"{uri} line {number}: needs a request object")
                lines.append(row)
        job = self._new_batch("vertex", model, body.get("displayName"), lines)
        job.parent = f"projects/{project}/locations/{location}"
        job.input_config = input_config
        job.output_prefix = str(prefix).rstrip("/")
        return Reply.json(200, self._vertex_batch(job))

    def _route_batch_get_vertex(
        self, request: Request, project: str, location: str, id: str
    ) -> Reply:
        _require_auth(request)
        job = self._poll_batch(id, "vertex")
        return Reply.json(200, self._vertex_batch(job))

    def _route_batch_list_api_key(self, request: Request) -> Reply:
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            raise FakeError(401, "API key not valid. Please pass a valid API key.")
        with self._lock:
            jobs = [j for j in self._batches.values() if j.backend == "mldev"]
        jobs.sort(key=lambda j: -j.number)
        return Reply.json(200, {"operations": [self._mldev_batch(j) for j in jobs[:100]]})

    def _route_batch_list_vertex(self, request: Request, project: str, location: str) -> Reply:
        _require_auth(request)
        parent = f"projects/{project}/locations/{location}"
        with self._lock:
            jobs = [j for j in self._batches.values() if j.parent == parent]
        jobs.sort(key=lambda j: -j.number)
        return Reply.json(200, {"batchPredictionJobs": [self._vertex_batch(j) for j in jobs[:100]]})

    def _new_batch(
        self, backend: str, model: str, display: Any, lines: list[dict[str, Any]]
    ) -> BatchJob:
        with self._lock:
            number = self._next_batch
            self._next_batch += 1
            job = BatchJob(
                number=number,
                backend=backend,
                model=model,
                display_name=str(display or f"batch-{number}"),
                create_time=_now(),
                requests=lines,
            )
            self._batches[number] = job
        return job

    def _poll_batch(self, id: str, backend: str) -> BatchJob:
        with self._lock:
            job = self._batches.get(int(id)) if id.isdigit() else None
        if job is None or job.backend != backend:
            raise FakeError(404, f"batch {id} not found")
        if job.state not in ("PENDING", "RUNNING"):
            return job
        if job.polls < self.settings.batch_polls:
            job.polls += 1
            job.state = "RUNNING"
            return job
        results = []
        for line in job.requests:
            body = dict(line["request"])
            model = str(body.pop("model", "") or job.model)
            body.pop("labels", None)
            try:
                name, tuned = self._batch_model(model)
                payload = self._answer(f"batch:{name}", body, name, tuned)
                results.append({"response": payload, "metadata": line.get("metadata")})
            except FakeError as exc:
                error = {"code": exc.status, "message": exc.message}
                results.append({"error": error, "metadata": line.get("metadata")})
        job.results = results
        if job.backend == "vertex":
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            job.output_dir = f"{job.output_prefix}/prediction-model-{stamp}"
            out = []
            for line, result in zip(job.requests, results, strict=True):
                row = {"status": "", "processed_time": _now(), "request": line["request"]}
                if "response" in result:
                    row["response"] = result["response"]
                else:
                    row["status"] = result["error"]["message"]
                out.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
            bucket, _, name = job.output_dir.removeprefix("gs://").partition("/")
            self._store(
                bucket,
                f"{name}/predictions.jsonl",
                "".join(line + "\n" for line in out).encode(),
                "application/jsonl",
            )
        job.state = "SUCCEEDED"
        return job

    def _batch_model(self, model: str) -> tuple[str, TunedModel | None]:
        """(name used to seed answers, tuned model or None) of a batch request's model."""
        if re.fullmatch(r"projects/[^/]+/locations/[^/]+/(?:models|endpoints)/\d+", model):
            tuned = self._tuned_model(model)
            kind, number = model.split("/")[-2:]
            return f"{kind}/{number}", tuned
        return self._base_model(model, "batch prediction"), None

    def _mldev_batch(self, job: BatchJob) -> dict[str, Any]:
        name = f"batches/{job.number}"
        metadata: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "name": name,
            "displayName": job.display_name,
            "model": job.model,
            "state": f"BATCH_STATE_{job.state}",
            "createTime": job.create_time,
            "updateTime": _now(),
        }
        operation: dict[str, Any] = {"name": name, "metadata": metadata}
        if job.state == "SUCCEEDED":
            metadata["endTime"] = _now()
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": job.results}}
            operation["done"] = True
            operation["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
                "GenerateContentBatchOutput",
                "inlinedResponses": {"inlinedResponses": job.results},
            }
        return operation

    def _vertex_batch(self, job: BatchJob) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "name": f"{job.parent}/batchPredictionJobs/{job.number}",
            "displayName": job.display_name,
            "model": job.model,
            "state": f"JOB_STATE_{job.state}",
            "createTime": job.create_time,
            "updateTime": _now(),
            "inputConfig": job.input_config,
            "outputConfig": {
                "predictionsFormat": "jsonl",
                "gcsDestination": {"outputUriPrefix": job.output_prefix},
            },
        }
        if job.state == "SUCCEEDED":
            failed = sum(1 for r in job.results if "error" in r)
            resource["endTime"] = _now()
            resource["outputInfo"] = {"gcsOutputDirectory": job.output_dir}
            resource["completionStats"] = {
                "successfulCount": str(len(job.results) - failed),
                "failedCount": str(failed),
            }
        return resource

    # ---- Cloud Storage ---------------------------------------------------------------
    def _route_upload(self, request: Request, bucket: str) -> Reply:
        upload_type = request.query.get("uploadType", "")
        if request.method == "PUT" or request.query.get("upload_id"):
            return self._resumable_chunk(request, bucket)
        if upload_type == "media":
            name = request.query.get("name")
            if not name:
                raise FakeError(400, "uploadType=media needs a name")
            content_type = request.headers.get("content-type", "application/octet-stream")
            return self._store(bucket, name, request.body, content_type)
        if upload_type == "multipart":
            metadata, data, content_type = _split_multipart(request)
            name = metadata.get("name") or request.query.get("name")
            if not name:
                raise FakeError(400, "multipart upload metadata has no name")
            return self._store(bucket, name, data, metadata.get("contentType") or content_type)
        if upload_type == "resumable":
            metadata = _json_body(request) if request.body else {}
            name = metadata.get("name") or request.query.get("name")
            if not name:
                raise FakeError(400, "resumable upload has no name")
            upload_id = uuid.uuid4().hex
            content_type = metadata.get("contentType") or request.headers.get(
                "x-upload-content-type", "application/octet-stream"
            )
            with self._lock:
                self._uploads[upload_id] = {
                    "bucket": bucket,
                    "name": name,
                    "content_type": content_type,
                    "data": bytearray(),
                }
            location = (
                f"{self.url}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
                f"?uploadType=resumable&upload_id={upload_id}"
            )
            return Reply(200, b"", {"Location": location})
        raise FakeError(400, f"unsupported uploadType {upload_type!r}")

    def _resumable_chunk(self, request: Request, bucket: str) -> Reply:
        upload_id = request.query.get("upload_id", "")
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise FakeError(404, "unknown upload_id")
        content_range = request.headers.get("content-range", "")
        match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", content_range.strip())
        data: bytearray = upload["data"]
        if match is None and content_range:
            raise FakeError(400, f"bad Content-Range {content_range!r}")
        if match and match.group(1) is not None:
            start = int(match.group(1))
            if start != len(data):
                return Reply(308, b"", _range_header(len(data)))
        data.extend(request.body)
        total = match.group(3) if match else str(len(data))
        if total != "*" and int(total) == len(data):
            with self._lock:
                self._uploads.pop(upload_id, None)
            return self._store(
                upload["bucket"], upload["name"], bytes(data), upload["content_type"]
            )
        return Reply(308, b"", _range_header(len(data)))

    def _store(self, bucket: str, name: str, data: bytes, content_type: str) -> Reply:
        with self._lock:
            generation = self._generation
            self._generation += 1
            now = _now()
            resource = {
                "kind": "storage#object",
                "id": f"{bucket}/{name}/{generation}",
                "selfLink": f"{self.url}/storage/v1/b/{bucket}/o/{quote(name, safe='')}",
                "mediaLink": f"{self.url}/download/storage/v1/b/{bucket}/o/"
                f"{quote(name, safe='')}?generation={generation}&alt=media",
                "name": name,
                "bucket": bucket,
                "generation": str(generation),
                "metageneration": "1",
                "contentType": content_type,
                "storageClass": "STANDARD",
                "size": str(len(data)),
                "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
                "crc32c": base64.b64encode(_crc32c(data).to_bytes(4, "big")).decode(),
                "etag": base64.b64encode(f"{generation}".encode()).decode(),
                "timeCreated": now,
                "updated": now,
            }
            self._objects[f"gs://{bucket}/{name}"] = (data, resource)
        return Reply.json(200, resource)

    def _route_object(self, request: Request, bucket: str, name: str) -> Reply:
        with self._lock:
            stored = self._objects.get(f"gs://{bucket}/{name}")
        if stored is None:
            raise FakeError(404, f"No such object: {bucket}/{name}")
        data, resource = stored
        if request.query.get("alt") == "media" or request.path.startswith("/download/"):
            headers = {
                "Content-Type": resource["contentType"],
                "x-goog-hash": f"crc32c={resource['crc32c']},md5={resource['md5Hash']}",
                "x-goog-generation": resource["generation"],
            }
            return Reply(200, data, headers)
        return Reply.json(200, resource)

    def _route_object_list(self, request: Request, bucket: str) -> Reply:
        prefix = request.query.get("prefix", "")
        with self._lock:
            items = [
                resource
                for uri, (_, resource) in sorted(self._objects.items())
                if uri.startswith(f"gs://{bucket}/") and resource["name"].startswith(prefix)
            ]
        return Reply.json(200, {"kind": "storage#objects", "items": items})

    def _route_bucket(self, request: Request, bucket: str) -> Reply:
        # Buckets exist implicitly: the storage client looks its bucket up before uploading.
        return Reply.json(
            200,
            {
                "kind": "storage#bucket",
                "id": bucket,
                "name": bucket,
                "projectNumber": "0",
                "metageneration": "1",
                "location": FAKE_LOCATION.upper(),
                "storageClass": "STANDARD",
                "locationType": "region",
                "timeCreated": "2026-01-01T00:00:00.000Z",
                "updated": "2026-01-01T00:00:00.000Z",
            },
        )

    def object_bytes(self, uri: str) -> bytes | None:
        """The stored bytes of `gs://bucket/name`, or None (for tests)."""
        with self._lock:
            stored = self._objects.get(uri)
        return stored[0] if stored else None

    # ---- fake-only endpoints ---------------------------------------------------------
    def _route_stats(self, request: Request) -> Reply:
        return Reply.json(200, self.stats())

    def _route_reset(self, request: Request) -> Reply:
        self.reset_stats()
        return Reply.json(200, self.stats())


# ---- routing -------------------------------------------------------------------------
_ROUTES: list[tuple[str, re.Pattern[str], str, Any]] = [
    ("GET", re.compile(r"/_fake/stats"), "stats", FakeGemini._route_stats),
    ("POST", re.compile(r"/_fake/reset"), "reset", FakeGemini._route_reset),
    (
        "POST",
        re.compile(rf"{_VERSION}/models/(?P<model>[^/:]+){_METHOD}"),
        "generate",
        FakeGemini._route_generate_api_key,
    ),
    (
        "POST",
        re.compile(rf"{_VERSION}{_PARENT}/publishers/google/models/(?P<model>[^/:]+){_METHOD}"),
        "generate",
        FakeGemini._route_generate_vertex,
    ),
    (
        "POST",
        re.compile(
            rf"{_VERSION}{_PARENT}/(?P<collection>endpoints|models)/(?P<id>[^/:]+){_METHOD}"
        ),
        "generate",
        FakeGemini._route_generate_tuned,
    ),
    (
        "POST",
        re.compile(rf"{_VERSION}{_PARENT}/tuningJobs"),
        "tuning_create",
        FakeGemini._route_tuning_create,
    ),
    (
        "GET",
        re.compile(rf"{_VERSION}{_PARENT}/tuningJobs"),
        "tuning_list",
        FakeGemini._route_tuning_list,
    ),
    (
        "POST",
        re.compile(rf"{_VERSION}/models/(?P<model>[^/:]+):batchGenerateContent"),
        "batch_create",
        FakeGemini._route_batch_create_api_key,
    ),
    (
        "GET",
        re.compile(rf"{_VERSION}/batches/(?P<id>[^/:]+)"),
        "batch_get",
        FakeGemini._route_batch_get_api_key,
    ),
    ("GET", re.compile(rf"{_VERSION}/batches"), "batch_list", FakeGemini._route_batch_list_api_key),
    (
        "GET",
        re.compile(rf"{_VERSION}{_PARENT}/batchPredictionJobs"),
        "batch_list",
        FakeGemini._route_batch_list_vertex,
    ),
    (
        "POST",
        re.compile(rf"{_VERSION}{_PARENT}/batchPredictionJobs"),
        "batch_create",
        FakeGemini._route_batch_create_vertex,
    ),
    (
        "GET",
        re.compile(rf"{_VERSION}{_PARENT}/batchPredictionJobs/(?P<id>[^/:]+)"),
        "batch_get",
        FakeGemini._route_batch_get_vertex,
    ),
    (
        "GET",
        re.compile(rf"{_VERSION}{_PARENT}/tuningJobs/(?P<id>[^/:]+)"),
        "tuning_get",
        FakeGemini._route_tuning_get,
    ),
    (
        "POST",
        re.compile(rf"{_VERSION}{_PARENT}/tuningJobs/(?P<id>[^/:]+):cancel"),
        "tuning_cancel",
        FakeGemini._route_tuning_cancel,
    ),
    (
        "POST",
        re.compile(r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o"),
        "upload",
        FakeGemini._route_upload,
    ),
    (
        "PUT",
        re.compile(r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o"),
        "upload",
        FakeGemini._route_upload,
    ),
    (
        "GET",
        re.compile(r"/(?:download/)?storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>.+)"),
        "object_get",
        FakeGemini._route_object,
    ),
    (
        "GET",
        re.compile(r"/storage/v1/b/(?P<bucket>[^/]+)/o"),
        "object_list",
        FakeGemini._route_object_list,
    ),
    ("GET", re.compile(r"/storage/v1/b/(?P<bucket>[^/]+)"), "bucket_get", FakeGemini._route_bucket),
]


def _route(method: str, path: str) -> tuple[Any, str, dict[str, str]]:
    for route_method, pattern, kind, handler in _ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            return handler, kind, params
    return None, "unknown", {}


def _handler_for(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeGemini/1.0"
        # One buffered write per reply (flushed by handle_one_request) and no Nagle delay:
        # otherwise keep-alive clients wait ~40 ms per request on delayed ACKs.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # never log (keys, paths)
            return

        def _serve(self) -> None:
            try:
                body = self._read_body()
            except ValueError as exc:
                self._send(Reply.error(400, str(exc)))
                return
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Request(self.command, parts.path, query, headers, body)
            try:
                reply = fake._dispatch(request)
            except Exception as exc:  # a bug in the fake: answer 500 rather than hang up
                reply = Reply.error(500, f"fake internal error: {type(exc).__name__}")
            self._send(reply)

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > _MAX_BODY:
                raise ValueError("request body too large")
            return self.rfile.read(length) if length else b""

        def _send(self, reply: Reply) -> None:
            if reply.drop:  # hang up: the client sees the connection close with no reply
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    return Handler


# ---- helpers -------------------------------------------------------------------------
def _unit(material: str) -> float:
    """A number in [0, 1) that is a pure function of `material`."""
    return int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big") / 2.0**64


def _quota_reply(per_day: bool, delay: float) -> Reply:
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


def _require_auth(request: Request) -> None:
    if not (request.headers.get("authorization") or request.headers.get("x-goog-api-key")):
        raise FakeError(401, "Request is missing required authentication credential.")


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise FakeError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise FakeError(400, "request body must be a JSON object")
    return body


def _split_multipart(request: Request) -> tuple[dict[str, Any], bytes, str]:
    """The (JSON metadata, data, data content type) of a multipart/related upload."""
    content_type = request.headers.get("content-type", "")
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise FakeError(400, "multipart upload without a boundary")
    delimiter = b"--" + match.group(1).encode()
    sections = request.body.split(delimiter)
    parts: list[tuple[dict[str, str], bytes]] = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n")
        head, sep, payload = section.partition(b"\r\n\r\n")
        if not sep:
            continue
        payload = payload.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
    if len(parts) < 2:
        raise FakeError(400, "multipart upload needs a metadata part and a data part")
    try:
        metadata = json.loads(parts[0][1] or b"{}")
    except ValueError:
        raise FakeError(400, "multipart metadata is not JSON") from None
    data_type = parts[1][0].get("content-type", "application/octet-stream")
    return metadata, parts[1][1], data_type


def _range_header(received: int) -> dict[str, str]:
    return {"Range": f"bytes=0-{received - 1}"} if received else {}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    try:  # the C implementation when the storage client brought it along
        import google_crc32c

        return int(google_crc32c.value(data))
    except ImportError:
        pass
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
