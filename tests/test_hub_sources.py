"""Hub data sets (DeepMind, MATH, MATH-500, GSM8K) read offline from small local copies laid out
like the hub's, through the same loading and parsing code as the hub route; the hub route itself
with `datasets.load_dataset` stubbed (no test touches the network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mafine.artifacts import Problem
from mafine.config import HubSource, load_config
from mafine.data.hub import gsm8k_answer, parse_level, seeded_order, source_records
from mafine.errors import MafineError
from mafine.jsonl import read_rows
from mafine.stages.prepare import source_name
from tests.conftest import write_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def source(**fields: Any) -> HubSource:
    return HubSource.model_validate(fields)


def records(src: HubSource, seed: int = 0) -> list[tuple[str | None, str, str]]:
    return list(source_records(src, seed))


def one_line(exc: pytest.ExceptionInfo[MafineError]) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


# --- fixtures laid out like the hub repositories ------------------------------------------


def deepmind_copy(root: Path) -> Path:
    """deepmind/math_dataset: <module>/<split>-0000N-of-0000M.parquet, bytes-repr strings."""
    module = root / "arithmetic__add_or_sub"
    test = [{"question": f"b'What is {i} + 3?\\n'", "answer": f"b'{i + 3}\\n'"} for i in range(6)]
    write_parquet(module / "test-00000-of-00001.parquet", test)
    train = [{"question": f"b'Add {i} and 1.\\n'", "answer": f"b'{i + 1}\\n'"} for i in range(8)]
    write_parquet(module / "train-00000-of-00002.parquet", train[:5])
    write_parquet(module / "train-00001-of-00002.parquet", train[5:])
    return root


MATH_ROWS = {
    "algebra": [
        ("Solve $x+1=2$.", "So $x=\\boxed{1}$.", "Level 1"),
        ("Compute $1/2$.", "It is $\\boxed{\\frac{1}{2}}$.", "Level 2"),
        ("Find the set.", "First \\boxed{3}, then $\\boxed{\\{1, \\frac{2}{3}\\}}$.", "Level 3"),
        ("Hard one.", "Answer: $\\boxed{\\sqrt{\\frac{a}{b}}}$", "Level 5"),
        ("Unleveled.", "$\\boxed{7}$", "Level ?"),
        ("No box here.", "The answer is 4.", "Level 1"),
    ],
    "geometry": [
        ("Area of a unit square?", "$\\boxed{1}$", "Level 1"),
        ("Angle sum of a triangle?", "$\\boxed{180^\\circ}$", "Level 4"),
    ],
}
TYPES = {"algebra": "Algebra", "geometry": "Geometry"}


def math_copy(root: Path) -> Path:
    """EleutherAI/hendrycks_math: <subject>/<split>-00000-of-00001.parquet."""
    for subject, rows in MATH_ROWS.items():
        write_parquet(
            root / subject / "train-00000-of-00001.parquet",
            [
                {"problem": p, "level": lv, "type": TYPES[subject], "solution": s}
                for p, s, lv in rows
            ],
        )
    return root


def gsm8k_copy(root: Path, rows: list[dict[str, str]] | None = None) -> Path:
    """openai/gsm8k: main/<split>-00000-of-00001.parquet."""
    rows = rows or [
        {"question": "Tom has 2 apples and buys 3. How many?", "answer": "2+3=<<2+3=5>>5\n#### 5"},
        {"question": "A car costs $1,234 more than $1. Price?", "answer": "...\n####  1,235 "},
        {"question": "Half of 9?", "answer": "9/2 = 4.5\n#### 4.5"},
    ]
    write_parquet(root / "main" / "test-00000-of-00001.parquet", rows)
    return root


def math500_copy(root: Path) -> Path:
    """HuggingFaceH4/MATH-500: test.jsonl with answer, subject, level (int) and unique_id."""
    rows = [
        ("Count it.", "10", "Counting & Probability", 2, "test/counting_and_probability/1.json"),
        ("Roots?", "\\frac{1}{2}", "Intermediate Algebra", 4, "test/intermediate_algebra/9.json"),
        ("Sum?", "5", "Algebra", 1, "test/algebra/3.json"),
    ]
    write_jsonl(
        root / "test.jsonl",
        [
            {
                "problem": p,
                "solution": "...",
                "answer": a,
                "subject": s,
                "level": lv,
                "unique_id": u,
            }
            for p, a, s, lv, u in rows
        ],
    )
    return root


# --- DeepMind ------------------------------------------------------------------------------


def test_deepmind_bytes_reprs_are_decoded_with_stable_ids(tmp_path):
    src = source(dataset="deepmind", module="arithmetic__add_or_sub", path=deepmind_copy(tmp_path))
    rows = records(src)
    assert sorted(rows) == sorted(
        (f"deepmind/arithmetic__add_or_sub/test/{i}", f"What is {i} + 3?", str(i + 3))
        for i in range(6)
    )
    assert rows == records(src)  # same seed, same order
    assert rows != records(src, seed=1) and sorted(rows) == sorted(records(src, seed=1))


def test_deepmind_train_split_reads_every_shard(tmp_path):
    src = source(
        dataset="deepmind",
        module="arithmetic__add_or_sub",
        split="train",
        path=deepmind_copy(tmp_path),
    )
    rows = dict((r[0], r[1:]) for r in records(src))
    assert len(rows) == 8
    assert rows["deepmind/arithmetic__add_or_sub/train/7"] == ("Add 7 and 1.", "8")


def test_deepmind_hub_route_falls_back_to_the_parquet_export(monkeypatch):
    """When the hub copy is still a loading script, the parquet export is read instead."""
    import datasets

    calls: list[tuple[tuple, dict]] = []

    def load_dataset(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        if len(calls) == 1:
            raise RuntimeError("Dataset scripts are no longer supported, but found math_dataset.py")
        return datasets.Dataset.from_dict({"question": ["b'1 + 1?\\n'"], "answer": ["b'2\\n'"]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    src = source(dataset="deepmind", module="algebra__linear_1d", split="train")
    assert records(src) == [("deepmind/algebra__linear_1d/train/0", "1 + 1?", "2")]
    assert calls[0] == (("deepmind/math_dataset", "algebra__linear_1d"), {"split": "train"})
    assert calls[1] == (
        ("deepmind/math_dataset",),
        {
            "revision": "refs/convert/parquet",
            "data_files": {"train": "algebra__linear_1d/train/*.parquet"},
            "split": "train",
        },
    )


# --- MATH ----------------------------------------------------------------------------------


def test_math_answers_are_the_last_box_with_nested_braces(tmp_path):
    rows = {
        r[0]: r[1:]
        for r in records(source(dataset="math", split="train", path=math_copy(tmp_path)))
    }
    assert rows["math/algebra/train/0"] == ("Solve $x+1=2$.", "1")
    assert rows["math/algebra/train/1"][1] == "\\frac{1}{2}"
    assert rows["math/algebra/train/2"][1] == "\\{1, \\frac{2}{3}\\}"  # last box, escaped braces
    assert rows["math/algebra/train/3"][1] == "\\sqrt{\\frac{a}{b}}"
    assert rows["math/geometry/train/1"][1] == "180^\\circ"
    assert "math/algebra/train/5" not in rows  # no \boxed{}: cannot be graded, skipped
    assert len(rows) == 7


def test_math_level_and_subject_filters_keep_ids(tmp_path):
    root = math_copy(tmp_path)
    low = records(source(dataset="math", split="train", levels=[1, 2, 3], path=root))
    assert sorted(r[0] for r in low) == [
        "math/algebra/train/0",
        "math/algebra/train/1",
        "math/algebra/train/2",
        "math/geometry/train/0",
    ]  # "Level ?" is no level; ids count rows before filtering
    geometry = records(source(dataset="math", split="train", subjects=["geometry"], path=root))
    assert sorted(r[0] for r in geometry) == ["math/geometry/train/0", "math/geometry/train/1"]


def test_math_from_one_file_uses_the_type_column(tmp_path):
    """A single export of all subjects: subjects come from `type`, indices per subject."""
    rows = [
        {"problem": p, "level": lv, "type": TYPES[subject], "solution": s}
        for subject, items in MATH_ROWS.items()
        for p, s, lv in items
    ]
    path = write_jsonl(tmp_path / "math-train.jsonl", rows)
    from_file = records(source(dataset="math", split="train", path=path, levels=[1, 4]))
    from_dirs = records(
        source(dataset="math", split="train", path=math_copy(tmp_path / "d"), levels=[1, 4])
    )
    assert sorted(from_file) == sorted(from_dirs)
    geometry = records(source(dataset="math", split="train", path=path, subjects=["geometry"]))
    assert {r[0] for r in geometry} == {"math/geometry/train/0", "math/geometry/train/1"}


def test_math_hub_route_loads_one_config_per_subject(monkeypatch):
    import datasets

    calls = []

    def load_dataset(repo: str, config: str, **kwargs: Any) -> Any:
        calls.append((repo, config, kwargs))
        rows = [
            dict(problem=p, level=lv, type=TYPES[config], solution=s)
            for p, s, lv in MATH_ROWS[config]
        ]
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    src = source(dataset="math", subjects=["geometry", "algebra"], levels=[4], revision="abc")
    assert {r[0] for r in records(src)} == {"math/geometry/test/1"}
    assert calls == [
        ("EleutherAI/hendrycks_math", "geometry", {"split": "test", "revision": "abc"}),
        ("EleutherAI/hendrycks_math", "algebra", {"split": "test", "revision": "abc"}),
    ]


def test_math500_uses_its_answer_field_and_unique_ids(tmp_path):
    root = math500_copy(tmp_path)
    rows = {r[0]: r[1:] for r in records(source(dataset="math500", path=root))}
    assert rows == {
        "math500/test/counting_and_probability/1.json": ("Count it.", "10"),
        "math500/test/intermediate_algebra/9.json": ("Roots?", "\\frac{1}{2}"),
        "math500/test/algebra/3.json": ("Sum?", "5"),
    }
    picked = records(
        source(
            dataset="math500",
            path=root,
            subjects=["counting_and_probability", "algebra"],
            levels=[2],
        )
    )
    assert [r[0] for r in picked] == ["math500/test/counting_and_probability/1.json"]


def test_levels_parse_from_every_spelling():
    assert [parse_level(v) for v in ("Level 3", "3", 4, "Level ?", None)] == [3, 3, 4, None, None]


# --- GSM8K ---------------------------------------------------------------------------------


def test_gsm8k_answer_follows_the_last_marker_as_written(tmp_path):
    rows = records(source(dataset="gsm8k", path=gsm8k_copy(tmp_path)))
    assert sorted(rows) == [
        ("gsm8k/test/0", "Tom has 2 apples and buys 3. How many?", "5"),
        ("gsm8k/test/1", "A car costs $1,234 more than $1. Price?", "1,235"),
        ("gsm8k/test/2", "Half of 9?", "4.5"),
    ]
    assert gsm8k_answer("a #### b\n#### -7 ") == "-7"
    assert gsm8k_answer("no marker") is None


def test_gsm8k_without_marker_is_a_one_line_error(tmp_path):
    root = gsm8k_copy(tmp_path, [{"question": "Q?", "answer": "It is 5."}])
    with pytest.raises(MafineError) as exc:
        records(source(dataset="gsm8k", path=root))
    assert "row 1: the answer has no '####' line" in one_line(exc)


# --- errors --------------------------------------------------------------------------------


def test_missing_field_names_the_column(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [{"question": "Q?", "solution": "#### 1"}])
    with pytest.raises(MafineError) as exc:
        records(source(dataset="gsm8k", path=path))
    message = one_line(exc)
    assert message.startswith("gsm8k (") and "no column 'answer'" in message
    assert "the columns are: question, solution" in message


def test_no_rows_after_filters(tmp_path):
    with pytest.raises(MafineError) as exc:
        records(
            source(
                dataset="math",
                split="train",
                path=math_copy(tmp_path),
                subjects=["geometry"],
                levels=[5],
            )
        )
    assert "no problems after the filters (subjects geometry; levels 5); 2 rows read" in one_line(
        exc
    )


def test_local_copy_errors(tmp_path):
    with pytest.raises(MafineError, match="local copy not found"):
        records(source(dataset="gsm8k", path=tmp_path / "missing"))
    with pytest.raises(MafineError) as exc:
        records(source(dataset="gsm8k", split="train", path=gsm8k_copy(tmp_path)))
    assert "no 'train' data files" in one_line(exc)
    math_copy(tmp_path / "m")
    with pytest.raises(MafineError) as exc:
        records(
            source(dataset="math", split="train", path=tmp_path / "m", subjects=["precalculus"])
        )
    assert "no directory 'precalculus'" in one_line(exc)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("data.source.subjects=[algbra]", "unknown MATH subject 'algbra'"),
        ("data.source.levels=[1, 6]", "unknown MATH level 6"),
        ("data.eval_source.module=arithmetic__mul", "module is for dataset deepmind only"),
        ("data.eval_source.levels=[1]", "levels is for datasets math and math500 only"),
        ("data.source.dataset=deepmind", "dataset deepmind needs a module"),
        ("data.eval_source.dataset=math500", None),  # math500 has a test split: fine
        ("data.eval_source={kind: hub, dataset: math500, split: train}", "no split 'train'"),
        ("data.source.dataset=mnist", "data.source.dataset"),
        ("data.source.colour=red", "data.source.colour: unknown key"),
    ],
)
def test_config_errors_are_one_line(change, fragment):
    path = CONFIGS / "math-to-gsm8k.yaml"
    if fragment is None:
        load_config(path, [change])
        return
    with pytest.raises(MafineError) as exc:
        load_config(path, [change])
    assert fragment in one_line(exc)


def test_unreachable_hub_says_network_or_local_copy(monkeypatch):
    import datasets

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(MafineError) as exc:
        records(source(dataset="gsm8k"))
    message = one_line(exc)
    assert message.startswith("gsm8k (openai/gsm8k, test): cannot reach the Hugging Face hub")
    assert "network" in message and "data.source.path" in message


def test_offline_mode_really_gives_that_error(tmp_path):
    """`datasets` itself in offline mode with an empty cache (it sends no request)."""
    script = (
        "from mafine.config import HubSource\n"
        "from mafine.data.hub import source_records\n"
        "from mafine.errors import MafineError\n"
        "try:\n"
        "    source_records(HubSource(dataset='gsm8k'), 0)\n"
        "except MafineError as exc:\n"
        "    print(exc)\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and "needs network access" in lines[0], out.stdout + out.stderr


def test_other_hub_errors_are_one_line(monkeypatch):
    import datasets

    def bad_config(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("BuilderConfig 'nope' not found.\nAvailable: ['main', 'socratic']")

    monkeypatch.setattr(datasets, "load_dataset", bad_config)
    with pytest.raises(MafineError) as exc:
        records(source(dataset="deepmind", module="nope"))
    assert "cannot load deepmind/math_dataset config 'nope' split 'test'" in one_line(exc)


# --- names, order, zero-shot ---------------------------------------------------------------


def test_source_names():
    assert source_name(source(dataset="math", split="train", levels=[3, 1, 2])) == (
        "math (EleutherAI/hendrycks_math, train, levels 1,2,3)"
    )
    assert source_name(source(dataset="deepmind", module="arithmetic__mul", revision="v1")) == (
        "deepmind/arithmetic__mul (deepmind/math_dataset@v1, test)"
    )


def test_seeded_order_is_a_permutation():
    for count in (0, 1, 7, 100):
        assert sorted(seeded_order(count, 3)) == list(range(count))
    assert list(seeded_order(50, 0)) == list(seeded_order(50, 0)) != list(seeded_order(50, 1))


def test_zero_shot_prepare_draws_eval_from_the_second_data_set(cli, tmp_path):
    math_rows = [
        {
            "problem": f"What is {i} squared?",
            "level": f"Level {1 + i % 4}",
            "type": "Algebra",
            "solution": f"It is $\\boxed{{{i * i}}}$.",
        }
        for i in range(30)
    ]
    write_parquet(tmp_path / "math" / "algebra" / "train-00000-of-00001.parquet", math_rows)
    gsm_rows = [
        {"question": f"Sam has {i} pens and gets 2 more. How many?", "answer": f"...\n#### {i + 2}"}
        for i in range(10)
    ]
    gsm8k_copy(tmp_path / "gsm8k", gsm_rows)
    config = write_config(
        tmp_path,
        data__source={
            "kind": "hub",
            "dataset": "math",
            "split": "train",
            "levels": [1, 2, 3],
            "path": str(tmp_path / "math"),
        },
        data__eval_source={"kind": "hub", "dataset": "gsm8k", "path": str(tmp_path / "gsm8k")},
    )
    result = cli("prepare", config)
    assert result.exit_code == 0, result.output
    root = tmp_path / "runs" / "exp" / "problems"
    train = list(read_rows(root / "train.jsonl", Problem))
    evaluation = list(read_rows(root / "eval.jsonl", Problem))
    assert (len(train), len(evaluation)) == (12, 6)
    assert all(p.id.startswith("gsm8k/test/") and "pens" in p.question for p in evaluation)
    assert all(p.source.startswith("gsm8k (") for p in evaluation)
    assert all(p.id.startswith("math/algebra/train/") for p in train)
    assert all(p.source.startswith("math (") and "levels 1,2,3" in p.source for p in train)
    by_question = {row["problem"]: row for row in math_rows}
    for problem in train:
        row = by_question[problem.question]
        assert row["level"] != "Level 4"
        assert problem.answer == str(int(problem.question.split()[2]) ** 2)
    assert {p.answer for p in evaluation} <= {str(i + 2) for i in range(10)}


def test_transfer_config_validates():
    config = load_config(CONFIGS / "math-to-gsm8k.yaml")
    assert (config.data.source.dataset, config.data.source.split) == ("math", "train")
    assert config.data.source.levels == [1, 2, 3]
    assert (config.data.eval_source.dataset, config.data.eval_source.split) == ("gsm8k", "test")
    assert config.grading.grader == "auto"
