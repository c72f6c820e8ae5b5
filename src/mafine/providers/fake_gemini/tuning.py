"""Vertex AI supervised tuning jobs: create, get (which advances the job), cancel, list.

Job resource: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.tuningJobs
A finished job names its tuned model both as a model resource and as the endpoint serving it
(`tunedModel.model`, `tunedModel.endpoint`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from mafine.providers.fake_gemini import behaviour, routing
from mafine.providers.fake_gemini.generation import base_model
from mafine.providers.fake_gemini.routing import FakeError, Reply, Request, Route, route
from mafine.providers.fake_gemini.settings import FakeSettings
from mafine.providers.fake_gemini.state import Collection
from mafine.providers.gemini import models

# The REST enum of the adapter sizes google-genai sends (AdapterSize).
_ADAPTER_NUMBERS = {"ADAPTER_SIZE_ONE": 1, "ADAPTER_SIZE_TWO": 2, "ADAPTER_SIZE_FOUR": 4,
                    "ADAPTER_SIZE_EIGHT": 8, "ADAPTER_SIZE_SIXTEEN": 16}  # fmt: skip
TUNED_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/(?:models|endpoints)/(\d+)")

_JOBS = rf"{routing.VERTEX}/tuningJobs"
_JOB = _JOBS + r"/(?P<id>[^/:]+)"


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
    examples: int = 0  # in the training file
    dropped: list[int] = dataclasses.field(default_factory=list)  # 1-based, over-long

    def tuned(self) -> TunedModel | None:
        """The model a succeeded job made (numbered like the job)."""
        if self.state != "JOB_STATE_SUCCEEDED" or self.memory is None:
            return None
        return TunedModel(self.number, self.base_model, self.memory)


class Tuning:
    """Tuning jobs and the tuned models they make (numbered alike: job N makes model N)."""

    ROUTES: ClassVar[list[Route]] = [
        route("POST", _JOBS, "tuning_create", "create_job"),
        route("GET", _JOBS, "tuning_list", "list_jobs"),
        route("GET", _JOB, "tuning_get", "get_job"),
        route("POST", _JOB + ":cancel", "tuning_cancel", "cancel_job"),
    ]

    def __init__(
        self,
        settings: Callable[[], FakeSettings],
        read_object: Callable[[str], bytes | None],
        state: Collection,
    ) -> None:
        self._settings = settings
        self._read_object = read_object
        self._state = state
        self._lock = threading.Lock()
        self.jobs = {job.number: job for job in (TuningJob(**r) for r in state.records())}
        self._models = {n: model for n, job in self.jobs.items() if (model := job.tuned())}
        self._next_job = 1 + max(self.jobs, default=0)

    def model(self, number: int) -> TunedModel | None:
        with self._lock:
            return self._models.get(number)

    def tuned_model(self, name: str) -> TunedModel:
        """The tuned model a `projects/P/locations/L/(models|endpoints)/N` name refers to."""
        match = TUNED_NAME.fullmatch(name)
        model = self.model(int(match.group(1))) if match else None
        if model is None:
            raise FakeError(404, f"tuned model {name} not found")
        return model

    # ---- routes ----------------------------------------------------------------------
    def create_job(self, request: Request, project: str, location: str) -> Reply:
        routing.require_auth(request)
        body = routing.json_body(request)
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
            parent = self.tuned_model(str(pre))
            base, parent_memory = parent.base_model, parent.memory
        else:
            named = body.get("baseModel")
            if not isinstance(named, str) or not named:
                raise FakeError(400, "baseModel or preTunedModel is required")
            base = base_model(self._settings(), named, "tuning")
        facts = models.facts_of(base)
        size = (spec.get("hyperParameters") or {}).get("adapterSize")
        if (
            facts is not None
            and size is not None
            and _ADAPTER_NUMBERS.get(size, 0) not in facts.adapter_sizes
        ):
            # Vertex AI refuses an unsupported size at creation (its wording not seen: ours).
            raise FakeError(400, f"Adapter size {size} is not supported for {base}.")
        memory, error, examples, dropped = self._read_training(uri)
        with self._lock:
            number = self._next_job
            self._next_job += 1
            job = TuningJob(
                number=number,
                project=project,
                location=location,
                base_model=base,
                display_name=str(body.get("tunedModelDisplayName") or f"tuned-{number}"),
                create_time=routing.now(),
                memory=None if memory is None else {**parent_memory, **memory},
                error=error,
                pre_tuned=str(pre) if pre else None,
                examples=examples,
                dropped=dropped,
            )
            self.jobs[number] = job
            self._save(job)
            return Reply.json(200, _resource(job, body))

    def get_job(self, request: Request, project: str, location: str, id: str) -> Reply:
        routing.require_auth(request)
        with self._lock:
            job = self._job(id)
            if job.state in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                if job.polls < self._settings().tuning_queued_polls:
                    # Waiting for tuning quota: JOB_STATE_QUEUED (google-genai JobState).
                    job.polls += 1
                    job.state = "JOB_STATE_QUEUED"
                elif job.error is not None:
                    job.state = "JOB_STATE_FAILED"
                elif (
                    job.polls < self._settings().tuning_polls + self._settings().tuning_queued_polls
                ):
                    job.polls += 1
                    job.state = "JOB_STATE_RUNNING"
                else:
                    job.state = "JOB_STATE_SUCCEEDED"
                    tuned = job.tuned()
                    assert tuned is not None  # a job without an error has its memory
                    self._models[job.number] = tuned
                self._save(job)
            return Reply.json(200, _resource(job))

    def cancel_job(self, request: Request, project: str, location: str, id: str) -> Reply:
        routing.require_auth(request)
        with self._lock:
            job = self._job(id)
            if job.state in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                job.state = "JOB_STATE_CANCELLED"
                self._save(job)
            return Reply.json(200, {})

    def list_jobs(self, request: Request, project: str, location: str) -> Reply:
        routing.require_auth(request)
        size = int(request.query.get("pageSize") or 100)
        start = int(request.query.get("pageToken") or 0)
        with self._lock:
            jobs = [
                j
                for j in sorted(self.jobs.values(), key=lambda j: -j.number)
                if (j.project, j.location) == (project, location)
            ]
            page = [_resource(j) for j in jobs[start : start + size]]
        payload: dict[str, Any] = {"tuningJobs": page}
        if start + size < len(jobs):
            payload["nextPageToken"] = str(start + size)
        return Reply.json(200, payload)

    def _job(self, id: str) -> TuningJob:
        """The job a route names (called under the lock); 404 if there is none."""
        job = self.jobs.get(int(id)) if id.isdigit() else None
        if job is None:
            raise FakeError(404, f"tuning job {id} not found")
        return job

    def _save(self, job: TuningJob) -> None:
        self._state.put(str(job.number), dataclasses.asdict(job))

    def _read_training(self, uri: str) -> tuple[dict[str, str] | None, str | None, int, list[int]]:
        """(memory of the kept training conversations, None, examples, dropped line numbers)
        or (None, why the job fails, 0, []). An example over `MAX_EXAMPLE_TOKENS` (words, as
        the fake counts tokens) is dropped and counted, not failed, as Vertex AI does
        (tuningDataStats.supervisedTuningDataStats.totalTruncatedExampleCount; checked
        2026-12-06 at https://googleapis.github.io/js-genai/release_docs/interfaces/types.SupervisedTuningDataStats.html)."""
        stored = self._read_object(uri)
        if stored is None:
            return None, f"training dataset {uri} not found", 0, []
        memory: dict[str, str] = {}
        examples, dropped = 0, []
        limit = self._settings().max_example_tokens
        for number, line in enumerate(stored.decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                turns = behaviour.conversation(row)
            except (ValueError, AttributeError):
                return None, f"{uri} line {number}: not a JSON object", 0, []
            if len(turns) < 2 or turns[-1][0] != "model":
                return None, f"{uri} line {number}: contents must end with a model turn", 0, []
            examples += 1
            if sum(len(text.split()) for _, text in turns) > limit:
                dropped.append(examples)
                continue
            memory[behaviour.memory_key(turns[:-1])] = turns[-1][1]
        if not memory:
            return None, f"training dataset {uri} has no examples", examples, dropped
        return memory, None, examples, dropped


def _resource(job: TuningJob, request_body: dict | None = None) -> dict[str, Any]:
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
    if job.state not in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING") and job.examples:
        resource["tuningDataStats"] = {
            "supervisedTuningDataStats": {
                "tuningDatasetExampleCount": str(job.examples),
                "totalTruncatedExampleCount": str(len(job.dropped)),
                "truncatedExampleIndices": [str(i) for i in job.dropped[:100]],
                "droppedExampleReasons": [
                    f"The example has more than {models.MAX_EXAMPLE_TOKENS} tokens."
                ]
                * min(len(job.dropped), 100),
            }
        }
    if job.state == "JOB_STATE_SUCCEEDED":
        resource["tunedModel"] = {
            "model": f"{parent}/models/{job.number}",
            "endpoint": f"{parent}/endpoints/{job.number}",
        }
        resource["endTime"] = routing.now()
    if job.state == "JOB_STATE_FAILED":
        resource["error"] = {"code": 400, "message": job.error}
        resource["endTime"] = routing.now()
    return resource
