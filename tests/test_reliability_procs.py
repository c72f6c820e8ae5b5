"""Issue 19, items 1-12: money and processes. Requests in flight when a stage stops, a run's
identity, sweeps, concurrent writers, secrets in URLs, spend of compared methods, relative
run directories, signals and closed stdout in every command, the `fake-gemini` command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mafine import attempts, journal
from mafine.artifacts import Completion, JournalEntry, Message, Usage
from mafine.cli import app
from mafine.errors import MafineError
from mafine.journal import Generator, Journal
from mafine.outputs import exclusive
from mafine.providers.base import GenerationRequest, ProviderBase, Sampling
from mafine.rundir import StageCounters
from mafine.stages.debate import gather_or_stop
from tests.hostile import run_dir, small_config
from tests.test_kills import manifest, served_twice, stage_running_with_responses, wait_for


# 1. Requests in flight when a stage stops ---------------------------------------------------
@dataclass
class GatedProvider(ProviderBase):
    """Answers only once `release` is set; request `fail_index` fails at once instead."""

    name: str = "gated"
    max_concurrency: int = 4
    fail_index: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: list[int] = field(default_factory=list)

    async def generate(self, request: GenerationRequest) -> Completion:
        self.arrived.append(request.sample_index)
        if request.sample_index == self.fail_index:
            raise MafineError("the service refused this one")
        await self.release.wait()
        return Completion(text=f"answer {request.sample_index}", usage=Usage(total_tokens=3))


def _generator(tmp_path: Path, provider: GatedProvider, grace_s: float = 30.0) -> Generator:
    sampling = Sampling(temperature=1.0, top_p=1.0, max_output_tokens=10)
    store = Journal(tmp_path / "journal.jsonl")
    return Generator(provider, store, sampling, 0, StageCounters(), grace_s=grace_s)


def _journaled(tmp_path: Path) -> list[JournalEntry]:
    path = tmp_path / "journal.jsonl"
    return [JournalEntry.model_validate_json(line) for line in path.read_text().splitlines()]


def _ask(generator: Generator, count: int) -> asyncio.Future[list[Completion]]:
    question = [Message(role="user", content="2+2?")]
    return asyncio.ensure_future(
        gather_or_stop(*(generator.complete("m", question, index) for index in range(count)))
    )


@pytest.mark.parametrize("stop", ["cancelled", "a sibling failed"])
def test_answers_that_arrive_while_a_stage_stops_are_journaled(tmp_path, monkeypatch, stop):
    """Whatever stops a stage (Ctrl-C and SIGTERM cancel it; any error stops its siblings),
    an answer the service gives within the grace period is journaled before it unwinds."""
    provider = GatedProvider(fail_index=3 if stop == "a sibling failed" else None)
    generator = _generator(tmp_path, provider)
    stopping = journal._settled_within

    async def release_once_stopping(task, seconds):  # answers come after the stop began
        provider.release.set()
        return await stopping(task, seconds)

    monkeypatch.setattr(journal, "_settled_within", release_once_stopping)

    async def scenario() -> None:
        asked = _ask(generator, 4)
        while len(provider.arrived) < 4:
            await asyncio.sleep(0)
        if stop == "cancelled":
            asked.cancel()
        with pytest.raises((asyncio.CancelledError, MafineError)):
            await asked

    asyncio.run(scenario())
    generator.journal.close()
    answered = {entry.completion.text for entry in _journaled(tmp_path)}
    expected = {f"answer {i}" for i in range(4) if i != provider.fail_index}
    assert answered == expected
    assert generator.counters.requests == len(expected)
    assert generator.counters.unanswered == 0


def test_an_answer_later_than_the_grace_period_is_counted_unanswered(tmp_path):
    provider = GatedProvider()  # never released
    generator = _generator(tmp_path, provider, grace_s=0.05)

    async def scenario() -> None:
        asked = _ask(generator, 3)
        while len(provider.arrived) < 3:
            await asyncio.sleep(0)
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asked

    asyncio.run(scenario())
    generator.journal.close()
    assert not (tmp_path / "journal.jsonl").exists()
    assert generator.counters.unanswered == 3
    sent = (tmp_path / "journal.sent.jsonl").read_text().splitlines()
    assert len(sent) == 3


def test_a_killed_attempt_counts_the_requests_it_left_in_flight(tmp_path):
    """After SIGKILL the stage entry is left `running`; the next attempt counts what the
    killed one sent: answered (journaled) and unanswered (noted as sent, never journaled)."""
    path = tmp_path / "journal.jsonl"
    before = Journal(path)
    before.note_sent("old")
    before.put("old", "m", Completion(text="x", usage=Usage(total_tokens=1)))
    before.close()
    entry = {
        "status": "running",
        attempts.JOURNAL_OFFSET: attempts.log_size(path),
        attempts.SENT_OFFSET: attempts.log_size(attempts.sent_log(path)),
    }
    killed = Journal(path)
    for key in ("a", "b", "c"):
        killed.note_sent(key)
    killed.put("a", "m", Completion(text="a", usage=Usage(total_tokens=2)))
    killed.close()
    spent = attempts.earlier_attempts(entry, path)
    assert (spent.attempts, spent.requests, spent.unanswered) == (1, 1, 2)
    assert spent.usage.total_tokens == 2


# 9, 10. Signals and a closed stdout, in every command -----------------------------------------
SLOW = {"provider__fake__latency_s": 0.1, "provider__max_concurrency": 2}


def _command(kind: str, config: Path) -> tuple[list[str], Path]:
    """A command line of each kind that debates, and the run directory it debates in."""
    root = run_dir(config)
    if kind == "sweep":
        return ["sweep", str(config), "--seeds", "0"], root / "sweep" / "seed=0"
    if kind == "debate":
        return ["debate", str(config)], root
    return ["run", str(config)], root


def _start(args: list[str], stdout: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mafine", *args], stdout=stdout, stderr=subprocess.PIPE, text=True
    )


def _debating(root: Path, stage: str = "iter-1/train-debate") -> Callable[[], bool]:
    def ready() -> bool:
        prepared = (root / "problems" / "train.jsonl").exists()
        return prepared and stage_running_with_responses(root, stage, 2)

    return ready


def _prepare(config: Path) -> None:
    """`debate` needs prepared problems; `run` and `sweep` prepare their own."""
    assert CliRunner().invoke(app, ["prepare", str(config)]).exit_code == 0


@pytest.mark.parametrize(
    ("kind", "sent", "code", "word"),
    [
        ("sweep", signal.SIGTERM, 143, "terminated"),
        ("sweep", signal.SIGINT, 130, "interrupted"),
        ("debate", signal.SIGTERM, 143, "terminated"),
    ],
)
def test_a_signal_stops_every_command_in_one_line_and_records_it(tmp_path, kind, sent, code, word):
    """SIGTERM -> 143 and Ctrl-C -> 130 with one line, the stage `interrupted` (not failed),
    and the rerun sends no request the fake already answered."""
    config = small_config(tmp_path, "stopped", **SLOW)
    args, root = _command(kind, config)
    if kind == "debate":
        _prepare(config)
    child = _start(args)
    wait_for(_debating(root))
    child.send_signal(sent)
    _, stderr = child.communicate(timeout=60)
    assert (child.returncode, stderr.strip().splitlines()) == (
        code,
        [f"error: {word}; run the same command again to resume"],
    )
    assert manifest(root)["stages"]["iter-1/train-debate"]["status"] == "interrupted"
    rerun = _start(args)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert served_twice(root) == []


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_a_closed_stdout_stops_the_command_like_an_interruption(tmp_path, kind):
    """`mafine run ... | head`: when the reader goes away the command stops with one line and
    exit 141, the stage is recorded `interrupted`, and no answered request is lost."""
    config = small_config(tmp_path, "piped", **SLOW)
    args, root = _command(kind, config)
    child = _start(args, stdout=subprocess.PIPE)
    wait_for(_debating(root))
    assert child.stdout is not None
    child.stdout.close()  # the reader exits; the next progress line finds the pipe closed
    stderr = child.stderr.read() if child.stderr else ""
    child.wait(timeout=60)
    assert child.returncode == 141, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: standard output was closed"), stderr
    assert manifest(root)["stages"]["iter-1/train-debate"]["status"] == "interrupted"
    rerun = _start(args)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert served_twice(root) == []


# 4. Two writers of one output -----------------------------------------------------------------
@pytest.mark.parametrize("command", ["grade", "report"])
def test_a_second_writer_of_one_output_is_refused(tmp_path, finished, command):
    """While one command writes an output, another writing the same file stops at once, naming
    the first, and the file is left as the first one makes it."""
    output = tmp_path / "out" / ("graded.jsonl" if command == "grade" else "comparison.md")
    if command == "grade":
        source = tmp_path / "responses.jsonl"
        source.write_text('{"gold": "5", "response": "\\\\boxed{5}"}\n')
        args = ["grade", str(source), "-o", str(output)]
    else:
        args = ["report", str(run_dir(finished)), "-o", str(output)]
    with exclusive(output):  # the first writer, still at work
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {output} is being written by mafine pid {os.getpid()}; wait for it to finish "
        "or choose another --output"
    ]
    assert not output.exists()
    assert CliRunner().invoke(app, args).exit_code == 0  # once it is done


# 11. The fake-gemini command ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sent", "code", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
)
def test_fake_gemini_stops_on_a_signal_with_its_exit_code(tmp_path, sent, code, word):
    child = _start(["fake-gemini", "--port", "0", "--state-dir", str(tmp_path / "state")],
                   stdout=subprocess.PIPE)  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline().startswith("fake Gemini on http://127.0.0.1:")
    child.send_signal(sent)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == code
    assert stderr.strip().splitlines() == [f"error: fake Gemini stopped ({word})"]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--error-rate", "2"], "--error-rate"),
        (["--latency", "-1"], "--latency"),
        (["--fault-kinds", "nope"], "--fault-kinds"),
        (["--requests-per-minute", "0"], "--requests-per-minute"),
        (["--state-dir", "{file}/state"], "--state-dir"),
    ],
)
def test_fake_gemini_names_the_option_of_a_bad_value_with_exit_2(tmp_path, args, option):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [arg.replace("{file}", str(blocker)) for arg in args]
    result = CliRunner().invoke(app, ["fake-gemini", "--port", "0", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option} "), lines
    field = {"--error-rate": "error_rate", "--latency": "latency_s"}.get(option, "no field")
    assert field not in lines[0]


# 6. The manifest counts what compared methods spent -------------------------------------------
def test_the_run_totals_cover_the_compared_methods_spend(tmp_path):
    config = small_config(tmp_path, "compared", evaluation={"compare": ["no_summary"]})
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    root = run_dir(config)
    journaled = len((root / "journal.jsonl").read_text().splitlines())
    document = manifest(root)
    variant = manifest(root / "variants" / "no_summary")
    own = sum(entry["requests"] for entry in document["stages"].values())
    spent = sum(entry["requests"] for entry in variant["stages"].values())
    assert spent > 0  # the variant debated without summaries: new requests
    assert document["totals"]["run"]["requests"] == own + spent == journaled
    assert document["totals"]["variants"]["requests"] == spent
    tokens = document["totals"]["run"]["usage"]["total_tokens"]
    assert tokens == sum(
        entry["usage"]["total_tokens"]
        for entry in [*document["stages"].values(), *variant["stages"].values()]
    )


# 7. A relative run_dir from another working directory -----------------------------------------
@pytest.mark.parametrize("command", ["prepare", "sweep"])
def test_a_relative_run_dir_from_elsewhere_names_the_existing_run(tmp_path, monkeypatch, command):
    """`run_dir: runs/rel` is relative to the working directory; from another directory the
    same command would start (and pay for) a new run, so it is refused, naming where the run
    is and how to continue it."""
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    config = small_config(project / "configs", "rel", run_dir="runs/rel")
    monkeypatch.chdir(project)
    point = ["--set", "seed=0", "--set", "run_dir=runs/rel/sweep/seed=0"]
    first = CliRunner().invoke(
        app, ["prepare", str(config), *(point if command == "sweep" else [])]
    )
    assert first.exit_code == 0, first.output
    assert f"new run directory: {project / 'runs' / 'rel'}" in first.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = (
        ["prepare", str(config)] if command == "prepare" else ["sweep", str(config), "--seeds", "0"]
    )
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    existing = project / "runs" / "rel" / ("sweep/seed=0" if command == "sweep" else "")
    line = refused.output.strip().splitlines()[-1]
    assert f"this config's run is in {existing.resolve()}" in line or str(existing) in line
    assert f"run the command from {project}" in line
    assert list(elsewhere.iterdir()) == []  # no new run started
    if command == "prepare":
        continued = CliRunner().invoke(app, [*args, "--set", f"run_dir={existing}"])
        assert continued.exit_code == 0, continued.output


def test_a_command_started_with_stdout_closed_stops_at_once(tmp_path):
    config = small_config(tmp_path, "closed")
    child = subprocess.run(
        [sys.executable, "-m", "mafine", "run", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),  # `mafine run ... >&-`
        timeout=60,
    )
    assert child.returncode == 141
    assert child.stderr.startswith("error: standard output was closed")
    assert not run_dir(config).exists()  # nothing started, nothing spent
