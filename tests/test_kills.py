"""`mafine run` killed (SIGKILL), terminated (SIGTERM) or interrupted (Ctrl-C) during a debate
and during evaluation, on the fake: the rerun completes with the artifacts of an uninterrupted
run, no journaled request is sent twice, and the manifest counts every attempt's requests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mafine.cli import app
from tests.hostile import run_dir, small_config

SLOW = {"provider__fake__latency_s": 0.1, "provider__max_concurrency": 2}
# Artifacts compared byte for byte; metrics.json and report.md carry the run directory's path.
COMPARED = ("problems", "debate.jsonl", "sft", "models.jsonl", "counts.jsonl")


def mafine(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mafine", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def manifest(root: Path) -> dict:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def journal_lines(root: Path) -> list[bytes]:
    path = root / "journal.jsonl"
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the run never reached the point to stop it at")
        time.sleep(0.01)


def stage_running_with_responses(root: Path, stage: str, responses: int) -> bool:
    entry = manifest(root).get("stages", {}).get(stage, {})
    if entry.get("status") != "running":
        return False
    journal = root / "journal.jsonl"
    size = journal.stat().st_size if journal.exists() else 0
    if size <= entry.get("journal_offset", 0):
        return False
    with journal.open("rb") as handle:
        handle.seek(entry["journal_offset"])
        return handle.read().count(b"\n") >= responses


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The same run, never interrupted."""
    config = small_config(tmp_path_factory.mktemp("reference"), "reference")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return run_dir(config)


def compared_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and any(part in str(p.relative_to(root)) for part in COMPARED)
    }


def results(root: Path) -> dict:
    document = json.loads((root / "metrics.json").read_text())
    return {key: document[key] for key in ("methods", "per_agent_round", "responses")}


def assert_same_as_uninterrupted(root: Path, reference: Path) -> None:
    assert compared_files(root) == compared_files(reference)
    assert results(root) == results(reference)
    lines = journal_lines(root)
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == len(set(keys)), "a journaled request was sent twice"
    assert sorted(lines) == sorted(journal_lines(reference))


def served_twice(root: Path) -> list[str]:
    """Generations the fake answered more than once, from its request log (every process)."""
    log = root / "fake-gemini" / "requests.jsonl"
    keys = [json.loads(line).get("key") for line in log.read_text().splitlines()]
    keys = [key for key in keys if key is not None]
    return sorted({key for key in keys if keys.count(key) > 1})


def assert_every_request_counted(root: Path, in_flight_lost: bool = False) -> None:
    """Every response in the journal was paid for by some attempt of some stage; requests
    lost in flight (only a SIGKILL loses any) are counted as unanswered, and were all that
    the fake served twice."""
    stages = manifest(root)["stages"]
    assert sum(entry.get("requests", 0) for entry in stages.values()) == len(journal_lines(root))
    unanswered = sum(entry.get("unanswered_requests", 0) for entry in stages.values())
    if in_flight_lost:
        assert len(served_twice(root)) <= unanswered <= 2  # at most max_concurrency
    else:
        assert served_twice(root) == [], "an answered request was sent again"
        assert unanswered == 0
    assert manifest(root)["totals"]["run"]["requests"] == len(journal_lines(root))
    assert all(entry["status"] == "done" for entry in stages.values()), stages


@pytest.mark.parametrize(
    ("stage", "responses"),
    [("iter-1/train-debate", 8), ("baseline/eval-debate", 6), ("iter-1/eval-debate", 6)],
)
def test_sigkill_then_rerun(tmp_path, reference, stage, responses):
    config = small_config(tmp_path, "killed", **SLOW)
    root = run_dir(config)
    child = mafine("run", config)
    try:
        wait_for(lambda: stage_running_with_responses(root, stage, responses))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert manifest(root)["stages"][stage]["status"] == "running"  # killed: no chance to say
    rerun = mafine("run", config)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert_same_as_uninterrupted(root, reference)
    assert_every_request_counted(root, in_flight_lost=True)
    assert manifest(root)["stages"][stage]["attempts"] == 2


@pytest.mark.parametrize(
    ("sent", "code", "word", "stage"),
    [
        (signal.SIGTERM, 143, "terminated", "iter-1/train-debate"),
        (signal.SIGINT, 130, "interrupted", "baseline/eval-debate"),
    ],
)
def test_sigterm_and_ctrl_c_record_the_stage_interrupted(
    tmp_path, reference, sent, code, word, stage
):
    config = small_config(tmp_path, "stopped", **SLOW)
    root = run_dir(config)
    child = mafine("run", config)
    wait_for(lambda: stage_running_with_responses(root, stage, 6))
    child.send_signal(sent)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == code
    lines = stderr.strip().splitlines()
    assert lines == [f"error: {word}; run the same command again to resume"], stderr
    entry = manifest(root)["stages"][stage]
    assert entry["status"] == "interrupted"
    assert entry["requests"] >= 6
    rerun = mafine("run", config)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert_same_as_uninterrupted(root, reference)
    assert_every_request_counted(root)
    assert manifest(root)["stages"][stage]["attempts"] == 2
