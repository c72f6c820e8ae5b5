"""Fault injection in the fake Gemini, and a smoke run that survives 20% faults unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from mafine.artifacts import Transcript
from mafine.config import FakeSettings
from mafine.jsonl import read_rows
from mafine.providers.fake_gemini import FakeGemini
from mafine.providers.fake_gemini.settings import FAULT_KINDS
from mafine.providers.limits import classify
from tests.conftest import write_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ALL_BUT_THE_DAILY_QUOTA = list(FAULT_KINDS)


def run_dir(config: Path) -> Path:
    return config.parent / "runs" / config.stem


def outcomes(fake: FakeGemini, prompts: list[str], attempts: int = 3) -> list[str]:
    """What each attempt at each prompt got: a finish reason, an error code or an exception."""
    client = genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=fake.url, timeout=500)
    )
    seen = []
    for prompt in prompts:
        for _ in range(attempts):
            try:
                response = client.models.generate_content(
                    model="gemini-3.1-flash-lite", contents=prompt
                )
                candidates = response.candidates or []
                reason = candidates[0].finish_reason if candidates else None
                seen.append(str(reason.name if reason else "NO_CANDIDATES"))
            except errors.APIError as exc:
                seen.append(str(exc.code))
            except Exception as exc:
                seen.append(type(exc).__name__)
    client.close()
    return seen


def test_faults_are_deterministic_per_request_and_attempt():
    settings = FakeSettings(fault_rate=0.5, hang_s=2.0, retry_delay_s=0.5)
    prompts = [f"What is {n} + 1?" for n in range(12)]
    with FakeGemini(settings) as first:
        one = outcomes(first, prompts)
        faults = first.fault_stats()
    with FakeGemini(settings) as second:
        two = outcomes(second, prompts)
    assert one == two
    assert len(faults) >= 4 and sum(faults.values()) == sum(1 for o in one if o != "STOP")
    with FakeGemini(settings.model_copy(update={"fault_seed": 1})) as third:
        assert outcomes(third, prompts) != one


def test_injected_429s_look_like_geminis():
    per_minute = FakeSettings(fault_rate=1.0, fault_kinds=["rate_limit"], retry_delay_s=3)
    with FakeGemini(per_minute) as fake:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake.url))
        with pytest.raises(errors.ClientError) as minute:
            client.models.generate_content(model="gemini-3.1-flash-lite", contents="hi")
        fake.settings = FakeSettings(daily_quota=True)
        with pytest.raises(errors.ClientError) as day:
            client.models.generate_content(model="gemini-3.1-flash-lite", contents="hi")
        client.close()
    assert classify(minute.value).kind == "rate_limit" and classify(minute.value).delay == 3
    assert classify(day.value).kind == "quota"
    assert "limit: 250" in day.value.message


def test_an_injected_499_looks_like_geminis_and_is_transient():
    with FakeGemini(FakeSettings(fault_rate=1.0, fault_kinds=["cancelled"])) as fake:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake.url))
        with pytest.raises(errors.APIError) as cancelled:
            client.models.generate_content(model="gemini-3.1-flash-lite", contents="hi")
        client.close()
    assert cancelled.value.code == 499 and cancelled.value.status == "CANCELLED"
    assert cancelled.value.message == "The operation was cancelled."
    assert classify(cancelled.value).kind == "transient"


def test_inline_batch_results_come_back_out_of_order_with_their_metadata():
    import time

    with FakeGemini(FakeSettings(batch_polls=0)) as fake:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake.url))
        sent = [str(n) for n in range(12)]
        requests = [
            types.InlinedRequest(contents=f"What is {n} + 1?", metadata={"key": n}) for n in sent
        ]
        job = client.batches.create(model="gemini-3.1-flash-lite", src=requests)
        deadline = time.monotonic() + 10
        while not (job.dest and job.dest.inlined_responses):
            assert time.monotonic() < deadline
            job = client.batches.get(name=job.name)
        client.close()
    returned = [item.metadata["key"] for item in job.dest.inlined_responses]
    assert sorted(returned, key=int) == sent and returned != sent


def test_latency_is_added_per_request():
    import time

    with FakeGemini(FakeSettings(latency_s=0.3)) as fake:
        started = time.monotonic()
        assert outcomes(fake, ["What is 1 + 1?"], attempts=2) == ["STOP", "STOP"]
        assert time.monotonic() - started >= 0.6


def fault_config(tmp_path: Path, name: str, faults: bool) -> Path:
    changes = {}
    if faults:
        changes = {
            "provider__fake__fault_rate": 0.2,
            "provider__fake__fault_kinds": ALL_BUT_THE_DAILY_QUOTA,
            "provider__fake__hang_s": 3.0,
            "provider__fake__retry_delay_s": 0.02,
            "provider__timeout_s": 0.75,
            "provider__gemini": {
                "retry_initial_s": 0.01,
                "retry_max_s": 0.05,
                "max_attempts": 12,
                "reask_blocked": 4,
            },
        }
    return write_config(tmp_path, name, **changes)


def test_a_smoke_run_with_20_percent_faults_equals_a_clean_run(cli, tmp_path, traffic):
    clean = fault_config(tmp_path, "clean", faults=False)
    faulty = fault_config(tmp_path, "faulty", faults=True)
    first = cli("run", clean)
    assert first.exit_code == 0, first.output
    second = cli("run", faulty)
    assert second.exit_code == 0, second.output
    injected: dict[str, int] = {}
    for server in traffic.servers:
        for kind, count in server.fault_stats().items():
            injected[kind] = injected.get(kind, 0) + count
    assert set(injected) == set(ALL_BUT_THE_DAILY_QUOTA), injected
    a, b = run_dir(clean), run_dir(faulty)
    compared = [
        p.relative_to(a)
        for p in sorted(a.rglob("*.jsonl"))
        if "debate" in p.name or "/sft/" in str(p) or p.parent.name == "problems"
    ]
    assert len(compared) >= 10
    for name in compared:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_blocked_responses_are_recorded_without_an_answer(cli, tmp_path):
    config = write_config(
        tmp_path,
        provider__fake__fault_rate=1.0,
        provider__fake__fault_kinds=["safety"],
        provider__gemini={"reask_blocked": 1},
        provider__empty_response_limit=1.0,  # keep going: this test reads what is recorded
    )
    assert cli("prepare", config).exit_code == 0
    result = cli("evaluate", config, "-i", "0")
    assert result.exit_code == 0, result.output
    root = run_dir(config)
    turns = [
        turn
        for transcript in read_rows(root / "baseline/eval-debate.jsonl", Transcript)
        for trace in transcript.agents
        for turn in trace.turns
    ]
    assert turns and all(t.answer is None and t.finish_reason == "SAFETY" for t in turns)
    # the metrics count them (the run's metrics.json keeps responses, no_answer, reasons)
    text = json.dumps(json.loads((root / "metrics.json").read_text()))
    assert f'"SAFETY": {len(turns)}' in text and f'"no_answer": {len(turns)}' in text
