"""Hostile invocations from a later outside pass, one per class of defect it found: each ends
with one line on stderr, the promised exit code and no traceback."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.hostile import assert_refused, run_dir, small_config


def _with_closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """`mafine ARGS | true`: the reader of stdout is gone before anything is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "mafine", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [("--help",), ("report", "--help"), ()])
def test_help_to_a_closed_stdout_exits_141_with_one_line(args):
    """Help and usage text is written by the parser outside a command's guard; rich and click
    exit 1 silently on a broken pipe there."""
    child = _with_closed_stdout(*args)
    assert child.returncode == 141, child.stderr
    lines = child.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: standard output was closed")


def test_a_split_size_past_any_use_is_refused_before_generating(cli, tmp_path):
    """`data.train_size: 100000000000` generated DeepMind problems for hours, silently."""
    config = small_config(tmp_path, "huge")
    result = cli("prepare", config, "--set", "data.train_size=100000000000")
    assert_refused(result, "data.train_size", "1000000")


def test_an_endless_source_that_only_repeats_stops_the_draw():
    """A generator with few distinct problems repeats forever: the draw stops and says how
    many it found, instead of spinning."""
    from mafine.stages import prepare

    def repeating() -> Iterator[tuple[None, str, str]]:
        for count, question in enumerate(itertools.cycle(["1+1?", "2+2?"])):
            if count > 10 * prepare.MAX_REPEATS_IN_A_ROW:
                raise AssertionError("the draw never stopped")
            yield None, question, "2"

    assert len(prepare._draw(repeating(), 5, set())) == 2


def test_a_usage_hint_of_the_form_key_equals_value_reaches_the_user_whole(cli, tmp_path):
    """The scrubber took `key=v1,v2` in mafine's own hints for a URL's `key=` parameter."""
    from mafine.secrets import REDACTED, scrub

    config = small_config(tmp_path, "hint")
    assert_refused(cli("sweep", config), "--grid key=v1,v2")
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"gold": "1", "response": "1"}\n')
    assert_refused(cli("grade", answers, "--option", "bad"), "expects key=value")
    assert scrub("https://h/v1?alt=sse&key=abc") == f"https://h/v1?alt=sse&key={REDACTED}"


def test_a_password_in_a_run_dir_url_never_reaches_the_disk(cli, tmp_path, monkeypatch):
    """`run_dir: https://u:pw@host/x` became the path `https:/u:pw@host/x` (one slash), which
    no longer looks like a URL once validated: the secret was written into the run."""
    monkeypatch.chdir(tmp_path)
    config = small_config(tmp_path, "url")
    line = assert_refused(
        cli("run", config, "--set", "run_dir=https://u:secretpw1@x/y"), "run_dir", "secret"
    )
    assert "secretpw1" not in line
    assert not (tmp_path / "https:").exists()


@pytest.mark.parametrize(
    "command", [("debate", "--split", "train"), ("build-sft",), ("finetune",), ("evaluate",)]
)
def test_an_iteration_past_the_config_is_a_usage_error(cli, tmp_path, command):
    """`-i 99999999999999999999` passed the option's own range and exited 1, not 2."""
    config = small_config(tmp_path, "past")
    result = cli(command[0], config, *command[1:], "-i", "99999999999999999999")
    assert_refused(result, "--iteration", "past the config's iterations")
    assert result.exit_code == 2


def test_a_second_sigterm_stops_at_once_with_one_line_and_nothing_paid_twice(tmp_path):
    """The second SIGTERM (while the first unwinds) ended the process with nothing on stderr."""
    from tests.test_kills import SLOW, served_twice, stage_running_with_responses, wait_for

    config = small_config(tmp_path, "twice", **SLOW)
    root = run_dir(config)
    args = [sys.executable, "-m", "mafine", "run", str(config)]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: stage_running_with_responses(root, "iter-1/train-debate", 2))
    child.send_signal(signal.SIGTERM)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode in (-signal.SIGTERM, 143), stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: terminated"), stderr
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert served_twice(root) == []
