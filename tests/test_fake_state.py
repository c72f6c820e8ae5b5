"""The fake's jobs outlive its process, as Gemini's do: stage-by-stage commands, raised
iterations and runs killed during finetune or batch polling all resume on the fake, each
request sent once; a stored job the service forgot is reported with the way on.

Each command runs as its own process (the in-process fake dies with it); the requests of all
of them are counted through the fake's stats endpoint over the run's state directory."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mafine.cli import app
from mafine.providers import FAKE_STATE_DIR
from mafine.providers.fake_gemini import FakeGemini, FakeSettings
from tests.conftest import write_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Files that record the run directory itself or wall-clock times (the batch job log), not
# results; the journal is compared apart, in any order.
NOT_RESULTS = {"manifest.json", "config.yaml", "metrics.json", "journal.jsonl", ".lock",
               "journal.sent.jsonl", "batches.jsonl"}  # fmt: skip
BATCH = {"batch": True, "batch_poll_s": 0.02, "batch_window_s": 0.05}


def config_in(directory: Path, **changes: object) -> Path:
    """The small smoke config `exp.yaml` in `directory` (made), its run in `runs/exp`."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_config(directory, "exp", **changes)


def mafine(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One command in its own process, as a user types it."""
    done = subprocess.run(
        [sys.executable, "-m", "mafine", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def start(*args: object, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mafine", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def root_of(config: Path) -> Path:
    return config.parent / "runs" / config.stem


def cumulative_stats(root: Path) -> dict:
    """What every process served from the run's fake state, through the stats endpoint."""
    with FakeGemini(FakeSettings(), state_dir=root / FAKE_STATE_DIR) as fake:
        url = f"{fake.url}/_fake/stats?cumulative=true"
        with urllib.request.urlopen(url) as reply:
            return json.loads(reply.read())


def results(root: Path) -> dict[str, bytes]:
    """Every result file of a run, by path inside the run directory."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in (FAKE_STATE_DIR, "plots") or path.name in NOT_RESULTS:
            continue
        if path.is_file():
            found[relative.as_posix()] = path.read_bytes()
    return found


def journal_lines(root: Path) -> list[bytes]:
    return sorted((root / "journal.jsonl").read_bytes().splitlines())


def assert_same_run(root: Path, reference: Path) -> None:
    got, expected = results(root), results(reference)
    assert sorted(got) == sorted(expected)
    assert [name for name in got if got[name] != expected[name]] == []
    assert journal_lines(root) == journal_lines(reference)


def assert_nothing_sent_twice(stats: dict) -> None:
    repeated = {key: n for key, n in stats["generate_keys"].items() if n > 1}
    assert repeated == {}, f"{len(repeated)} generation requests were answered twice"


def wait_for(condition, child: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, f"the child exited early: {log.read_text()}"
        assert time.monotonic() < deadline, "timed out waiting for the kill point"
        time.sleep(0.02)


def kill(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()


# ---- the fake alone ----------------------------------------------------------------------
def test_objects_jobs_and_tuned_models_outlive_the_server(tmp_path):
    from google.cloud import storage
    from google.oauth2.credentials import Credentials

    state = tmp_path / "state"
    with FakeGemini(FakeSettings(), state_dir=state) as first:
        client = storage.Client(
            project="p",
            credentials=Credentials(token="t"),
            client_options={"api_endpoint": first.url},
        )
        client.bucket("b").blob("d/train.jsonl").upload_from_string(b'{"x": 1}\n')
    with FakeGemini(FakeSettings(), state_dir=state) as second:
        client = storage.Client(
            project="p",
            credentials=Credentials(token="t"),
            client_options={"api_endpoint": second.url},
        )
        (blob,) = client.list_blobs("b", prefix="d/")
        assert blob.download_as_bytes() == b'{"x": 1}\n'  # its links name the new server
        assert second.storage.store("b", "d/next", b"", "text/plain")["generation"] == "2"
    with FakeGemini(FakeSettings()) as memory_only:
        assert memory_only.object_bytes("gs://b/d/train.jsonl") is None


@pytest.mark.parametrize(
    ("collection", "text"),
    [
        ("tuning", "{not json"),  # undecodable
        ("tuning", "[1, 2]"),  # not an object
        ("tuning", '{"number": 1}'),  # an object missing fields
        ("objects", '{"uri": "gs://b/x", "data": "eA==", "resource": {}}'),  # a wrong field
        ("batches", '{"unexpected": true}'),
    ],
)
def test_a_damaged_state_record_is_one_line_naming_the_file_and_the_fix(tmp_path, collection, text):
    from mafine.errors import MafineError

    (tmp_path / collection).mkdir()
    (tmp_path / collection / "1.json").write_text(text)
    with pytest.raises(MafineError) as raised:
        FakeGemini(FakeSettings(), state_dir=tmp_path)
    message = str(raised.value)
    assert f"{collection}" in message and "damaged fake Gemini state" in message
    assert "delete the file" in message and "\n" not in message


def test_a_state_directory_that_cannot_be_written_is_refused_naming_it(tmp_path):
    from mafine.errors import MafineError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(MafineError, match=r"a-file/state cannot be written"):
        FakeGemini(FakeSettings(), state_dir=blocker / "state")


# ---- separate processes ------------------------------------------------------------------
def test_the_readme_stages_one_process_each_match_one_run_in_another_directory(tmp_path):
    staged = config_in(tmp_path / "here")
    for stage in (
        ["prepare"],
        ["debate", "-i", "1"],
        ["build-sft", "-i", "1"],
        ["finetune", "-i", "1"],
        ["evaluate", "-i", "1"],
    ):
        mafine(stage[0], staged, *stage[1:])
    whole = config_in(tmp_path / "elsewhere" / "deeper")
    mafine("run", whole)
    assert_same_run(root_of(staged), root_of(whole))
    stats = cumulative_stats(root_of(staged))
    assert_nothing_sent_twice(stats)
    assert stats["by_kind"]["tuning_create"] == 6  # 3 agents, generator and critic
    models = (root_of(staged) / "iter-1" / "models.jsonl").read_text()
    assert "/endpoints/" in models and str(tmp_path) not in models


def test_raising_iterations_on_a_finished_run_sends_each_request_once(tmp_path):
    raised = config_in(tmp_path / "raised")
    mafine("run", raised)
    mafine("run", raised, "--set", "iterations=2")
    reference = config_in(tmp_path / "reference", iterations=2)
    mafine("run", reference)
    assert_same_run(root_of(raised), root_of(reference))
    stats = cumulative_stats(root_of(raised))
    assert_nothing_sent_twice(stats)
    assert (
        stats["by_kind"]["tuning_create"]
        == cumulative_stats(root_of(reference))["by_kind"]["tuning_create"]
    )


def test_sigkill_during_finetune_then_rerun_matches_an_uninterrupted_run(tmp_path):
    # Slow jobs (several polls each) keep the run inside finetune long enough to kill it.
    slow = {"provider__fake__tuning_polls": 4, "finetune__poll_seconds": 0.3}
    config = config_in(tmp_path / "killed", **slow)
    root = root_of(config)
    log = tmp_path / "child.err"
    child = start("run", config, log=log)
    models = root / "iter-1" / "models.jsonl"
    try:
        wait_for(lambda: models.exists() and b'"submitted"' in models.read_bytes(), child, log)
    finally:
        kill(child)
    assert b'"succeeded"' not in models.read_bytes()  # killed while the jobs ran
    mafine("run", config)
    reference = config_in(tmp_path / "reference", **slow)
    mafine("run", reference)
    assert_same_run(root, root_of(reference))
    stats = cumulative_stats(root)
    assert_nothing_sent_twice(stats)
    assert stats["by_kind"]["tuning_create"] == 6, "a tuning job was paid for twice"


def test_sigkill_during_batch_polling_then_rerun_matches_an_uninterrupted_run(tmp_path):
    slow = {"provider__gemini": BATCH, "provider__fake__batch_polls": 25}
    config = config_in(tmp_path / "killed", **slow)
    root = root_of(config)
    log = tmp_path / "child.err"
    child = start("run", config, log=log)
    batches = root / "batches.jsonl"
    try:
        wait_for(lambda: batches.exists() and b'"submitted"' in batches.read_bytes(), child, log)
    finally:
        kill(child)
    assert b'"finished"' not in batches.read_bytes()  # killed while the job was polled
    mafine("run", config)
    reference = config_in(tmp_path / "reference", **slow)
    mafine("run", reference)
    assert_same_run(root, root_of(reference))
    stats, expected = cumulative_stats(root), cumulative_stats(root_of(reference))
    assert_nothing_sent_twice(stats)
    assert stats["by_kind"]["batch_create"] == expected["by_kind"]["batch_create"]


# ---- a stored job the service no longer knows --------------------------------------------
def test_a_tuning_job_the_service_forgot_is_named_and_submitted_again_by_the_rerun(tmp_path):
    # Each job takes two polls a second apart: time to kill the run once all six are in.
    slow = {"provider__fake__tuning_polls": 2, "finetune__poll_seconds": 1.0}
    config = config_in(tmp_path, **slow)
    root = root_of(config)
    mafine("prepare", config)
    mafine("debate", config, "-i", "1")
    mafine("build-sft", config, "-i", "1")
    log = tmp_path / "child.err"
    child = start("finetune", config, "-i", "1", log=log)
    models = root / "iter-1" / "models.jsonl"
    try:
        wait_for(
            lambda: models.exists() and models.read_bytes().count(b'"submitted"') == 6, child, log
        )
    finally:
        kill(child)
    shutil.rmtree(root / FAKE_STATE_DIR / "tuning")  # the service forgets every job
    failed = mafine("finetune", config, "-i", "1", check=False)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr
    assert (
        "no longer knows tuning job projects/fake-project/locations/us-central1/tuningJobs/1"
        in lines[0]
    )
    assert "404 NOT_FOUND" in lines[0] and "submits the job again" in lines[0]
    mafine("finetune", config, "-i", "1")
    assert models.read_bytes().count(b'"succeeded"') == 6


def test_a_batch_job_the_service_forgot_is_named_and_submitted_again_by_the_rerun(tmp_path):
    never = {"provider__gemini": BATCH, "provider__fake__batch_polls": 10**6}
    config = config_in(tmp_path, **never)
    root = root_of(config)
    mafine("prepare", config)
    log = tmp_path / "child.err"
    child = start("debate", config, "-i", "1", log=log)
    batches = root / "batches.jsonl"
    try:
        wait_for(lambda: batches.exists() and b'"submitted"' in batches.read_bytes(), child, log)
    finally:
        kill(child)
    shutil.rmtree(root / FAKE_STATE_DIR / "batches")
    failed = mafine("debate", config, "-i", "1", check=False)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr
    job = json.loads(batches.read_text().splitlines()[0])["job"]
    assert f"Vertex AI no longer knows batch job {job} (404 NOT_FOUND)" in lines[0]
    assert "run the same command again to submit its requests again" in lines[0]
    assert json.loads(batches.read_text().splitlines()[-1])["event"] == "failed"
    again = mafine("debate", config, "-i", "1", "--set", "provider.fake.batch_polls=0", check=False)
    assert again.returncode == 0, again.stderr


def test_mafine_fake_gemini_state_dir_keeps_jobs_across_restarts(tmp_path):
    state = tmp_path / "state"

    def serve() -> tuple[subprocess.Popen[str], str]:
        server = subprocess.Popen(
            [sys.executable, "-m", "mafine", "fake-gemini", "--port", "0", "--state-dir", state],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = server.stdout.readline() if server.stdout else ""
        assert "fake Gemini on http://" in line, line
        return server, line.split(" on ", 1)[1].split()[0]

    def batches(url: str) -> list[dict]:
        request = urllib.request.Request(f"{url}/v1beta/batches", headers={"x-goog-api-key": "k"})
        with urllib.request.urlopen(request) as reply:
            return json.loads(reply.read()).get("operations", [])

    first, url = serve()
    try:
        body = {"batch": {"inputConfig": {"requests": {"requests": [{"request": {}}]}}}}
        create = urllib.request.Request(
            f"{url}/v1beta/models/gemini-3.1-flash-lite:batchGenerateContent",
            data=json.dumps(body).encode(),
            headers={"x-goog-api-key": "k", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(create).close()
        assert [job["name"] for job in batches(url)] == ["batches/1"]
    finally:
        kill(first)  # SIGKILL: nothing is saved on the way out
    second, url = serve()
    try:
        assert [job["name"] for job in batches(url)] == ["batches/1"]
    finally:
        second.terminate()
        second.wait()


def cli_run(config: Path):
    return CliRunner().invoke(app, ["run", str(config)])


def test_a_moved_run_finds_the_tuning_job_it_created_but_never_recorded(tmp_path, monkeypatch):
    """A job created just before a kill (not yet in models.jsonl) is found by the run's id,
    kept in its manifest, so the run moved to another folder (Colab -> Drive) does not pay
    for it again."""
    from mafine.stages import finetune

    config = write_config(tmp_path, "colab", data__train_size=6, data__eval_size=4)
    saves = []
    original = finetune._save

    def killed_after_the_first_submission(run, iteration, records):
        saves.append([r.state for r in records])
        if any(r.state == "submitted" for r in records):
            raise KeyboardInterrupt  # the job exists at the service; the record never lands
        original(run, iteration, records)

    monkeypatch.setattr(finetune, "_save", killed_after_the_first_submission)
    assert cli_run(config).exit_code == 130
    monkeypatch.setattr(finetune, "_save", original)
    old_root = root_of(config)
    run_id = json.loads((old_root / "manifest.json").read_text())["run_id"]
    assert old_root.name not in run_id
    moved = tmp_path / "drive" / "MyDrive" / "experiment"
    moved.parent.mkdir(parents=True)
    shutil.move(old_root, moved)
    (moved / ".lock").unlink()
    raw = yaml.safe_load(config.read_text())
    raw["run_dir"] = str(moved)
    config.write_text(yaml.safe_dump(raw))
    assert cli_run(config).exit_code == 0
    stats = cumulative_stats(moved)
    tuned = sum(1 for line in (moved / "iter-1" / "models.jsonl").read_text().splitlines()
                if json.loads(line)["state"] == "succeeded")  # fmt: skip
    assert stats["by_kind"]["tuning_create"] == tuned  # each job created once
    assert json.loads((moved / "manifest.json").read_text())["run_id"] == run_id
