"""Batch mode through the real client on both backends: same transcripts, jobs resumed by name."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mafine.artifacts import Message
from mafine.config import FakeSettings, GeminiSettings, ProviderConfig
from mafine.prompts import QUESTION
from mafine.providers.base import GenerationRequest, Sampling
from mafine.providers.batch import STATE_FILE, BatchProvider, BatchRecord
from mafine.providers.fake_gemini import FakeGemini
from mafine.providers.gemini import Connection, GeminiProvider
from tests.conftest import write_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEY = "AIzaSy-batch-test-secret-77"
DEBATE = "iter-1/train-debate"
FAST = {"batch_poll_s": 0.02, "batch_window_s": 0.05}


def run_dir(config: Path) -> Path:
    return config.parent / "runs" / config.stem


def api_key_config(tmp_path: Path, fake: FakeGemini, name: str, batch: bool) -> Path:
    gemini = {"base_url": fake.url, "tier": "none", "batch": batch, **FAST}
    return write_config(tmp_path, name, provider__name="gemini", provider__gemini=gemini)


def debate(cli, config: Path) -> bytes:
    assert cli("prepare", config).exit_code == 0
    result = cli("debate", config)
    assert result.exit_code == 0, result.output
    return (run_dir(config) / f"{DEBATE}.jsonl").read_bytes()


def test_vertex_batch_mode_gives_the_online_transcripts_at_half_price(cli, tmp_path, traffic):
    online = debate(cli, write_config(tmp_path, "online"))
    config = write_config(tmp_path, "batched", provider__gemini={"batch": True, **FAST})
    assert debate(cli, config) == online
    kinds = traffic.servers[-1].stats()["by_kind"]
    assert kinds["batch_create"] == 3  # round 1, the summaries, the critics
    assert "generate" not in kinds and kinds["upload"] == 3
    root = run_dir(config)
    records = [BatchRecord.model_validate_json(line) for line in (root / STATE_FILE).open()]
    assert [r.event for r in records].count("submitted") == 3
    stage = json.loads((root / "manifest.json").read_text())["stages"][DEBATE]
    online_manifest = json.loads((tmp_path / "runs/online/manifest.json").read_text())
    online_stage = online_manifest["stages"][DEBATE]
    assert stage["batch_pricing"] is True and stage["usage"] == online_stage["usage"]
    assert stage["cost_usd"] == pytest.approx(online_stage["cost_usd"] / 2, rel=1e-3)


def test_api_key_batch_mode_gives_the_online_transcripts(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeGemini(FakeSettings()) as fake:
        online = debate(cli, api_key_config(tmp_path, fake, "online", batch=False))
        config = api_key_config(tmp_path, fake, "batched", batch=True)
        assert debate(cli, config) == online
        kinds = fake.stats()["by_kind"]
    assert kinds["batch_create"] == 3 and kinds["batch_get"] >= 3
    state = (run_dir(config) / STATE_FILE).read_text()
    assert "batches/" in state and KEY not in state


def test_a_killed_batch_run_polls_its_stored_job_instead_of_resubmitting(
    cli, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeGemini(FakeSettings(batch_polls=10**6)) as fake:  # jobs never finish
        config = api_key_config(tmp_path, fake, "killed", batch=True)
        root = run_dir(config)
        assert cli("prepare", config).exit_code == 0
        child = subprocess.Popen(
            [sys.executable, "-m", "mafine", "debate", str(config)],
            env={**os.environ, "GEMINI_API_KEY": KEY},
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "child.err").open("w"),
        )
        state = root / STATE_FILE
        deadline = time.monotonic() + 60
        try:
            while not (state.exists() and b'"submitted"' in state.read_bytes()):
                assert child.poll() is None, (tmp_path / "child.err").read_text()
                assert time.monotonic() < deadline, "no batch job was submitted"
                time.sleep(0.02)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert fake.stats()["by_kind"]["batch_create"] == 1
        fake.settings = FakeSettings(batch_polls=0)  # the job finishes now
        result = cli("debate", config)
        assert result.exit_code == 0, result.output
        bodies = [
            json.dumps(line["request"], sort_keys=True)
            for job in fake.batches.jobs.values()
            for line in job.requests
        ]
        assert fake.stats()["by_kind"]["batch_create"] == 3
    assert len(bodies) == len(set(bodies)), "a request was submitted in two batch jobs"


def test_a_job_submitted_but_never_recorded_is_found_by_its_name(tmp_path):
    def request(n: int) -> GenerationRequest:
        return GenerationRequest(
            model="gemini-3.1-flash-lite",
            messages=(Message(role="user", content=QUESTION.format(question=f"What is {n}+1?")),),
            sampling=Sampling(temperature=1.0, top_p=0.9, max_output_tokens=128),
            sample_index=0,
            seed=3,
        )

    async def ask(fake: FakeGemini) -> list[str]:
        settings = GeminiSettings(tier="none", batch=True, **FAST)
        config = ProviderConfig(name="gemini", gemini=settings)
        inner = GeminiProvider(config, Connection(api_key="k", base_url=fake.url))
        provider = BatchProvider(inner, tmp_path)
        try:
            completions = await asyncio.gather(*(provider.generate(request(n)) for n in range(4)))
            return [c.text for c in completions]
        finally:
            await provider.aclose()

    with FakeGemini(FakeSettings()) as fake:
        first = asyncio.run(ask(fake))
        (tmp_path / STATE_FILE).unlink()  # as if killed before the job name was written
        second = asyncio.run(ask(fake))
        assert fake.stats()["by_kind"]["batch_create"] == 1
    assert first == second


# ---- tuned models, partial jobs, the inline size limit -------------------------------------
def staged_run(cli, config: Path, *evaluate_options: str) -> Path:
    for stage in ("prepare", "debate", "build-sft", "finetune"):
        result = cli(stage, config, *(["-i", "1"] if stage != "prepare" else []))
        assert result.exit_code == 0, result.output
    result = cli("evaluate", config, "-i", "1", *evaluate_options)
    assert result.exit_code == 0, result.output
    return run_dir(config)


def test_vertex_batches_on_tuned_models_name_the_model_resource_not_the_endpoint(
    cli, tmp_path, traffic
):
    online = staged_run(cli, write_config(tmp_path, "online"))
    # Tuned in one process, evaluated in batch mode in another: the batch provider finds each
    # endpoint's Model resource from the tuning jobs (it never saw them finish).
    batched = staged_run(
        cli,
        write_config(tmp_path, "batched", provider__gemini=FAST),
        "--set",
        "provider.gemini.batch=true",
    )
    name = "iter-1/eval-debate.jsonl"
    assert (batched / name).read_bytes() == (online / name).read_bytes()
    models = [job.model for job in traffic.servers[-1].batches.jobs.values()]
    assert any("/models/" in model for model in models)
    assert not any("/endpoints/" in model for model in models)


def test_the_fake_refuses_a_vertex_batch_on_an_endpoint_as_vertex_does():
    from google.genai import errors

    from mafine.providers import fake_connection

    with FakeGemini(FakeSettings()) as fake:
        client = GeminiProvider(ProviderConfig(), fake_connection(fake.url)).client
        endpoint = "projects/fake-project/locations/us-central1/endpoints/1"
        with pytest.raises(errors.ClientError) as refused:
            client.batches.create(model=endpoint, src="gs://b/in.jsonl", config={"dest": "gs://b"})
    assert refused.value.code == 400 and "not an Endpoint" in str(refused.value.message)


def test_a_partially_succeeded_job_keeps_what_succeeded_and_asks_again_for_the_rest(
    cli, tmp_path, traffic
):
    online = debate(cli, write_config(tmp_path, "online"))
    config = write_config(
        tmp_path,
        "partial",
        provider__gemini={"batch": True, **FAST},
        provider__fake__batch_incomplete_rate=0.3,
    )
    assert debate(cli, config) == online
    fake = traffic.servers[-1]
    states = [job.state for job in fake.batches.jobs.values()]
    assert "PARTIALLY_SUCCEEDED" in states
    assert len(states) > 3  # the three rounds' jobs, and more for the missing requests
    answered = fake.stats(cumulative=True)["generate_keys"]
    assert set(answered.values()) == {1}, "a request answered in one job was sent again"


def _long_request(n: int, padding: int) -> GenerationRequest:
    question = f"What is {n}+1?" + "x" * padding  # a long prompt, the same question
    return GenerationRequest(
        model="gemini-3.1-flash-lite",
        messages=(Message(role="user", content=QUESTION.format(question=question)),),
        sampling=Sampling(temperature=1.0, top_p=0.9, max_output_tokens=128),
        sample_index=0,
        seed=3,
    )


def test_inline_batches_over_the_size_limit_are_split_into_jobs_the_api_accepts(
    tmp_path, monkeypatch
):
    from mafine.providers import batch
    from mafine.providers.fake_gemini import batches

    # The client's budget stays under the real limit (checked at full size below); both
    # are scaled down here so the test sends kilobytes, not 20 MB.
    assert batch.INLINE_BUDGET_BYTES < batches.INLINE_LIMIT_BYTES == 20 * 2**20
    monkeypatch.setattr(batches, "INLINE_LIMIT_BYTES", 40_000)
    monkeypatch.setattr(batch, "INLINE_BUDGET_BYTES", 36_000)
    requests = [_long_request(n, padding=10_000) for n in range(8)]  # ~80 kB in all

    async def ask(fake: FakeGemini) -> list[str]:
        settings = GeminiSettings(tier="none", batch=True, **FAST)
        connection = Connection(api_key="k", base_url=fake.url)
        provider = BatchProvider(
            GeminiProvider(ProviderConfig(name="gemini", gemini=settings), connection), tmp_path
        )
        try:
            return [c.text for c in await asyncio.gather(*map(provider.generate, requests))]
        finally:
            await provider.aclose()

    with FakeGemini(FakeSettings(error_rate=0.0)) as fake:  # every answer right
        texts = asyncio.run(ask(fake))
        jobs = len(fake.batches.jobs)
        refused = fake.stats()["by_kind"]["batch_create"] - jobs
    assert jobs >= 3 and refused == 0  # split, and every job accepted
    assert [text.rsplit("\\boxed{", 1)[-1] for text in texts] == [f"{n + 1}}}" for n in range(8)]


def test_the_fake_refuses_an_inline_batch_over_20_mb_as_the_api_does():
    import urllib.error
    import urllib.request

    body = json.dumps(
        {
            "batch": {
                "inputConfig": {"requests": {"requests": [{"request": {"x": "a" * 21 * 2**20}}]}}
            }
        }
    ).encode()
    with FakeGemini(FakeSettings()) as fake:
        request = urllib.request.Request(
            f"{fake.url}/v1beta/models/gemini-3.1-flash-lite:batchGenerateContent",
            data=body,
            headers={"x-goog-api-key": "k", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
    error = json.loads(refused.value.read())["error"]
    assert refused.value.code == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "Request payload size exceeds the limit: 20971520 bytes."


# ---- results out of order, failed rows, failed jobs, creation refused ---------------------
def _question(n: int, model: str = "gemini-3.1-flash-lite") -> GenerationRequest:
    return GenerationRequest(
        model=model,
        messages=(Message(role="user", content=QUESTION.format(question=f"What is {n}+1?")),),
        sampling=Sampling(temperature=1.0, top_p=0.9, max_output_tokens=128),
        sample_index=0,
        seed=3,
    )


def _ask_api_key(
    fake: FakeGemini, tmp_path: Path, count: int, model: str = "gemini-3.1-flash-lite"
) -> list[str]:
    async def ask() -> list[str]:
        settings = GeminiSettings(
            tier="none", batch=True, retry_initial_s=0.01, retry_max_s=0.02, **FAST
        )
        inner = GeminiProvider(
            ProviderConfig(name="gemini", model=model, gemini=settings),
            Connection(api_key=KEY, base_url=fake.url),
        )
        provider = BatchProvider(inner, tmp_path)
        try:
            completions = await asyncio.gather(
                *(provider.generate(_question(n, model)) for n in range(count))
            )
            return [c.text for c in completions]
        finally:
            await provider.aclose()

    return asyncio.run(ask())


def test_a_batch_answered_by_another_model_is_warned_about_once(tmp_path, capsys):
    """The Gemini API serves gemini-3.5-flash with 3.6 Flash (docs/gemini.md, "Retired
    models"): batch results carry the answering model as online answers do."""
    with FakeGemini(FakeSettings()) as fake:
        _ask_api_key(fake, tmp_path, 3, model="gemini-3.5-flash")
    assert capsys.readouterr().out.count("answered by gemini-3.6-flash") == 1


def test_inline_results_come_back_shuffled_and_each_lands_on_its_own_question(tmp_path):
    with FakeGemini(FakeSettings(error_rate=0.0)) as fake:  # every answer right
        texts = _ask_api_key(fake, tmp_path, 8)
        (job,) = fake.batches.jobs.values()
    assert job.order != sorted(job.order)  # the fake answered out of request order
    assert [t.rsplit("\\boxed{", 1)[-1] for t in texts] == [f"{n + 1}}}" for n in range(8)]


def test_a_result_set_whose_keys_do_not_match_is_refused_in_one_line(tmp_path, monkeypatch):
    from mafine.errors import MafineError
    from mafine.providers.fake_gemini import batches

    # One result comes back twice and another not at all.
    monkeypatch.setattr(batches, "_shuffled", lambda count, seed: [0, 0, *range(2, count)])
    with FakeGemini(FakeSettings()) as fake, pytest.raises(MafineError) as refused:
        _ask_api_key(fake, tmp_path, 4)
    line = str(refused.value)
    assert "do not match its 4 requests" in line and "1 missing" in line and "1 repeated" in line
    assert "\n" not in line and KEY not in line
    events = [BatchRecord.model_validate_json(r).event for r in (tmp_path / STATE_FILE).open()]
    assert events == ["submitted", "failed"]  # forgotten: the next run submits them again


def _vertex_rows(fake: FakeGemini) -> list[dict]:
    rows = []
    for job in fake.batches.jobs.values():
        data = fake.object_bytes(f"{job.output_dir}/predictions.jsonl") if job.output_dir else None
        rows += [json.loads(line) for line in (data or b"").decode().splitlines()]
    return rows


def test_vertex_rows_that_failed_under_load_are_submitted_again_and_complete(
    cli, tmp_path, traffic
):
    online = debate(cli, write_config(tmp_path, "online"))
    config = write_config(
        tmp_path,
        "rows",
        provider__gemini={"batch": True, **FAST},
        provider__fake__fault_rate=0.3,
        provider__fake__fault_kinds=["unavailable", "cancelled"],
    )
    assert debate(cli, config) == online
    fake = traffic.servers[-1]
    failed = [r for r in _vertex_rows(fake) if r["status"]]
    assert failed and all(r["response"] == {} for r in failed)  # the documented shape
    assert len(fake.batches.jobs) > 3  # the failed rows went again
    answered = fake.stats(cumulative=True)["generate_keys"]
    assert set(answered.values()) == {1}, "a request answered in one job was sent again"


def test_a_vertex_row_refused_for_good_stops_with_googles_words_and_is_not_resubmitted(
    cli, tmp_path, traffic, monkeypatch
):
    from mafine.providers.fake_gemini import batches

    refusal = "Thinking level MINIMAL is not supported for this model."
    monkeypatch.setitem(batches._ROW_FAULTS, "server_error", (400, refusal))
    config = write_config(
        tmp_path,
        "refused",
        provider__gemini={"batch": True, **FAST},
        provider__fake__fault_rate=1.0,
        provider__fake__fault_kinds=["server_error"],
    )
    assert cli("prepare", config).exit_code == 0
    result = cli("debate", config)
    assert result.exit_code != 0
    assert refusal in result.output and "INVALID_ARGUMENT" in result.output
    assert len(traffic.servers[-1].batches.jobs) == 1  # not resubmitted


def test_a_failed_vertex_job_keeps_its_answered_rows_and_resubmits_only_the_rest(
    cli, tmp_path, traffic, monkeypatch
):
    from mafine.providers.fake_gemini import batches

    original = batches.Batches._poll

    def failing(self, id, backend):  # the job fails after answering part of its rows
        job = original(self, id, backend)
        if job.state == "PARTIALLY_SUCCEEDED":
            job.state, job.error = "FAILED", "Internal error encountered."
            self._save(job)
        return job

    online = debate(cli, write_config(tmp_path, "online"))
    config = write_config(
        tmp_path,
        "failed",
        provider__gemini={"batch": True, **FAST},
        provider__fake__batch_incomplete_rate=0.3,
    )
    assert cli("prepare", config).exit_code == 0
    with monkeypatch.context() as patch:
        patch.setattr(batches.Batches, "_poll", failing)
        result = cli("debate", config)
    assert result.exit_code != 0
    assert "ended JOB_STATE_FAILED (Internal error encountered.)" in result.output
    assert "were answered and are kept" in result.output
    records = [BatchRecord.model_validate_json(r) for r in (run_dir(config) / STATE_FILE).open()]
    failed = [r for r in records if r.event == "failed"]
    assert failed and failed[0].answered and failed[0].keys  # billed rows recorded, rest listed
    result = cli("debate", config)  # the same command again
    assert result.exit_code == 0, result.output
    assert (run_dir(config) / f"{DEBATE}.jsonl").read_bytes() == online
    answered = traffic.servers[-1].stats(cumulative=True)["generate_keys"]
    assert set(answered.values()) == {1}, "a row Google already answered was sent again"


def test_vertex_rows_are_matched_by_their_echoed_request_when_labels_do_not_come_back(
    cli, tmp_path, traffic, monkeypatch
):
    from mafine.providers.fake_gemini import batches

    original = batches.Batches._write_predictions

    def without_labels(self, job):
        for line in job.requests:
            line["request"].pop("labels", None)
        original(self, job)

    online = debate(cli, write_config(tmp_path, "online"))
    config = write_config(tmp_path, "echo", provider__gemini={"batch": True, **FAST})
    monkeypatch.setattr(batches.Batches, "_write_predictions", without_labels)
    assert debate(cli, config) == online
    assert not any("labels" in r["request"] for r in _vertex_rows(traffic.servers[-1]))


def test_a_429_on_batch_creation_is_retried_then_reported_without_claiming_a_wait(
    tmp_path, monkeypatch
):
    from mafine.errors import MafineError
    from mafine.providers.fake_gemini import batches
    from mafine.providers.fake_gemini.routing import FakeError

    def refuse(self, request, model):
        raise FakeError(429, "Resource has been exhausted (e.g. check quota).")

    monkeypatch.setattr(batches.Batches, "create_api_key", refuse)
    with FakeGemini(FakeSettings()) as fake:
        with pytest.raises(MafineError) as refused:
            _ask_api_key(fake, tmp_path, 2)
        tries = fake.stats()["by_kind"]["batch_create"]
    line = str(refused.value)
    assert tries == GeminiSettings().max_attempts  # an explicit refusal creates no job
    assert "refused to create a batch job" in line and "nothing was submitted" in line
    assert "after 0s" not in line and "Resource has been exhausted" in line and KEY not in line


_STATUS_429 = json.dumps(
    {"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}
)
_STATUS_400 = json.dumps(
    {"error": {"code": 400, "message": "Please use a valid role.", "status": "INVALID_ARGUMENT"}}
)


@pytest.mark.parametrize(
    ("status", "passes"),
    [
        (_STATUS_429, True),
        ({"code": 8, "message": "Resource has been exhausted (e.g. check quota)."}, True),
        ({"code": 14, "message": "The service is currently unavailable."}, True),
        ("Internal error encountered.", True),
        ("Bad Request: " + _STATUS_400, False),
        ({"code": 3, "message": "Thinking level MINIMAL is not supported for this model."}, False),
        ("Request contains an invalid argument.", False),
    ],
)  # fmt: skip
def test_a_failed_rows_status_says_whether_another_job_can_pass_it(status, passes):
    from mafine.providers.batch import _vertex_row

    row = _vertex_row({"status": status, "response": {}, "request": {}})
    assert row.retryable is passes
    assert row.message  # Google's text, kept for the one line
