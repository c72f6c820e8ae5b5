"""Killed and quota-stopped runs resume without paying twice for any journaled response.

The fake runs in the test process; the `gemini` provider reaches it in API-key mode through
`provider.gemini.base_url`, exactly as a user's run reaches Gemini.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mafine.config import FakeSettings
from mafine.providers.fake_gemini import FakeGemini
from tests.conftest import write_config

SECRET = "AIzaSy-resume-test-secret-key-42"
DEBATE = "iter-1/train-debate"


def gemini_config(tmp_path: Path, fake: FakeGemini, name: str, **changes) -> Path:
    gemini = {"base_url": fake.url, "tier": "none", "retry_initial_s": 0.01}
    return write_config(tmp_path, name, provider__name="gemini", provider__gemini=gemini, **changes)


def run_dir(config: Path) -> Path:
    return config.parent / "runs" / config.stem


def journaled(root: Path) -> int:
    path = root / "journal.jsonl"
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")  # finished lines only


def reference_transcripts(cli, tmp_path: Path) -> bytes:
    """The same debate, uninterrupted, against a fresh fake."""
    with FakeGemini(FakeSettings()) as fake:
        config = gemini_config(tmp_path, fake, "reference")
        assert cli("prepare", config).exit_code == 0
        assert cli("debate", config).exit_code == 0
        return (run_dir(config) / f"{DEBATE}.jsonl").read_bytes()


class GatedFake(FakeGemini):
    """Answers the first `open_for` generation requests, then holds every later one."""

    def __init__(self, open_for: int) -> None:
        super().__init__(FakeSettings())
        self.open_for = open_for
        self.gate = threading.Event()
        self.arrived = 0
        self.held = 0
        self._gate_lock = threading.Lock()

    def intercept(self, kind, request):
        if kind == "generate" and _complete(request):
            with self._gate_lock:
                self.arrived += 1
                hold = self.arrived > self.open_for and not self.gate.is_set()
                self.held += hold
            if hold:
                self.gate.wait(60)
        return super().intercept(kind, request)


def _complete(request) -> bool:
    """Whether a request arrived whole: a client killed mid-send leaves an empty or cut body,
    which the fake refuses (400) without answering or counting it."""
    try:
        return bool(json.loads(request.body or b"{}").get("contents"))
    except ValueError:
        return False


def wait_for(
    condition, timeout: float = 180.0, child=None, log: Path | None = None, state=None
) -> None:
    """Poll until `condition()`; generous, since a loaded CI machine starts processes slowly."""
    deadline = time.monotonic() + timeout
    while not condition():
        if child is not None and child.poll() is not None:
            raise AssertionError(f"the child exited early: {log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting ({state() if state else ''})")
        time.sleep(0.02)


def test_sigkill_mid_debate_then_resume_sends_no_journaled_request_again(
    cli, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    expected = reference_transcripts(cli, tmp_path)
    with GatedFake(open_for=40) as fake:
        config = gemini_config(tmp_path, fake, "killed", provider__max_concurrency=4)
        root = run_dir(config)
        assert cli("prepare", config).exit_code == 0
        child = subprocess.Popen(
            [sys.executable, "-m", "mafine", "debate", str(config)],
            env={**os.environ, "GEMINI_API_KEY": SECRET},
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "child.err").open("w"),
        )
        try:
            wait_for(
                # held requests are in flight; every answered one is journaled
                lambda: fake.held > 0 and journaled(root) >= len(fake.stats()["generate_keys"]),
                child=child,
                log=tmp_path / "child.err",
                state=lambda: (
                    f"held {fake.held}, journaled {journaled(root)}, "
                    f"answered {len(fake.stats()['generate_keys'])}"
                ),
            )
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        at_kill = journaled(root)
        fake.gate.set()  # the held requests reach the model now, for a client that is gone
        wait_for(lambda: sum(fake.stats()["generate_keys"].values()) == fake.arrived)
        before = fake.stats()["generate_keys"]
        assert set(before.values()) == {1}
        assert (root / f"{DEBATE}.partial.jsonl").exists()
        assert not (root / f"{DEBATE}.jsonl").exists()

        result = cli("debate", config)
        assert result.exit_code == 0, result.output
        after = fake.stats()["generate_keys"]
    repeated = [key for key, count in before.items() if after[key] > 1]
    # Every request the fake answered before the kill but that was never journaled is sent
    # again; nothing that was journaled is.
    assert len(repeated) == len(before) - at_kill
    assert max(after.values()) <= 2
    assert (root / f"{DEBATE}.jsonl").read_bytes() == expected


class QuotaFake(FakeGemini):
    """Switches to a per-day quota 429 after `allow` generation requests."""

    def __init__(self, allow: int) -> None:
        super().__init__(FakeSettings())
        self.allow = allow
        self.seen = 0
        self._quota_lock = threading.Lock()

    def intercept(self, kind, request):
        if kind == "generate" and self.allow is not None:
            with self._quota_lock:
                self.seen += 1
                if self.seen > self.allow and not self.settings.daily_quota:
                    self.settings = self.settings.model_copy(update={"daily_quota": True})
        return super().intercept(kind, request)


def test_a_per_day_quota_stops_within_seconds_and_the_rerun_repeats_nothing(
    cli, tmp_path, monkeypatch
):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    expected = reference_transcripts(cli, tmp_path)
    with QuotaFake(allow=50) as fake:
        config = gemini_config(tmp_path, fake, "quota")
        root = run_dir(config)
        assert cli("prepare", config).exit_code == 0
        started = time.monotonic()
        result = cli("debate", config)
        stopped_after = time.monotonic() - started
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.output
        assert "quota exhausted" in lines[0]
        assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in lines[0]
        assert SECRET not in result.output
        assert stopped_after < 30
        # it stopped at once: only requests already in flight met the quota
        assert fake.fault_stats()["daily_quota"] <= 8 * 3
        manifest = json.loads((root / "manifest.json").read_text())
        assert manifest["stages"][DEBATE]["status"] == "failed"
        answered = journaled(root)
        assert answered == 50

        fake.allow = None  # the quota "resets"
        fake.settings = FakeSettings()
        result = cli("debate", config)
        assert result.exit_code == 0, result.output
        counts = fake.stats()["generate_keys"]
    assert set(counts.values()) == {1}, "a journaled request was sent again"
    assert (root / f"{DEBATE}.jsonl").read_bytes() == expected


@pytest.mark.parametrize("stage", ["debate"])
def test_a_finished_stage_run_again_sends_nothing(cli, tmp_path, monkeypatch, stage):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    with FakeGemini(FakeSettings()) as fake:
        config = gemini_config(tmp_path, fake, "again")
        assert cli("prepare", config).exit_code == 0
        assert cli(stage, config).exit_code == 0
        sent = fake.stats()["requests"]
        result = cli(stage, config)
        assert result.exit_code == 0 and "skipped" in result.output
        assert fake.stats()["requests"] == sent
