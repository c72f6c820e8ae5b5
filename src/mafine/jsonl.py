"""JSONL reading and writing: typed rows, precise errors, atomic publishing, crash-safe appends."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from mafine.artifacts import made_by
from mafine.atomic import atomic_open, write_text_atomic
from mafine.errors import MafineError

RowT = TypeVar("RowT", bound=BaseModel)


def parse_row(line: str, row_type: type[RowT], path: Path, line_number: int) -> RowT:
    try:
        return row_type.model_validate_json(line)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        detail = "not valid JSON" if problem["type"] == "json_invalid" else problem["msg"]
        if where and problem["type"] != "json_invalid":
            detail = f"{where}: {detail}"
        raise MafineError(
            f"{path}, line {line_number}: corrupt {row_type.__name__} row ({detail})"
        ) from None


def parse_objects(
    lines: Iterable[str], path: Path, loads: Callable[[str], Any] = json.loads
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of untyped JSON lines (user files);
    a line that is not a JSON object is an error naming the file and the line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except json.JSONDecodeError as exc:
            raise MafineError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise MafineError(
                f"{path}, line {number}: expected a JSON object, got {type(record).__name__}"
            )
        yield number, record


def read_rows(path: Path, row_type: type[RowT]) -> Iterator[RowT]:
    """Rows of a finished JSONL artifact, one at a time; any bad line is an error naming it."""
    if not path.is_file():
        maker = made_by(path)
        way_on = f"; `{maker}` makes it (or `mafine run CONFIG` makes everything)" if maker else ""
        raise MafineError(f"missing artifact: {path}{way_on}")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield parse_row(_decode(raw, path, number), row_type, path, number)


def write_rows(path: Path, rows: Iterable[BaseModel]) -> int:
    """Publish a finished artifact atomically: readers see the old file or the whole new one."""
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(row.model_dump_json() + "\n")
            count += 1
    return count


def write_json(path: Path, data: object) -> None:
    """Write a JSON document atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


class AppendLog:
    """An append-only JSONL file that survives being killed mid-write.

    Each row is written with one `write` and flushed, so a killed process leaves at most one
    partial last line; opening the log again cuts that line off (it was never finished).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        _drop_unfinished_tail(path)
        self._handle: IO[str] | None = None

    def append(self, row: BaseModel) -> int:
        """Append a row; returns the byte offset where it starts. The file is created on the
        first append, so a command that fails early leaves no empty file behind."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        offset = self._handle.tell()
        self._handle.write(row.model_dump_json() + "\n")
        self._handle.flush()
        return offset

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def iter_log(path: Path, row_type: type[RowT]) -> Iterator[tuple[int, RowT]]:
    """(offset, row) for every finished row of an append log; an unfinished tail is ignored."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        number = 0
        while True:
            offset = handle.tell()
            raw = handle.readline()
            if not raw:
                return
            number += 1
            if not raw.endswith(b"\n"):
                return
            if raw.strip():
                yield offset, parse_row(_decode(raw, path, number), row_type, path, number)


def read_at(path: Path, offset: int, row_type: type[RowT]) -> RowT:
    with path.open("rb") as handle:
        handle.seek(offset)
        return row_type.model_validate_json(handle.readline())


def _decode(raw: bytes, path: Path, line_number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MafineError(
            f"{path}, line {line_number}: not UTF-8 text (byte {exc.start} of the line); "
            "the file is damaged: restore it, or delete it to redo its stage"
        ) from None


def _drop_unfinished_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - 65536)
            handle.seek(start)
            chunk = handle.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            position = start
        else:
            cut = 0
        if cut != end:
            handle.truncate(cut)
