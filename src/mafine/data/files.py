"""Problems from a local JSONL, JSON, CSV or parquet file, read through `datasets`.

`datasets.load_dataset(<format>, data_files=<path>, split="train")` reads the file, as the hub
loaders do, with a throw-away cache directory and `keep_in_memory=True` so that nothing is
written to the user's Hugging Face cache, and with progress bars and info logging silenced
for the duration of the call (their previous settings are restored). Local files never make
`datasets` touch the network.

Before that, the file is checked here so that errors name the file and, for JSON lines, the
line (`datasets` reports neither). Values are coerced to `str` and stripped; values stored as
Python bytes reprs (`"b'What is 2 + 3?\\n'"`, the format of DeepMind's hub copy) or as raw
bytes are decoded. CSV cells are read as exact strings ("007", "NA" and "" are not converted),
and JSON numbers in the question/answer/id columns keep their JSON spelling (5 stays "5" even
next to 2.5, where type inference would make it 5.0).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import json
import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mafine.data.registry import Record
from mafine.errors import MafineError
from mafine.jsonl import parse_objects
from mafine.seeds import split_rng

if TYPE_CHECKING:
    from mafine.data.settings import FileSource

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}

_BYTES_REPR = re.compile(r"b(['\"]).*\1", re.DOTALL)


def source_records(source: FileSource, seed: int) -> Iterator[Record]:
    """The `file` source kind's records: the file's rows in a seeded order."""
    rows = list(iter_file(source))
    split_rng(seed).shuffle(rows)
    yield from rows


def describe(source: FileSource) -> str:
    return str(source.path)


def iter_file(source: FileSource) -> Iterator[tuple[str | None, str, str]]:
    """(id or None, question, answer) rows from a local JSONL, CSV or parquet file via `datasets`.

    The whole file is read and checked on the call (errors are `MafineError`s naming the file,
    raised here, not mid-iteration); the rows are then yielded in file order.
    """
    path = Path(source.path)
    fields = {"question_field": source.question_field, "answer_field": source.answer_field}
    if source.id_field is not None:
        fields["id_field"] = source.id_field
    fmt = _check_file(path)
    features: dict[str, str] | None = None
    lines: list[int] | None = None
    if fmt == "json":
        records, lines = _read_json(path)
        _check_columns(path, fields, _union_keys(records))
        features = _json_features(records, set(fields.values()))
    elif fmt == "csv":
        header = _csv_header(path)
        _check_columns(path, fields, header)
        features = dict.fromkeys(header, "string")  # exact cells: "007" stays "007"
    else:
        _check_columns(path, fields, _parquet_columns(path))
    dataset = _load(path, fmt, features)
    if len(dataset) == 0:
        raise MafineError(f"{path}: the file has no rows")
    wanted = list(dict.fromkeys(fields.values()))
    rows = []
    for index, row in enumerate(dataset.select_columns(wanted)):
        where = f"line {lines[index]}" if lines is not None else f"row {index + 1}"
        values = {key: decode_value(row[name]) for key, name in fields.items()}
        for key, value in values.items():
            if not value:
                raise MafineError(f"{path}, {where}: empty {fields[key]!r} ({key})")
        rows.append((values.get("id_field"), values["question_field"], values["answer_field"]))
    return iter(rows)


def decode_value(value: Any) -> str:
    """A cell as stripped text; bytes and Python bytes reprs ("b'...'") decoded as UTF-8."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    text = str(value).strip()
    if _BYTES_REPR.fullmatch(text):
        try:
            raw = ast.literal_eval(text)
        except (SyntaxError, ValueError):
            return text
        if isinstance(raw, bytes):
            return raw.decode("utf-8", errors="replace").strip()
    return text


def _check_file(path: Path) -> str:
    if not path.exists():
        raise MafineError(f"data file not found: {path}")
    if not path.is_file():
        raise MafineError(f"data file is not a file: {path}")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MafineError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    if path.stat().st_size == 0:
        raise MafineError(f"{path}: the file is empty")
    return fmt


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MafineError(f"{path}, line {line}: not UTF-8 text") from None
    if not text.strip():
        raise MafineError(f"{path}: the file is empty")
    return text


