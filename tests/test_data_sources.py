"""Problem sources: DeepMind's generator (deterministic, hash-independent) and local files."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest

from mafine.config import FileSource
from mafine.data.deepmind import iter_deepmind, needs_numpy_1
from mafine.data.files import decode_value, iter_file
from mafine.errors import MafineError

SOURCES = Path(__file__).resolve().parent / "data" / "sources"

# Modules covering each way output could depend on the process: variable letters picked
# from a set of strings (algebra, polynomials), sympy's own OS-seeded generator (is_prime),
# and plain arithmetic.
HASH_MODULES = [
    ("arithmetic__add_or_sub", "interpolate"),
    ("arithmetic__mixed", "hard"),
    ("algebra__linear_2d", "easy"),
    ("polynomials__evaluate", "medium"),
    ("numbers__is_prime", "easy"),
]

SAMPLE_SCRIPT = """
import json, sys
from itertools import islice
from mafine.data.deepmind import iter_deepmind
modules = json.loads(sys.argv[1])
print(json.dumps({f"{m}/{d}": list(islice(iter_deepmind(m, d, 3), 8)) for m, d in modules}))
"""


def take(module: str, difficulty: str, seed: int, n: int = 20) -> list[tuple[str, str]]:
    return list(islice(iter_deepmind(module, difficulty, seed), n))


# --- DeepMind generator ------------------------------------------------------------------


def test_same_seed_same_problems_and_other_seed_differs() -> None:
    first = take("arithmetic__add_or_sub", "interpolate", 0)
    assert first == take("arithmetic__add_or_sub", "interpolate", 0)
    assert first != take("arithmetic__add_or_sub", "interpolate", 1)
    assert len(set(first)) == len(first)
    for question, answer in first:
        assert question and answer
        assert question == question.strip() and answer == answer.strip()
        assert "?" in question or question.endswith(".")


def test_streams_keep_their_own_random_state() -> None:
    """Interleaved streams give what they give alone; the caller's generators are untouched."""
    import numpy as np

    alone_a = take("arithmetic__add_or_sub", "easy", 5, 10)
    alone_b = take("algebra__linear_1d", "easy", 5, 10)
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    a = iter_deepmind("arithmetic__add_or_sub", "easy", 5)
    b = iter_deepmind("algebra__linear_1d", "easy", 5)
    mixed_a, mixed_b = [], []
    for _ in range(10):
        mixed_a.append(next(a))
        mixed_b.append(next(b))
    assert (random.random(), np.random.random()) == expected
    assert (mixed_a, mixed_b) == (alone_a, alone_b)


def test_output_does_not_depend_on_pythonhashseed() -> None:
    """Two subprocesses with different hash seeds and this process agree, module by module."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    arg = json.dumps(HASH_MODULES)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SAMPLE_SCRIPT, arg],
            env={**env, "PYTHONHASHSEED": hash_seed},
            stdout=subprocess.PIPE,
            text=True,
        )
        for hash_seed in ("1", "2")
    ]
    here = {f"{m}/{d}": [list(p) for p in take(m, d, 3, 8)] for m, d in HASH_MODULES}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert json.loads(out) == here


def test_difficulty_changes_the_problems() -> None:
    by_difficulty = {
        d: take("arithmetic__add_or_sub", d, 0) for d in ("easy", "medium", "hard", "interpolate")
    }
    assert len({tuple(p) for p in by_difficulty.values()}) == 4
    extrapolate = take("arithmetic__add_or_sub_big", "extrapolate", 0)
    assert extrapolate and extrapolate != by_difficulty["interpolate"]

    def digits(problems: list[tuple[str, str]]) -> float:
        return sum(len(a.lstrip("-")) for _, a in problems) / len(problems)

    assert digits(by_difficulty["easy"]) < digits(by_difficulty["hard"])


def test_unknown_module_suggests_the_closest() -> None:
    with pytest.raises(MafineError, match=r"closest: arithmetic__add_or_sub\b") as err:
        iter_deepmind("arithmetic__ad_or_sub", "easy", 0)
    assert "\n" not in str(err.value)
    with pytest.raises(MafineError, match=r"no 'extrapolate' variant.*arithmetic__add_or_sub_big"):
        iter_deepmind("arithmetic__add_or_sub", "extrapolate", 0)
    with pytest.raises(MafineError, match="valid modules: algebra__linear_1d"):
        iter_deepmind("zzz", "interpolate", 0)
    with pytest.raises(MafineError, match="unknown DeepMind difficulty 'trivial'"):
        iter_deepmind("arithmetic__add_or_sub", "trivial", 0)


def test_numpy2_incompatible_modules_are_refused_in_one_line() -> None:
    import numpy as np

    assert needs_numpy_1("polynomials__expand") and needs_numpy_1("numbers__gcd_composed")
    assert not needs_numpy_1("arithmetic__add_or_sub")
    if hasattr(np.ndarray, "itemset"):
        pytest.skip("numpy < 2: these modules work")
    for module in ("polynomials__expand", "numbers__gcd_composed", "calculus__differentiate"):
        with pytest.raises(MafineError, match=f"^DeepMind module {module} needs numpy<2") as err:
            iter_deepmind(module, "interpolate", 0)
        assert "\n" not in str(err.value)


def test_imports_are_lazy_and_files_leave_the_hf_cache_alone(tmp_path: Path) -> None:
    script = f"""
