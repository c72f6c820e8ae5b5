"""Supervised tuning on Vertex AI: the training file in Vertex's format, its upload to Cloud
Storage, the job (found again by name after a crash instead of being paid for twice), polls."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from hashlib import sha256
from typing import Any

from mafine.artifacts import Message, SFTExample
from mafine.errors import MafineError
from mafine.jsonl import read_rows
from mafine.providers.base import TuningSpec, TuningStatus
from mafine.providers.gemini import models
from mafine.providers.gemini.generation import to_rest_contents
from mafine.providers.gemini.settings import TUNING_ROUTES

ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR",
                 8: "ADAPTER_SIZE_EIGHT", 16: "ADAPTER_SIZE_SIXTEEN"}  # fmt: skip
ENDED_BADLY = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
# States worth a line while a job is not yet running or not moving (google-genai JobState):
# a job can wait in a queue for quota, or be paused, for hours.
WAITING = {
    "JOB_STATE_QUEUED": "queued (waiting for tuning quota or capacity)",
    "JOB_STATE_PENDING": "pending (waiting for resources)",
    "JOB_STATE_PAUSED": "paused",
    "JOB_STATE_UPDATING": "updating",
    "JOB_STATE_CANCELLING": "being cancelled",
}


class VertexTuning:
    """The tuning half of GeminiProvider (a mixin): uses its `_tuning_client`, `_connection`,
    `settings`, `control_call` (a retried control-plane call), `_notice` and `redact`."""

    _tuning_client: Any  # at the tuning location
    _connection: Any
    settings: Any
    control_call: Callable[..., Any]
    _notice: Callable[[str, str], None]
    redact: Callable[[str], str]
    _tuning_reported: set[tuple[str, str]]  # (job, state or "stats") already shown

    def start_tuning(self, spec: TuningSpec) -> str:
        """Submit a tuning job, or find the one a killed earlier attempt already submitted.

        The job's display name is derived from the spec and a digest of the uploaded data, so
        a job that was submitted but never recorded (the process died in between) is found by
        name and polled instead of being paid for twice.
        """
        from google.genai import types

        if not self._connection.vertex:
            raise MafineError(TUNING_ROUTES)
        bucket = self.settings.tuning_bucket
        if not bucket:
            raise MafineError(
                "tuning on Vertex AI needs provider.gemini.tuning_bucket (gs://bucket/prefix)"
            )
        check_adapter_size(spec)
        vertex_file, digest = self._vertex_file(spec)
        examples = len(vertex_file.read_text().splitlines())
        if not examples:
            raise MafineError(f"{spec.training_file} has no examples to tune on")
        if examples < models.RECOMMENDED_TUNING_EXAMPLES:
            self._notice(
                "few_examples",
                f"gemini: tuning on {examples} examples; Vertex AI recommends at least "
                f"{models.RECOMMENDED_TUNING_EXAMPLES} (raise data.train_size)",
            )
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
            job = self.control_call(
                lambda: self._tuning_client.tunings.tune(
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
        pager = self.control_call(
            lambda: self._tuning_client.tunings.list(config={"page_size": 100}), ""
        )
        for _ in range(pages):
            found += [
                job
                for job in pager.page
                if job.tuned_model_display_name == display
                and (job.state is None or job.state.name not in ENDED_BADLY)
            ]
            if not pager.config.get("page_token"):
                break
            self.control_call(pager.next_page, "")
        if not found:
            return None
        found.sort(key=lambda job: str(job.create_time or ""), reverse=True)
        return str(found[0].name)

    def tuned_model_of(self, endpoint: str, pages: int = 5) -> str | None:
        """The Model resource (`projects/P/locations/L/models/ID`) whose tuning made the model
        `endpoint` serves, from the first pages of the tuning job list; None if not there.

        A tuning job names both (`tunedModel.model`, `tunedModel.endpoint`); generation takes
        the endpoint, a batch prediction job the model."""
        pager = self.control_call(
            lambda: self._tuning_client.tunings.list(config={"page_size": 100}), endpoint
        )
        for _ in range(pages):
            for job in pager.page:
                if job.tuned_model and job.tuned_model.endpoint == endpoint:
                    return str(job.tuned_model.model)
            if not pager.config.get("page_token"):
                break
            self.control_call(pager.next_page, endpoint)
        return None

    def poll_tuning(self, job_name: str) -> TuningStatus:
        job = self.control_call(
            lambda: _unless_not_found(self._tuning_client.tunings.get, job_name), job_name
        )
        if job is None:
            # The stage records the job as failed, and a failed job is submitted again by
            # the next run: that is the way on, said here because it costs a new job.
            return TuningStatus(
                state="failed",
                error=(
                    f"Vertex AI no longer knows tuning job {job_name} (404 NOT_FOUND): it was "
                    "deleted, or provider.gemini.project or tuning_location changed since it was "
                    "submitted (restore them if so); otherwise the next run forgets it and "
                    "submits the job again"
                ),
            )
        state = job.state.name if job.state else "JOB_STATE_PENDING"
        self._report_job(job_name, state, job)
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

    def _report_job(self, job_name: str, state: str, job: Any) -> None:
        """One line per job and waiting state, and one for the examples Vertex AI dropped
        (over-long ones are dropped, not failed: `tuningDataStats`, read once it appears)."""
        from mafine.ui import console

        reported = self._tuning_reported
        short = job_name.rsplit("/", 1)[-1]
        if state in WAITING and (job_name, state) not in reported:
            reported.add((job_name, state))
            console.print(f"gemini: tuning job {short} is {WAITING[state]}")
        dropped = dropped_examples(job)
        if dropped is not None and (job_name, "stats") not in reported:
            reported.add((job_name, "stats"))
            console.print(self.redact(f"gemini: tuning job {short}: {dropped}"))

    def _vertex_file(self, spec: TuningSpec) -> tuple[Any, str]:
        """The SFT file in Vertex's format, in the job's own directory (named alike wherever
        the run directory lives); and its digest."""
        vertex_file = spec.output_dir / "training.vertex.jsonl"
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


def _unless_not_found(get: Callable[..., Any], name: str) -> Any:
    """`get(name=name)`, or None where the service answers 404 (it does not know the job)."""
    from google.genai import errors

    try:
        return get(name=name)
    except errors.APIError as exc:
        if exc.code == 404:
            return None
        raise


def check_adapter_size(spec: TuningSpec) -> None:
    """Refuse an adapter size the base model does not tune with, before anything is paid."""
    facts = models.facts_of(spec.start_checkpoint)
    if facts is not None and spec.adapter_size not in facts.adapter_sizes:
        sizes = ", ".join(str(size) for size in facts.adapter_sizes)
        raise MafineError(
            f"{facts.name} tunes with adapter sizes {sizes}, not {spec.adapter_size}; set "
            "finetune.adapter_size to one of them"
        )


def dropped_examples(job: Any) -> str | None:
    """What a job's data statistics say about examples Vertex AI dropped, or None before the
    statistics exist (SupervisedTuningDataStats: tuningDatasetExampleCount,
    totalTruncatedExampleCount, droppedExampleReasons; https://googleapis.github.io/js-genai/release_docs/interfaces/types.SupervisedTuningDataStats.html,
    checked 2026-12-06)."""
    stats = job.tuning_data_stats.supervised_tuning_data_stats if job.tuning_data_stats else None
    if stats is None or stats.tuning_dataset_example_count is None:
        return None
    total = int(stats.tuning_dataset_example_count)
    dropped = int(stats.total_truncated_example_count or 0)
    if not dropped:
        return f"Vertex AI kept all {total} examples"
    reasons = sorted(set(stats.dropped_example_reasons or []))
    why = f" ({'; '.join(reasons)[:300]})" if reasons else ""
    return (
        f"Vertex AI dropped {dropped} of {total} examples{why}; the tuned model learned from "
        f"the other {total - dropped}"
    )


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
    return {"contents": to_rest_contents(messages)}


def _sft_rows(spec: TuningSpec) -> list[SFTExample]:
    return list(read_rows(spec.training_file, SFTExample))
