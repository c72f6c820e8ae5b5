"""Problems from a local JSONL, JSON, CSV or parquet file.

CSV and parquet are read through `datasets`, as the hub loaders are:
`datasets.load_dataset(<format>, data_files=<path>, split="train")`, with a throw-away cache
directory and `keep_in_memory=True` so that nothing is written to the user's Hugging Face
cache, and with progress bars and info logging silenced for the duration of the call (their
previous settings are restored). Local files never make `datasets` touch the network.

JSON and JSON lines are parsed here (with `json`), so errors name the file and, for JSON lines,
the line, and a number keeps the text it was written as (`0.1`, `1e5`, `1.10` and
`12345678901234567890` stay exactly that; type inference would print 1e5 as 100000.0). A value
that is no text and no number (a list, a mapping, true/false) is refused naming file and line:
its Python repr would become a gold answer. Values are stripped; values stored as Python bytes
reprs (`"b'What is 2 + 3?\\n'"`, the format of DeepMind's hub copy) or as raw bytes are decoded.
CSV cells are read as exact strings ("007", "NA" and "" are not converted).
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
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mafine.data.registry import Record
from mafine.errors import MafineError
from mafine.jsonl import parse_objects
from mafine.readable import require_file
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
    lines: list[int] | None = None
    if fmt == "json":
        table, lines = _read_json(path)
        _check_columns(path, fields, _union_keys(table))
    elif fmt == "csv":
        header = _csv_header(path)
        _check_columns(path, fields, header)
        table = _load(path, fmt, dict.fromkeys(header, "string"))  # exact cells: "007"
    else:
        _check_columns(path, fields, _parquet_columns(path))
        table = _load(path, fmt, None)
    if len(table) == 0:
        raise MafineError(f"{path}: the file has no rows")
    wanted = list(dict.fromkeys(fields.values()))
    rows = []
    first_seen: dict[str, str] = {}
    rows_read = table if fmt == "json" else table.select_columns(wanted)
    for index, row in enumerate(rows_read):
        where = f"line {lines[index]}" if lines is not None else f"row {index + 1}"
        values = {
            key: decode_value(row.get(name), f"{path}, {where}: {name!r} ({key})")
            for key, name in fields.items()
        }
        for key, value in values.items():
            if not value:
                raise MafineError(f"{path}, {where}: empty {fields[key]!r} ({key})")
        given_id = values.get("id_field")
        if given_id is not None:
            if given_id in first_seen:
                raise MafineError(
                    f"{path}, {where}: id {given_id!r} repeats {first_seen[given_id]}; "
                    f"ids in {fields['id_field']!r} must be unique"
                )
            first_seen[given_id] = where
        rows.append((values.get("id_field"), values["question_field"], values["answer_field"]))
    return iter(rows)


_NOT_TEXT = {bool: "a yes/no (true/false)", list: "a list", tuple: "a list", dict: "a mapping"}


class _NumberText(str):
    """A JSON number, kept as the text it was written as."""


def decode_value(value: Any, where: str = "value") -> str:
    """A cell as stripped text: text as it is, a number as written (JSON) or as printed,
    bytes and Python bytes reprs ("b'...'") decoded as UTF-8. Anything else (a yes/no, a list,
    a mapping) is refused, naming `where`: its repr is no question or answer."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        kind = _NOT_TEXT.get(type(value), f"a {type(value).__name__}")
        raise MafineError(
            f"{where} is {kind}, not text or a number; write it as text (in quotes) or fix the "
            "column"
        )
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
    require_file(path, "data file")
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
            document = _loads(text)
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
    for number, record in parse_objects(text.splitlines(), path, _loads):
        records.append(record)
        lines.append(number)
    return records, lines


def _union_keys(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def _loads(text: str) -> Any:
    """JSON whose numbers keep their text (`_NumberText`); NaN and Infinity are no JSON, and a
    key given twice in one object is refused (`json` would keep the last silently)."""

    def refuse(constant: str) -> Any:
        raise json.JSONDecodeError(f"{constant} is not JSON", text, 0)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise json.JSONDecodeError(f"key {key!r} is given twice", text, 0)
            found[key] = value
        return found

    return json.loads(
        text,
        parse_float=_NumberText,
        parse_int=_NumberText,
        parse_constant=refuse,
        object_pairs_hook=unique,
    )


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
        source = path
        if any(char in str(path) for char in "[]*?"):
            # datasets reads data_files as glob patterns: link the file under a plain name
            source = Path(cache) / f"data{path.suffix}"
            source.symlink_to(path.resolve())
        try:
            return datasets.load_dataset(
                fmt,
                data_files=str(source),
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