def _read_json(path: Path) -> tuple[list[dict[str, Any]], list[int] | None]:
    """Parse JSON lines (or, for .json, a top-level list of objects); (records, line numbers)."""
    text = _read_text(path)
    if path.suffix.lower() == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None  # not one JSON document: JSON lines, checked below
        if isinstance(document, list):
            for index, item in enumerate(document):
                if not isinstance(item, dict):
                    raise MafineError(
                        f"{path}: item {index + 1} of the top-level list is not an object"
                    )
            if not document:
                raise MafineError(f"{path}: the file has no rows")
            return document, None
        if document is not None and len([s for s in text.splitlines() if s.strip()]) > 1:
            raise MafineError(
                f"{path}: expected JSON lines or a top-level list of objects, "
                f"got one {type(document).__name__}"
            )
    records, lines = [], []
    for number, record in parse_objects(text.splitlines(), path):
        records.append(record)
        lines.append(number)
    return records, lines


def _union_keys(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def _json_features(records: list[dict[str, Any]], text_columns: set[str]) -> dict[str, str] | None:
    """Explicit features when a text column holds JSON numbers, so they stay as written.

    Without them, type inference turns a column of 5 and 2.5 into floats ("5.0"). Returns None
    (plain inference) when no text column holds numbers or a column has no simple type.
    """
    kinds: dict[str, set[type]] = {}
    for record in records:
        for key, value in record.items():
            kinds.setdefault(key, set())
            if value is not None:
                kinds[key].add(type(value))
    numbers = {int, float}
    if not any(kinds.get(c, set()) & numbers for c in text_columns):
        return None
    features = {}
    for column, types in kinds.items():
        if column in text_columns and types <= numbers | {str}:
            if str in types and types & numbers:
                return None  # mixed strings and numbers: leave it to datasets
            dtype = "string"
        elif types <= {str} or not types:
            dtype = "string"
        elif types == {bool}:
            dtype = "bool"
        elif types <= numbers:
            dtype = "float64" if float in types else "int64"
        else:
            return None
        features[column] = dtype
    return features


def _csv_header(path: Path) -> list[str]:
    """The header row; the file must be UTF-8 and have at least one data row."""
    _read_text(path)  # empty / not UTF-8
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            rows = (row for row in reader if row)
            header = next(rows)
            if next(rows, None) is None:
                raise MafineError(f"{path}: the file has no rows (only a header)")
        except csv.Error as exc:
            raise MafineError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    return header


def _parquet_columns(path: Path) -> list[str]:
    """The column names from the parquet footer; the file must have at least one row."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        names = list(metadata.schema.to_arrow_schema().names)
    except Exception as exc:
        raise MafineError(f"{path}: not a readable parquet file ({_reason(exc)})") from None
    if metadata.num_rows == 0:
        raise MafineError(f"{path}: the file has no rows")
    return names


def _check_columns(path: Path, fields: dict[str, str], columns: list[str]) -> None:
    for key, name in fields.items():
        if name not in columns:
            raise MafineError(
                f"{path}: no column {name!r} (data.source.{key}); "
                f"the columns are: {', '.join(columns) or '(none)'}"
            )


def _load(path: Path, fmt: str, features: dict[str, str] | None) -> Any:
    """`datasets.load_dataset` on one local file: in memory, quiet, nothing cached."""
    import datasets
    from datasets.utils import logging as datasets_logging

    kwargs: dict[str, Any] = {}
    if features is not None:
        kwargs["features"] = datasets.Features(
            {name: datasets.Value(dtype) for name, dtype in features.items()}
        )
    if fmt == "csv":
        kwargs.update(keep_default_na=False, encoding="utf-8-sig")
    with _quiet(datasets_logging), tempfile.TemporaryDirectory(prefix="mafine-ds-") as cache:
        try:
            return datasets.load_dataset(
                fmt,
                data_files=str(path),
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
                **kwargs,
            )
        except Exception as exc:
            raise MafineError(f"{path}: cannot read it as {fmt}: {_reason(exc)}") from None


@contextlib.contextmanager
def _quiet(datasets_logging: Any) -> Iterator[None]:
    bars = datasets_logging.is_progress_bar_enabled()
    verbosity = datasets_logging.get_verbosity()
    datasets_logging.disable_progress_bar()
    datasets_logging.set_verbosity(logging.CRITICAL)  # our error replaces theirs
    try:
        yield
    finally:
        datasets_logging.set_verbosity(verbosity)
        if bars:
            datasets_logging.enable_progress_bar()


def _reason(exc: BaseException) -> str:
    """The innermost cause's message, first line (datasets wraps the useful one)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
