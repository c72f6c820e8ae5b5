"""Hostile invocations: each one is refused with one line, a non-zero exit, no traceback, and a
run directory byte-identical before and after (docs/reliability.md counts them by kind)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mafine.errors import MafineError
from tests.hostile import (
    assert_refused,
    files,
    refused_unchanged,
    run_dir,
    small_config,
)

KEY = "AIzaSyHostileTestKey0123456789abcdefgh"


def config_text(tmp_path: Path, text: str, name: str = "c") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"run_dir: {tmp_path / 'runs' / name}\n" + text)
    return path


# Undecodable bytes --------------------------------------------------------------------------
def test_undecodable_config(cli, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"seed: 0\nprompts:\n  question: '\xff\xfe {question}'\n")
    assert_refused(cli("prepare", path), str(path), "not UTF-8")


@pytest.mark.parametrize(
    ("relative", "command"),
    [
        ("journal.jsonl", ("run",)),
        ("manifest.json", ("run",)),
        ("config.yaml", ("run",)),
        ("iter-1/eval-debate.jsonl", ("evaluate", "-i", "1")),
        ("baseline/eval-debate.jsonl", ("evaluate", "-i", "1")),
        (
            "problems/train.jsonl",
            ("debate", "--split", "train", "-i", "2", "--set", "iterations=2"),
        ),
        ("iter-1/models.jsonl", ("evaluate", "-i", "1")),
    ],
)
def test_undecodable_run_file(cli, copy, relative, command):
    root = run_dir(copy)
    path = root / relative
    data = path.read_bytes()
    cut = data.index(b"\n") + 1 if relative.endswith(".jsonl") else 0
    path.write_bytes(data[:cut] + b'{"\xff\xfe": 1}\n' + data[cut:])
    line = refused_unchanged(cli, root, command[0], copy, *command[1:])
    assert relative.split("/")[-1] in line and "UTF-8" in line


# Valid JSON of the wrong shape ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("relative", "content", "command"),
    [
        ("manifest.json", b"[]\n", ("run",)),
        ("manifest.json", b'{"stages": [1, 2]}\n', ("run",)),
        ("manifest.json", b'{"stages": {"prepare": "done"}}\n', ("run",)),
        ("manifest.json", b'{"invocations": {}}\n', ("run",)),
        ("config.yaml", b"- a list\n", ("run",)),
        ("config.yaml", b"42\n", ("run",)),
        ("journal.jsonl", b"[1, 2]\n", ("run",)),
        ("journal.jsonl", b'{"key": 1}\n', ("run",)),
        ("iter-1/eval-debate.jsonl", b'{"problem_id": []}\n', ("evaluate", "-i", "1")),
        ("iter-1/models.jsonl", b'"a string"\n', ("evaluate", "-i", "1")),
        ("problems/train.jsonl", b"{}\n", ("debate", "-i", "2", "--set", "iterations=2")),
        ("metrics.json", b'{"methods": 3}\n', ("report",)),
        ("metrics.json", b"[]\n", ("report",)),
    ],
)
def test_wrong_shape_run_file(cli, copy, relative, content, command):
    root = run_dir(copy)
    path = root / relative
    path.write_bytes(content)
    target = root if command == ("report",) else copy
    line = refused_unchanged(cli, root, command[0], target, *command[1:])
    assert relative.split("/")[-1] in line


# Filesystem faults --------------------------------------------------------------------------
def test_run_dir_under_a_regular_file(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    config = small_config(tmp_path, run_dir=str(blocker / "run"))
    line = assert_refused(cli("prepare", config), str(blocker))
    assert "is a file" in line or "not a directory" in line
    assert blocker.read_text() == "mine\n"


def test_run_dir_is_a_file(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    config = small_config(tmp_path, run_dir=str(blocker))
    assert_refused(cli("prepare", config), "is a file")
    assert blocker.read_text() == "mine\n"


def test_config_path_is_a_directory(cli, tmp_path):
    assert_refused(cli("prepare", tmp_path), str(tmp_path))


def test_data_path_is_a_directory(cli, tmp_path):
    config = small_config(tmp_path, data__source={"kind": "file", "path": str(tmp_path)})
    assert_refused(cli("prepare", config), str(tmp_path))
    assert not run_dir(config).exists() or files(run_dir(config)) == {}


def test_no_space_left_keeps_every_finished_file(cli, copy, monkeypatch):
    import errno
    import os

    root = run_dir(copy)
    before = files(root)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert_refused(cli("evaluate", copy, "-i", "1"), "no space left", str(root))
    after = files(root)
    stray = [name for name in after if name.endswith(".tmp")]
    assert stray == []
    assert {k: v for k, v in after.items() if k != "manifest.json"} == {
        k: v for k, v in before.items() if k != "manifest.json"
    }


def test_output_is_a_directory(cli, copy, tmp_path):
    transcripts = run_dir(copy) / "iter-1" / "eval-debate.jsonl"
    assert_refused(cli("grade", transcripts, "-o", tmp_path), "is a directory")


# Refused config values -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("run_dir: ''\n", ("run_dir",)),
        ("run_dir: '  '\n", ("run_dir",)),
        ("seed: yes\n", ("seed",)),
        ("seed: true\n", ("seed", "yes/no")),
        ("agents: {count: on}\n", ("agents.count",)),
        ("iterations: false\n", ("iterations",)),
        ("provider: {timeout_s: .inf}\n", ("provider.timeout_s", "finite")),
        ("provider: {timeout_s: .nan}\n", ("provider.timeout_s", "finite")),
        ("finetune: {poll_seconds: .inf}\n", ("finetune.poll_seconds", "finite")),
        ("provider: {gemini: {batch_poll_s: .nan}}\n", ("batch_poll_s", "finite")),
        ("grading: {timeout_s: .inf}\n", ("grading.timeout_s", "finite")),
        ("sampling: {temperature: .nan}\n", ("sampling.temperature", "finite")),
        ("provider: {max_concurrency: 1000000}\n", ("provider.max_concurrency",)),
        ("grading: {workers: 1000000}\n", ("grading.workers",)),
        ("finetune: {poll_seconds: 1.0e9}\n", ("finetune.poll_seconds",)),
        (
            "prompts: {question: 'Solve {question} {question.nope}'}\n",
            ("prompts.question", "placeholder"),
        ),
        ("prompts: {question: 'Solve {question} {question[0]}'}\n", ("prompts.question",)),
        ("prompts: {question: 'Solve {question} {question!r}'}\n", ("prompts.question",)),
        ("prompts: {question: 'Solve {question} {0}'}\n", ("prompts.question",)),
        ("prompts: {summarize: '{question} {responses} {summary.x}'}\n", ("prompts.summarize",)),
        ("- a\n- b\n", ("mapping",)),
    ],
)
def test_refused_value(cli, tmp_path, text, fragments):
    path = tmp_path / "c.yaml"
    path.write_text(text if text.startswith(("run_dir", "-")) else f"{text}")
    cwd_files = sorted(p.name for p in tmp_path.iterdir())
    assert_refused(cli("prepare", path), *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == cwd_files  # nothing created


@pytest.mark.parametrize("override", ["seed=yes", "provider.timeout_s=.inf", "seed=true"])
def test_refused_override(cli, config_path, override):
    assert_refused(cli("prepare", config_path, "--set", override), override.split("=")[0])
    assert not run_dir(config_path).exists()


def test_yaml_alias_bomb(cli, tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    lines.append("seed: 0")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert_refused(cli("prepare", path), "alias")


def test_yaml_nested_too_deeply(cli, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("seed: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_refused(cli("prepare", path), str(path), "nested too deeply")


def test_run_dir_null_is_the_default(cli, tmp_path, monkeypatch):
    config = small_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["run_dir"] = None
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    result = cli("prepare", config)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / config.stem / "problems" / "train.jsonl").is_file()


@pytest.mark.parametrize("where", ["cwd", "other"])
def test_non_empty_directory_that_is_no_run(cli, tmp_path, monkeypatch, where):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    (mine / "data").mkdir()
    monkeypatch.chdir(mine)
    config = small_config(tmp_path, run_dir="." if where == "cwd" else str(mine))
    before = sorted(p.name for p in mine.iterdir())
    assert_refused(cli("prepare", config), "not a mafine run")
    assert sorted(p.name for p in mine.iterdir()) == before  # not even a lock file
    assert (mine / "thesis.tex").read_text() == "years of work\n"


def test_repeated_ids_in_a_local_data_file(cli, tmp_path):
    data = tmp_path / "problems.jsonl"
    rows = [{"id": f"p{i % 5}", "question": f"What is {i} + 1?", "answer": str(i + 1)}
            for i in range(20)]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = {"kind": "file", "path": str(data), "id_field": "id"}
    config = small_config(tmp_path, data__source=source)
    line = assert_refused(cli("prepare", config), str(data), "'p0'", "line 6", "line 1")
    assert "unique" in line
    assert files(run_dir(config)) == {}


# Secrets ----------------------------------------------------------------------------------------
def secret_free(tmp_path: Path, *outputs: str) -> None:
    for output in outputs:
        assert KEY not in output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes() or path.suffix == ".yaml", path


@pytest.mark.parametrize("how", ["file", "set"])
def test_key_pasted_as_the_variable_name(cli, tmp_path, how):
    if how == "file":
        config = small_config(tmp_path, provider__gemini={"api_key_env": KEY})
        result = cli("prepare", config, "--set", "provider.name=gemini")
    else:
        config = small_config(tmp_path)
        result = cli("prepare", config, "--set", f"provider.gemini.api_key_env={KEY}")
    assert_refused(result, "api_key_env", "NAME")
    assert not run_dir(config).exists()
    secret_free(tmp_path, result.output, result.stderr)


@pytest.mark.parametrize("param", ["key", "api_key", "access_token"])
def test_key_in_a_url_query(cli, tmp_path, param):
    url = f"https://generativelanguage.example/v1?{param}={KEY}&alt=sse"
    config = small_config(tmp_path, provider__gemini={"base_url": url})
    result = cli("prepare", config)
    assert_refused(result, "base_url", "query")
    assert not run_dir(config).exists()
    secret_free(tmp_path, result.output, result.stderr)


def test_a_secret_in_any_error_is_scrubbed(cli, copy, monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", KEY)

    def leaky(*args, **kwargs):
        raise RuntimeError(f"upstream said: bad request https://x.example/?key={KEY} ({KEY})")

    monkeypatch.setattr("mafine.pipeline.run_all", leaky)
    line = assert_refused(cli("run", copy), "internal error", "--debug")
    assert KEY not in line and "[redacted]" in line


# Rich markup ---------------------------------------------------------------------------------
def test_messages_print_literally(cli, copy, monkeypatch):
    def refuse(*args, **kwargs):
        raise MafineError("install the extra: pip install 'mafine[local]' [/x] [bold]b[/bold]")

    monkeypatch.setattr("mafine.pipeline.run_all", refuse)
    line = assert_refused(cli("run", copy))
    assert line == "error: install the extra: pip install 'mafine[local]' [/x] [bold]b[/bold]"


def test_markup_in_a_data_path(cli, tmp_path):
    data = tmp_path / "odd[/x]name[bold]" / "p[/x].jsonl"
    data.parent.mkdir(parents=True)
    rows = [{"question": f"What is {i} + 2?", "answer": str(i + 2)} for i in range(12)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = small_config(tmp_path, data__source={"kind": "file", "path": str(data)})
    result = cli("prepare", config)
    assert result.exit_code == 0, result.output
    assert str(data) in result.output
    missing = small_config(tmp_path, "missing", data__source={"kind": "file", "path": f"{data}x"})
    assert_refused(cli("prepare", missing), f"{data}x")


# Providers and ports ---------------------------------------------------------------------------
def test_port_in_use_for_the_fake(cli):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert_refused(cli("fake-gemini", "--port", port), str(port), "--port")


def test_an_endpoint_that_answers_with_no_text(cli, tmp_path):
    config = small_config(
        tmp_path, provider__fake__fault_rate=1.0, provider__fake__fault_kinds=["empty"]
    )
    assert cli("prepare", config).exit_code == 0
    problems = files(run_dir(config))
    line = assert_refused(cli("debate", config), "had no text", "NO_CANDIDATES")
    assert "empty_response_limit" in line
    after = files(run_dir(config))
    assert all(after[name] == data for name, data in problems.items() if name != "manifest.json")
    manifest = json.loads(after["manifest.json"])
    assert manifest["stages"]["iter-1/train-debate"]["status"] == "failed"


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(cli, copy, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("mafine.pipeline.run_all", broken)
    assert_refused(cli("run", copy), "ZeroDivisionError", "--debug")
    result = cli("--debug", "run", copy)
    assert result.exit_code == 1 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: internal error")


# Nothing already written is lost --------------------------------------------------------------
def test_grade_output_that_is_its_input(cli, copy):
    transcripts = run_dir(copy) / "iter-1" / "eval-debate.jsonl"
    refused_unchanged(cli, run_dir(copy), "grade", transcripts, "-o", transcripts,
                      fragments=("input",))  # fmt: skip


@pytest.mark.parametrize("artifact", ["metrics.json", "report.md", "iter-1/models.jsonl"])
def test_output_that_is_a_run_artifact(cli, copy, artifact):
    root = run_dir(copy)
    transcripts = root / "iter-1" / "eval-debate.jsonl"
    refused_unchanged(cli, root, "grade", transcripts, "-o", root / artifact,
                      fragments=("run directory",))  # fmt: skip
    refused_unchanged(cli, root, "report", root, "-o", root / artifact)


def test_sweep_output_that_is_its_config(cli, copy):
    before = copy.read_bytes()
    assert_refused(cli("sweep", copy, "--seeds", "0,1", "-o", copy), "input")
    assert copy.read_bytes() == before


def test_lowering_the_evaluated_iteration_is_refused(cli, copy):
    root = run_dir(copy)
    refused_unchanged(cli, root, "evaluate", copy, "-i", "0", fragments=("iteration 1",))


def test_metrics_are_validated_before_they_replace_good_ones(cli, copy, monkeypatch):
    from mafine.stages import evaluate

    original = evaluate.metrics_document

    async def corrupt(*args, **kwargs):
        document = await original(*args, **kwargs)
        document["methods"][0]["correct"] = document["methods"][0]["correct"][:-1]
        return document

    monkeypatch.setattr(evaluate, "metrics_document", corrupt)
    refused_unchanged(cli, run_dir(copy), "evaluate", copy, "-i", "1",
                      fragments=("metrics",))  # fmt: skip


def test_a_finished_run_reruns_as_a_no_op_leaving_it_unchanged(cli, copy):
    root = run_dir(copy)
    before = files(root)
    result = cli("run", copy)
    assert result.exit_code == 0, result.output
    after = files(root)
    changed = sorted(k for k in after if before.get(k) != after[k])
    assert set(changed) <= {"manifest.json", "metrics.json", "report.md", "iter-1/metrics.json",
                            "baseline/metrics.json"}, changed  # fmt: skip
    assert {k: v for k, v in after.items() if k.endswith(".jsonl")} == {
        k: v for k, v in before.items() if k.endswith(".jsonl")
    }
