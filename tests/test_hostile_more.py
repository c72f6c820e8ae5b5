"""More hostile invocations, one per class of defect an outside tester found: each is refused
with one line, a non-zero exit and no traceback, and writes nothing it should not."""

from __future__ import annotations

import logging
import os
import stat
import sys

import pytest
import typer
import yaml

from mafine.errors import MafineError
from mafine.guard import guarded
from tests.hostile import assert_refused, files, refused_unchanged, run_dir, small_config

KEY = "AIzaSyHostileMoreKey0123456789abcdefgh"


def test_output_that_is_not_a_regular_file_is_refused(cli, tmp_path):
    """An atomic write would replace a FIFO or a device node (`-o /dev/full`) by a file."""
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"gold": "1", "response": "\\\\boxed{1}"}\n')
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_refused(cli("grade", answers, "--grader", "string", "-o", fifo), "not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize("port", ["-1", "65536", "70000"])
def test_fake_gemini_port_out_of_range_is_a_usage_error(cli, port):
    result = cli("fake-gemini", "--port", port)
    assert_refused(result, "--port")
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("option", "value"), [("--latency", "1e999"), ("--error-rate", "nan"), ("--hang", "inf")]
)
def test_fake_gemini_non_finite_option_is_refused(cli, option, value):
    assert_refused(cli("fake-gemini", "--port", "0", option, value), "finite")


@pytest.mark.parametrize(
    "override",
    [
        "provider.local.lora_alpha=inf",
        "provider.local.batch_window_ms=.inf",
        "grading.timeout_s=nan",
    ],
)
def test_non_finite_strings_are_refused_in_every_section(cli, tmp_path, override):
    config = small_config(tmp_path)
    refused_unchanged(cli, run_dir(config), "prepare", config, "--set", override)


def test_a_compared_method_given_twice_is_refused(cli, tmp_path):
    config = small_config(tmp_path)
    refused_unchanged(
        cli,
        run_dir(config),
        "prepare",
        config,
        "--set",
        "evaluation.compare=[star,star]",
        fragments=("evaluation.compare", "once"),
    )


def test_sweeping_run_dir_is_refused(cli, tmp_path):
    config = small_config(tmp_path)
    assert_refused(cli("sweep", config, "--grid", "run_dir=a,b"), "--grid run_dir")
    assert not run_dir(config).exists()


@pytest.mark.parametrize("key", ["provider.model", "provider.gemini.project", "prompts.question"])
def test_a_key_pasted_into_any_field_is_refused_unechoed(cli, tmp_path, key):
    config = small_config(tmp_path)
    value = f"{{question}} {KEY}" if key.startswith("prompts") else KEY
    line = refused_unchanged(cli, run_dir(config), "prepare", config, "--set", f"{key}={value}")
    assert key in line and KEY not in line
    assert not run_dir(config).exists()


def test_a_secret_variable_in_the_run_dir_is_refused(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "hostile-secret-value-42")
    config = small_config(tmp_path)
    target = tmp_path / "runs" / "hostile-secret-value-42"
    line = assert_refused(cli("prepare", config, "--set", f"run_dir={target}"), "run_dir")
    assert "hostile-secret-value-42" not in line
    assert not target.exists()


def test_library_log_records_stay_off_stderr(capsys):
    """huggingface_hub logs each retry to its own stderr handler; the failure stays one line."""
    logger = logging.getLogger("mafine-test-library")
    logger.addHandler(logging.StreamHandler(sys.stderr))
    logger.propagate = False

    def body() -> None:
        logger.warning("Retrying in 1s [Retry 1/5].")
        import warnings

        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        raise MafineError("the one line")

    try:
        with pytest.raises(typer.Exit):
            guarded(body)
    finally:
        logger.handlers.clear()
    assert capsys.readouterr().err == "error: the one line\n"
    logger.warning("visible again")  # the command's quiet ends with it
    assert logging.root.manager.disable == logging.NOTSET


def test_metrics_do_not_depend_on_where_the_run_lives(cli, tmp_path):
    (tmp_path / "a").mkdir()
    first = small_config(tmp_path / "a", "same")
    second = tmp_path / "b" / "same.yaml"
    second.parent.mkdir()
    raw = yaml.safe_load(first.read_text())
    raw["run_dir"] = str(tmp_path / "elsewhere" / "deeper" / "same")
    second.write_text(yaml.safe_dump(raw, sort_keys=False))
    for config in (first, second):
        result = cli("run", config)
        assert result.exit_code == 0, result.output
    a, b = files(run_dir(first)), files(run_dir(second))
    for name in ("metrics.json", "iter-1/metrics.json", "baseline/metrics.json"):
        assert a[name] == b[name], name


def test_an_empty_key_path_segment_names_the_key(cli, tmp_path):
    config = small_config(tmp_path)
    refused_unchanged(cli, run_dir(config), "prepare", config, "--set", ".seed=1",
                      fragments=("--set .seed",))  # fmt: skip


def test_a_diversity_round_past_the_last_round_is_refused(cli, tmp_path):
    config = small_config(tmp_path)
    refused_unchanged(
        cli,
        run_dir(config),
        "prepare",
        config,
        "--set",
        "evaluation.diversity_round=9",
        fragments=("evaluation.diversity_round 9",),
    )


def test_a_file_that_is_no_config_is_not_echoed(cli, tmp_path):
    """A password file given as the config: its lines are keys to pydantic; never shown."""
    secret_lines = "".join(f"user{i}:$6$secrethash{i}:20228:0:99999:7:::\n" for i in range(30))
    bogus = tmp_path / "passwd.yaml"
    bogus.write_text(secret_lines)
    line = assert_refused(cli("prepare", bogus), "is this a mafine config", "more")
    assert "secrethash" not in line


def test_grading_an_empty_file_is_an_error(cli, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_refused(cli("grade", empty, "--grader", "string"), "no rows to grade")
