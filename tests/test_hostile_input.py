"""Input taken silently and misleading words (issue 19, items 13-16): one test per class, each
over several members of its class. A refusal is one line, a non-zero exit, no traceback, and
the run directory as it was (tests/hostile.py)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mafine.config import MUTABLE_KEYS, Config, config_dict, load_config
from mafine.config_checks import dump_yaml, parse_yaml
from mafine.data.files import iter_file
from mafine.data.settings import FileSource
from tests.hostile import assert_refused, files, refused_unchanged, run_dir, small_config


def _with_line(config: Path, line: str) -> Path:
    """The config with one more top-level YAML line (its own key removed first)."""
    raw = yaml.safe_load(config.read_text())
    raw.pop(line.split(":", 1)[0])
    path = config.with_name(f"edited-{config.name}")
    path.write_text(yaml.safe_dump(raw, sort_keys=False) + line + "\n")
    return path


# 13. YAML numbers: the 1.2 core schema in files, --set values and sweep values -------------
YAML_12_NUMBERS = [  # (a line of the config file, the same as --set, the key, the value)
    ("seed: 010", "seed=010", "seed", 10),  # YAML 1.1: octal 8
    ("seed: 08", "seed=08", "seed", 8),  # YAML 1.1: a string
    ("seed: 0o17", "seed=0o17", "seed", 15),
    ("seed: 0x1F", "seed=0x1F", "seed", 31),
    ("seed: +5", "seed=+5", "seed", 5),
    ("seed: 1e3", "seed=1e3", "seed", 1000),  # YAML 1.1: a string
    ("seed: 1_000", "seed=1_000", "seed", 1000),  # YAML 1.2: the text "1_000", read as written
    ("sampling: {temperature: .5}", "sampling.temperature=.5", "sampling.temperature", 0.5),
    ("sampling: {temperature: 5e-1}", "sampling.temperature=5e-1", "sampling.temperature", 0.5),
    ("sampling: {temperature: 1.}", "sampling.temperature=1.", "sampling.temperature", 1.0),
    (
        "sampling: {max_output_tokens: 0x200}",
        "sampling.max_output_tokens=0x200",
        "sampling.max_output_tokens",
        512,
    ),
    ("agents: {count: 03, critics: 02}", "agents.critics=02", "agents.critics", 2),
]


def _value(config: Config, dotted: str) -> object:
    node: object = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(("line", "override", "key", "expected"), YAML_12_NUMBERS)
def test_numbers_in_a_config_file_and_in_set_follow_yaml_1_2(
    tmp_path, line, override, key, expected
):
    config = small_config(tmp_path)
    assert _value(load_config(_with_line(config, line)), key) == expected
    assert _value(load_config(config, [override]), key) == expected


@pytest.mark.parametrize(
    "value", ["1:30", "12:30:00", "0b101", "1 # a comment", "1\n2", "0x", "1,2", "[1]"]
)
def test_yaml_1_1_number_forms_and_folded_values_are_refused_naming_the_key(cli, tmp_path, value):
    config = small_config(tmp_path)
    assert_refused(cli("estimate", config, "--set", f"seed={value}"), "seed")
    if "\n" not in value and "#" not in value:
        assert_refused(cli("estimate", _with_line(config, f"seed: {value}")), "seed")


@pytest.mark.parametrize(
    "value",
    [
        "line one\nline two {question}",
        "Q {question} # not a comment",
        "Q: {question}",
        "1e3 {question}",
    ],
)
def test_a_set_value_for_text_is_taken_as_written(tmp_path, value):
    config = load_config(small_config(tmp_path), [f"prompts.question={value}"])
    assert config.prompts.question == value


def test_a_set_number_for_a_text_key_is_its_text(tmp_path):
    config = load_config(
        small_config(tmp_path), ["provider.gemini.project=0123456", "provider.model=1.10"]
    )
    assert (config.provider.gemini.project, config.provider.model) == ("0123456", "1.10")


@pytest.mark.parametrize(
    "text", ["seed: 1\nseed: 2\n", "data:\n  train_size: 6\n  train_size: 8\n"]
)
def test_a_key_given_twice_is_refused(cli, tmp_path, text):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    assert_refused(cli("estimate", path), "given twice", str(path), "line")


def test_sweep_values_are_read_like_set_values(tmp_path):
    from mafine.errors import MafineError
    from mafine.sweep import plan

    config = small_config(tmp_path)
    seeds = [point.config.seed for point in plan(config, seeds="8,010,0x10")]
    assert seeds == [8, 10, 16]
    temperatures = plan(config, ["sampling.temperature=.5,25e-2"])
    assert [p.config.sampling.temperature for p in temperatures] == [0.5, 0.25]
    with pytest.raises(MafineError, match="same config"):  # 010 and 1e1 both read 10
        plan(config, seeds="010,1e1")


@pytest.mark.parametrize(
    "text", ["1e3", "0o7", "010", "0x1F", "+1", ".5", "1:30", "yes", "on", "1_000", "~", "null", ""]
)
def test_stored_configs_read_alike_under_yaml_1_1_and_1_2(text):
    document = dump_yaml({"value": text})
    assert yaml.safe_load(document) == parse_yaml(document) == {"value": text}


# 14. Answers in a data file that are no text ------------------------------------------------
def _write_rows(path: Path, answers: list[object]) -> Path:
    rows = [{"question": f"What is {i}?", "answer": answer} for i, answer in enumerate(answers)]
    if path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


NO_TEXT = [([1, 2], "a list"), ({"a": 1}, "a mapping"), (True, "a yes/no"), (False, "a yes/no")]


@pytest.mark.parametrize(
    ("bad", "kind", "suffix"),
    [(bad, kind, suffix) for bad, kind in NO_TEXT for suffix in (".jsonl", ".json")]
    # a parquet column holds one type: a bool column is test_a_bool_parquet_column_is_refused
    + [(bad, kind, ".parquet") for bad, kind in NO_TEXT if not isinstance(bad, bool)],
)
def test_an_answer_that_is_no_text_is_refused_with_file_and_line(cli, tmp_path, bad, kind, suffix):
    data = _write_rows(
        tmp_path / f"data{suffix}", ["5", bad] if suffix != ".parquet" else [bad, bad]
    )
    config = small_config(tmp_path, data__source={"kind": "file", "path": str(data)})
    where = {".jsonl": "line 2", ".json": "row 2", ".parquet": "row 1"}[suffix]
    line = assert_refused(cli("prepare", config), str(data), where, "'answer'", kind)
    assert "[1, 2]" not in line and "{'a': 1}" not in line
    assert files(run_dir(config)) == {}


def test_a_bool_parquet_column_is_refused(tmp_path):
    from mafine.errors import MafineError

    data = _write_rows(tmp_path / "data.parquet", [True, False])
    with pytest.raises(MafineError, match=r"row 1: 'answer' .* is a yes/no"):
        iter_file(FileSource(kind="file", path=str(data)))


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_numbers_are_answers_as_written(tmp_path, suffix):
    written = ["0.1", "1e5", "1.10", "5", "-0.0", "12345678901234567890", "2.5E-3"]
    path = tmp_path / f"numbers{suffix}"
    rows = ",".join(f'{{"question": "q{i}", "answer": {n}}}' for i, n in enumerate(written))
    if suffix == ".json":
        path.write_text(f"[{rows}]")
    else:
        path.write_text(rows.replace("},{", "}\n{") + "\n")
    answers = [answer for _, _, answer in iter_file(FileSource(kind="file", path=str(path)))]
    assert answers == written


@pytest.mark.parametrize("gold", ["[1, 2]", '{"a": 1}', "true", "false"])
def test_a_gold_answer_that_is_no_text_is_refused_by_grade(cli, tmp_path, gold):
    path = tmp_path / "responses.jsonl"
    path.write_text(f'{{"gold": "5", "response": "5"}}\n{{"gold": {gold}, "response": "5"}}\n')
    assert_refused(cli("grade", path), str(path), "line 2", "'gold'")


# 15. Values that validation let through ----------------------------------------------------
def test_report_refuses_one_run_given_twice(cli, copy):
    root = run_dir(copy)
    link = root.parent / "link"
    link.symlink_to(root)
    for twice in (
        [root, root],
        [root, root / "metrics.json"],
        [root, link],
        [root, root / ".." / root.name],
    ):
        refused_unchanged(cli, root, "report", *twice, fragments=("same run",))


@pytest.mark.parametrize("option", ["--response-tokens", "--summary-tokens", "--thinking-tokens"])
@pytest.mark.parametrize("value", ["-1", "-300", "1.5", "abc", "1e3", "99999999999"])
def test_estimate_refuses_token_figures_of_the_wrong_sign_or_type(cli, tmp_path, option, value):
    assert_refused(cli("estimate", small_config(tmp_path), option, value), option)


@pytest.mark.parametrize(
    "override",
    [
        "provider.model=",
        "provider.model=   ",
        "provider.model=''",
        'provider.model=" "',
        "evaluation.embedder= ",
        "provider.gemini.project=",
        "provider.gemini.api_key_env=''",
        "prompts.question=",
    ],
)
def test_a_blank_text_value_is_refused_at_load(cli, tmp_path, override):
    key = override.split("=")[0]
    assert_refused(cli("estimate", small_config(tmp_path), "--set", override), key, "empty")


def test_a_blank_model_in_the_file_is_refused_at_load(cli, tmp_path):
    for model in ("", "   ", "\t"):
        config = small_config(tmp_path, provider__model=model)
        assert_refused(cli("run", config), "provider.model", "empty")
        assert not run_dir(config).exists()


@pytest.mark.parametrize(
    "command",
    [("debate",), ("debate", "--split", "eval"), ("build-sft",), ("finetune",), ("evaluate",)],
)
@pytest.mark.parametrize("iteration", ["-1", "-7", "2", "99"])
def test_every_iteration_option_is_checked_alike(cli, copy, command, iteration):
    root = run_dir(copy)
    line = refused_unchanged(cli, root, command[0], copy, *command[1:], "-i", iteration)
    assert "--iteration" in line or "'-i'" in line
    assert "missing artifact" not in line and "iter--" not in line


# 16. Misleading words ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "environment",
    [
        {"PYTHONIOENCODING": "ascii"},
        {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "latin-1"},
    ],
)
def test_a_stdout_that_is_not_utf8_still_prints(tmp_path, environment):
    config = small_config(
        tmp_path, "é", provider__fake={"models": ["modèle-ü-中"]}, provider__model="modèle-ü-中"
    )
    env = {**os.environ, **environment}
    done = subprocess.run(
        [sys.executable, "-m", "mafine", "estimate", str(config)],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr and done.stderr == b""
    assert b"estimate for mod" in done.stdout and b"?" in done.stdout


def test_an_os_error_without_a_file_blames_no_input(cli, tmp_path, monkeypatch):
    import mafine.estimate

    config = small_config(tmp_path)

    def no_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(mafine.estimate, "estimate", no_descriptors)
    line = assert_refused(cli("estimate", config), "too many open files")
    assert str(config) not in line and config.name not in line


def test_a_config_path_that_exists_is_never_not_found(cli, tmp_path):
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    cases = {
        folder: "is a directory",
        tmp_path / "dangling.yaml": "symlink",
        tmp_path / "loop.yaml": "symlink",
        Path("/dev/null"): "not a regular file",
    }
    for path, words in cases.items():
        line = assert_refused(cli("estimate", path), str(path), words)
        assert "not found" not in line
    line = assert_refused(cli("estimate", tmp_path / "a-file" / "x.yaml"), "not found")
    data = small_config(tmp_path, "data", data__source={"kind": "file", "path": str(folder)})
    assert "not found" not in assert_refused(cli("prepare", data), "is a directory")


@pytest.mark.parametrize("below", ["", "sub", "sub/deeper"])
def test_a_dangling_symlink_on_the_run_dir_is_named(cli, tmp_path, below):
    link = tmp_path / "runs-link"
    link.symlink_to(tmp_path / "nowhere")
    target = link / below if below else link
    config = small_config(tmp_path, run_dir=str(target))
    line = assert_refused(cli("prepare", config), "symlink", str(link))
    assert "already exists" not in line
    assert not (tmp_path / "nowhere").exists()


def test_a_failed_check_says_so_on_stderr(cli, tmp_path):
    config = small_config(tmp_path, provider__model="gemini-3.5-flash-retired")
    result = cli("check", config)
    assert result.exit_code == 1
    assert_refused(result, "check failed", "model")
    assert "FAIL" in result.stdout


PACE_VALUES = {
    "provider.gemini.api_key_env": "OTHER_KEY",
    "provider.gemini.tier": "none",
    "provider.gemini.batch_bucket": "gs://another-bucket",
    "provider.fake.fault_kinds": "[drop]",
}


def _changed(key: str, value: object) -> str:
    if key in PACE_VALUES:
        return PACE_VALUES[key]
    if isinstance(value, bool):
        return str(not value).lower()
    if value is None or isinstance(value, int):
        return str((value or 0) + 3)
    assert isinstance(value, float), key
    return str(value / 2 if value else 0.5)


def _keys(data: dict, prefix: str = "") -> list[str]:
    found = []
    for name, value in data.items():
        if isinstance(value, dict):
            found += _keys(value, f"{prefix}{name}.")
        else:
            found.append(prefix + name)
    return found


def test_every_key_that_only_paces_polling_is_mutable():
    polling = {key for key in _keys(config_dict(Config())) if "poll" in key.split(".")[-1]}
    assert "provider.fake.tuning_polls" in polling
    assert polling <= set(MUTABLE_KEYS)


def test_every_mutable_key_may_change_on_an_existing_run(cli, copy):
    root = run_dir(copy)
    defaults = config_dict(load_config(copy))
    for key in sorted(set(MUTABLE_KEYS) - {"run_dir", "iterations"}):
        node: object = defaults
        for part in key.split("."):
            node = node[part]  # type: ignore[index]
        result = cli("run", copy, "--set", f"{key}={_changed(key, node)}")
        assert result.exit_code == 0, (key, result.stderr)
        assert "another config" not in result.output, key
    assert (root / "metrics.json").is_file()


def test_a_long_sweep_point_gets_a_folder_name_it_can_have(cli, tmp_path):
    from mafine.sweep import plan

    config = small_config(tmp_path)
    long_prompt = "x" * 400 + " {question}"
    other = "y" * 400 + " {question}"
    points = plan(config, [f"prompts.question={long_prompt},{other}"])
    names = [point.run_dir.name for point in points]
    assert all(len(name) <= 200 for name in names) and len(set(names)) == 2
    for point in points:
        point.run_dir.mkdir(parents=True)  # the file system takes it
    result = cli("sweep", config, "--grid", f"prompts.question={long_prompt}", "--dry-run")
    assert result.exit_code == 0 and names[0] in result.stdout


@pytest.mark.parametrize(
    ("command", "maker"),
    [
        (("build-sft",), "mafine debate CONFIG -i 1 --split train"),
        (("finetune",), "mafine build-sft CONFIG -i 1"),
    ],
)
def test_a_missing_artifact_names_the_command_that_makes_it(cli, tmp_path, command, maker):
    config = small_config(tmp_path)
    assert cli("prepare", config).exit_code == 0
    root = run_dir(config)
    line = refused_unchanged(cli, root, *command, config, fragments=("missing artifact",))
    assert maker in line


@pytest.mark.parametrize(
    "damage",
    ["cut short", "a key dropped", "a wrong type", "an unknown key", "emptied", "an empty mapping"],
)
def test_a_damaged_stored_config_is_called_damaged(cli, copy, damage):
    root = run_dir(copy)
    path = root / "config.yaml"
    text = path.read_text()
    edits = {
        "cut short": text[:200],
        "a key dropped": "\n".join(row for row in text.splitlines() if not row.startswith("seed:")),
        "a wrong type": text.replace("seed: 0", "seed: zero"),
        "an unknown key": text + "bogus: 1\n",
        "emptied": "",
        "an empty mapping": "{}\n",
    }
    path.write_text(edits[damage])
    line = refused_unchanged(cli, root, "run", copy, fragments=("damaged", "config.yaml"))
    assert "another config" not in line and "delete it" in line


def test_a_failed_sweep_point_says_why(cli, tmp_path):
    config = small_config(tmp_path, provider__fake={"daily_quota": False})
    result = cli("sweep", config, "--grid", "provider.fake.daily_quota=true")
    line = assert_refused(result, "1 point(s) failed", "provider.fake.daily_quota=true")
    assert "GenerateRequestsPerDay" in line  # the point's own error


@pytest.mark.parametrize(
    "value", ["!!int 0b11", "!!int 1:30", "!!float abc", "!!int ''", "!!int -0o7"]
)
def test_an_explicit_number_tag_on_no_number_is_refused_with_its_line(cli, tmp_path, value):
    config = _with_line(small_config(tmp_path), f"seed: {value}")
    assert_refused(cli("estimate", config), str(config), "line", "not a YAML 1.2")


def test_a_report_input_is_named_as_what_it_is(cli, tmp_path):
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("not json\n")
    cases = {
        tmp_path / "gone": "symlink",
        Path("/dev/null"): "not a regular file",
        tmp_path / "notes.txt": "no metrics document",
    }
    for path, words in cases.items():
        assert_refused(cli("report", path), str(path), words)


@pytest.mark.parametrize(
    "model", [" gemini-3.1-flash-lite", "gemini-3.1-flash-lite ", "a\tb", "?", "a&b", "../m", "m#1"]
)
def test_a_model_name_no_request_could_carry_is_refused_at_load(cli, tmp_path, model):
    config = small_config(tmp_path, provider__model=model)
    assert_refused(cli("run", config), "provider.model")
    assert not run_dir(config).exists()


@pytest.mark.parametrize(
    "row",
    [
        '{"question": "q", "answer": "1", "answer": "2"}',
        '{"question": "a", "question": "b", "answer": "1"}',
    ],
)
def test_a_data_row_that_gives_a_key_twice_is_refused(tmp_path, row):
    from mafine.errors import MafineError

    path = tmp_path / "twice.jsonl"
    path.write_text('{"question": "q0", "answer": "0"}\n' + row + "\n")
    with pytest.raises(MafineError, match=r"line 2: .*given twice"):
        iter_file(FileSource(kind="file", path=str(path)))


@pytest.mark.parametrize("value", ["010", "1.10", "2024", "1e3"])
def test_a_run_dir_yaml_reads_as_a_number_is_refused_not_renamed(cli, tmp_path, value):
    config = _with_line(small_config(tmp_path), f"run_dir: {value}")
    assert_refused(cli("prepare", config), "run_dir", "quote")
    assert not (Path.cwd() / str(yaml.safe_load(value))).exists()
    # given with --set, the text is kept as written
    assert str(load_config(config, [f"run_dir={value}"]).run_dir) == value
