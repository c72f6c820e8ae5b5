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