import sys
import mafine.data.deepmind, mafine.data.files
heavy = ("sympy", "numpy", "mathematics_dataset", "datasets", "pyarrow")
print(",".join(m for m in heavy if m in sys.modules))
from mafine.config import FileSource
rows = list(mafine.data.files.iter_file(FileSource(path={str(SOURCES / "problems.jsonl")!r})))
assert len(rows) == 3
"""
    hf_home = tmp_path / "hf"
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_DATASETS_CACHE": str(hf_home / "ds")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr == ""  # no progress bars
    assert not hf_home.exists()


# --- local files ---------------------------------------------------------------------------


def test_jsonl_rows_stripped_and_bytes_reprs_decoded() -> None:
    rows = list(iter_file(FileSource(path=SOURCES / "problems.jsonl", id_field="id")))
    assert rows == [
        ("p1", "What is 2 + 3?", "5"),
        ("p2", "Solve 4*x = 8 for x.", "2"),
        ("p3", "What is -1 + 1?", "0"),
    ]
    without_ids = list(iter_file(FileSource(path=SOURCES / "problems.jsonl")))
    assert [row[0] for row in without_ids] == [None, None, None]


def test_jsonl_numbers_keep_their_spelling() -> None:
    rows = list(iter_file(FileSource(path=SOURCES / "numbers.jsonl", id_field="id")))
    assert rows == [("7", "What is 10 / 4?", "2.5"), ("8", "What is 2 + 3?", "5")]


def test_csv_cells_are_exact_strings() -> None:
    source = FileSource(
        path=SOURCES / "problems.csv",
        question_field="problem",
        answer_field="solution",
        id_field="id",
    )
    assert list(iter_file(source)) == [
        ("001", "What is 3 + 4, in total?", "7"),
        ("002", "What is 0.50 + 0.25?", "0.75"),
        ("003", "Is NA a number?", "NA"),
    ]


def test_parquet_in_the_hub_format(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    table = pa.table(
        {
            "question": ["b'What is 2 + 3?\\n'", "b'Let x = 1. What is x?\\n'"],
            "answer": ["b'5\\n'", "b'1\\n'"],
            "raw": [b"first\n", b"second\n"],
            "n": [1, 2],
        }
    )
    pq.write_table(table, path)
    assert list(iter_file(FileSource(path=path, id_field="n"))) == [
        ("1", "What is 2 + 3?", "5"),
        ("2", "Let x = 1. What is x?", "1"),
    ]
    assert [row[2] for row in iter_file(FileSource(path=path, answer_field="raw"))] == [
        "first",
        "second",
    ]


def test_json_list_of_objects(tmp_path: Path) -> None:
    path = tmp_path / "problems.json"
    path.write_text(
        json.dumps([{"question": "Q1?", "answer": "1"}, {"question": "Q2?", "answer": "2"}])
    )
    assert list(iter_file(FileSource(path=path))) == [(None, "Q1?", "1"), (None, "Q2?", "2")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("b'What is 2 + 3?\\n'", "What is 2 + 3?"),
        ('b"It\'s 4\\n"', "It's 4"),
        ("b'\\xc3\\xa9t\\xc3\\xa9'", "été"),
        (b"raw bytes\n", "raw bytes"),
        ("bob'", "bob'"),
        ("b'unterminated", "b'unterminated"),
        (12, "12"),
        ("  plain  ", "plain"),
    ],
)
def test_decode_value(text: object, expected: str) -> None:
    assert decode_value(text) == expected


def test_loading_is_quiet_and_restores_datasets_settings(capfd: pytest.CaptureFixture[str]) -> None:
    from datasets.utils import logging as datasets_logging

    bars = datasets_logging.is_progress_bar_enabled()
    verbosity = datasets_logging.get_verbosity()
    list(iter_file(FileSource(path=SOURCES / "numbers.jsonl")))
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert datasets_logging.is_progress_bar_enabled() == bars
    assert datasets_logging.get_verbosity() == verbosity


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "fields", "message"),
    [
        (
            "p.txt",
            "hello",
            {},
            r"unsupported file type '\.txt'; use one of \.jsonl, \.json, \.csv, \.parquet",
        ),
        ("p", "hello", {}, r"unsupported file type '\(no extension\)'"),
        ("p.jsonl", "", {}, r"the file is empty$"),
        ("p.jsonl", "\n  \n", {}, r"the file is empty$"),
        ("p.csv", "", {}, r"the file is empty$"),
        ("p.json", "[]", {}, r"the file has no rows$"),
        ("p.csv", "question,answer\n", {}, r"the file has no rows \(only a header\)$"),
        (
            "p.jsonl",
            '{"question": "a", "answer": "1"}\n{"question": "b", "answer": "2"}\n'
            '{"question": "c", "answ\n',
            {},
            r", line 3: not valid JSON \(Unterminated string",
        ),
        (
            "p.jsonl",
            '{"question": "a", "answer": "1"}\n[1, 2]\n',
            {},
            r", line 2: expected a JSON object, got list",
        ),
        (
            "p.jsonl",
            b'{"question": "a", "answer": "1"}\n{"question": "\xff"}\n',
            {},
            r", line 2: not UTF-8 text",
        ),
        (
            "p.json",
            '{"question": "a",\n "answer": "1"}\n',
            {},
            r"expected JSON lines or a top-level list",
        ),
        (
            "p.json",
            '[{"question": "a", "answer": "1"}, 3]',
            {},
            r"item 2 of the top-level list is not an object",
        ),
        (
            "p.jsonl",
            '{"question": "a", "solution": "1"}\n',
            {},
            r"no column 'answer' \(data\.source\.answer_field\); "
            r"the columns are: question, solution",
        ),
        (
            "p.csv",
            "problem,answer\nq,1\n",
            {},
            r"no column 'question' \(data\.source\.question_field\); "
            r"the columns are: problem, answer",
        ),
        (
            "p.jsonl",
            '{"question": "a", "answer": "1"}\n',
            {"id_field": "uid"},
            r"no column 'uid' \(data\.source\.id_field\)",
        ),
        (
            "p.jsonl",
            '{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": "  "}\n',
            {},
            r", line 3: empty 'answer' \(answer_field\)",
        ),
        (
            "p.jsonl",
            '{"question": "a", "answer": "1"}\n{"answer": "2"}\n',
            {},
            r", line 2: empty 'question'",
        ),
        ("p.csv", "question,answer\nq,1\nr,\n", {}, r", row 2: empty 'answer'"),
        ("p.parquet", b"not parquet at all", {}, r"not a readable parquet file \(.*magic bytes"),
    ],
)
def test_file_errors_are_one_line_and_name_the_file(
    tmp_path: Path, name: str, content: str | bytes, fields: dict[str, str], message: str
) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(MafineError, match=message) as err:
        iter_file(FileSource(path=path, **fields))
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(MafineError, match=r"^data file not found: .*nowhere\.jsonl$"):
        iter_file(FileSource(path=SOURCES / "nowhere.jsonl"))


def test_parquet_missing_column_and_no_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"problem": ["q"], "answer": ["1"]}), path)
    with pytest.raises(
        MafineError, match=r"no column 'question'.*the columns are: problem, answer"
    ):
        iter_file(FileSource(path=path))
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"question": pa.array([], pa.string())}), empty)
    with pytest.raises(MafineError, match=r"empty\.parquet: the file has no rows$"):
        iter_file(FileSource(path=empty, answer_field="question"))
