"""Regrading a finished run and grading files: other graders, zero requests."""

from __future__ import annotations

import json

from tests.conftest import write_config


def test_regrade_sends_nothing_and_names_its_grader(cli, tmp_path, traffic):
    config = write_config(tmp_path)
    assert cli("run", config).exit_code == 0
    root = tmp_path / "runs" / "exp"
    servers = len(traffic.servers)

    result = cli("evaluate", config, "--regrade", "--grader", "numeric")
    assert result.exit_code == 0, result.output
    assert len(traffic.servers) == servers  # no provider was even started
    regraded = json.loads((root / "regrade/numeric/metrics.json").read_text())
    assert regraded["header"]["grader"]["name"] == "numeric"
    assert "numeric" in (root / "regrade/numeric/report.md").read_text()

    same = cli("evaluate", config, "--regrade", "--grader", "string")
    assert same.exit_code == 0
    original = json.loads((root / "metrics.json").read_text())["methods"]
    again = json.loads((root / "regrade/string/metrics.json").read_text())["methods"]
    assert again == original  # the run's own grader reproduces its own results


def test_grader_needs_regrade(cli, config_path):
    result = cli("evaluate", config_path, "--grader", "numeric")
    assert result.exit_code == 2 and "--regrade" in result.stderr


def test_grade_a_response_file(cli, tmp_path):
    rows = [
        {"gold": "-2.4", "response": "so \\boxed{-12/5}"},
        {"gold": "7", "response": "I think \\boxed{8}"},
        {"gold": "3", "response": "no box here"},
    ]
    source = tmp_path / "responses.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "graded.jsonl"
    result = cli("grade", source, "--grader", "numeric", "--output", output)
    assert result.exit_code == 0, result.output
    assert "1/3" in result.output and "numeric" in result.output
    graded = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["correct"] for row in graded] == [True, False, False]
    assert graded[2]["answer"] is None and graded[0]["rule"] == "boxed"

    strict = cli("grade", source, "--grader", "string")
    assert "0/3" in strict.output


def test_grade_reports_a_corrupt_line(cli, tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"gold": "1", "response": "\\\\boxed{1}"}\n{"gold": \n')
    result = cli("grade", source)
    assert result.exit_code == 1
    assert str(source) in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.output
