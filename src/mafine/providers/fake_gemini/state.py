"""What the fake keeps beyond its process: stored objects, tuning jobs (and so the tuned
models), batch jobs, and a log of the requests it served.

Real Gemini jobs outlive the client that submitted them; with a state directory the fake's
do too, so a run resumed in a new process (or the README's stage-by-stage commands) finds the
jobs and models an earlier process made. Without one, everything lives in memory.

Layout: `objects/`, `tuning/`, `batches/` hold one JSON document per record, each replaced
atomically whenever the record changes (before the reply that reveals the change is sent);
`requests.jsonl` appends one line per request served (kind, and the key of a generation).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mafine.atomic import remove_stale, write_text_atomic
from mafine.errors import MafineError
from mafine.jsonl import AppendLog, iter_log


class Collection:
    """One kind of record, by name: JSON files in `directory/<collection>/`, or memory only."""

    def __init__(self, directory: Path | None, collection: str) -> None:
        self._directory = directory / collection if directory is not None else None
        self._lock = threading.Lock()  # one record's writes land in the order they were made
        self.directory = self._directory
        self.reading: Path | None = None  # the record `records()` yielded last, while it reads

    def put(self, name: str, record: dict[str, Any]) -> None:
        if self._directory is None:
            return
        text = json.dumps(record, ensure_ascii=False, sort_keys=True)
        with self._lock:
            write_text_atomic(self._directory / f"{_file_name(name)}.json", text + "\n")

    def records(self) -> Iterator[dict[str, Any]]:
        """Every stored record (none without a directory). Read them inside `loading(...)`,
        which names the file of a record of the wrong shape."""
        if self._directory is None or not self._directory.is_dir():
            return
        for path in sorted(self._directory.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise damaged(path, str(exc)) from None
            if not isinstance(record, dict):
                raise damaged(path, "not a JSON object")
            self.reading = path
            yield record
        self.reading = None


def damaged(path: Path | None, detail: str) -> MafineError:
    return MafineError(
        f"{path}: damaged fake Gemini state ({detail}); delete the file (the fake forgets that "
        "record) or the whole --state-dir"
    )


@contextmanager
def loading(collection: Collection) -> Iterator[None]:
    """Build the fake's records from `collection`: a record of the wrong shape (a missing or
    mistyped field) is one line naming its file and the fix."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        where = collection.reading or collection.directory
        raise damaged(where, f"{type(exc).__name__}: {exc}") from None


def prepare_state_dir(directory: Path, label: str = "fake Gemini state directory") -> None:
    """Make sure the fake can keep its state in `directory` (refused at once, naming it, rather
    than at the first job), and remove temporary files of a fake killed mid-write."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise MafineError(
            f"{label} {directory} cannot be written ({reason}); choose a writable directory"
        ) from None
    remove_stale(directory)


class Served(BaseModel):
    """One line of the request log: a request served (its kind), or a generation answered
    (the key of its path and body, as in the stats' `generate_keys`)."""

    kind: str | None = None
    key: str | None = None


class RequestLog:
    """The requests served from this state directory by every process that used it."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / "requests.jsonl" if directory is not None else None
        self._log = AppendLog(self.path) if self.path is not None else None

    def append(self, served: Served) -> None:
        if self._log is not None:
            self._log.append(served)

    def served(self) -> list[Served]:
        if self.path is None:
            return []
        return [row for _, row in iter_log(self.path, Served)]

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


def _file_name(name: str) -> str:
    """A safe file name for a record name (object URIs carry slashes and any character)."""
    if name.isdigit():
        return name
    return hashlib.sha256(name.encode()).hexdigest()[:32]
