"""Problems from data sets on the Hugging Face hub (or a local copy of one), through `datasets`.

Four data sets (`HubSource.dataset`, registered in `mafine.data.settings`), each with its hub
repository, config and fields:

* `deepmind`: `deepmind/math_dataset`, one config per module (`arithmetic__add_or_sub`, ...),
  splits `train` (the generator's train-easy + train-medium + train-hard) and `test`
  (`interpolate`); fields question/answer stored as Python bytes reprs
  (`"b'What is 2 + 3?\\n'"`), decoded here. The repository once held a loading script, which
  recent `datasets` releases refuse to run; should `datasets` say so, the parquet export
  (`refs/convert/parquet`, files `<module>/<split>/*.parquet`) is read instead.
* `math`: Hendrycks MATH, `EleutherAI/hendrycks_math`, one config per subject (`MATH_SUBJECTS`),
  splits train/test; fields problem, solution, level ("Level 3"), type ("Counting &
  Probability"); the answer is the last `\\boxed{}` of the solution (rows without one are
  skipped: they cannot be graded).
* `math500`: `HuggingFaceH4/MATH-500`, split test; fields problem, answer, subject, level (1-5),
  unique_id.
* `gsm8k`: `openai/gsm8k`, config `main`, splits train/test; fields question, answer; the answer
  is what follows the last `####`, stripped (commas in numbers stay as in the data).

A source with `path` never touches the network: it names a local file (.parquet, .jsonl, .json)
or a directory laid out like the hub repository, and the files are read with
`datasets.load_dataset("parquet" | "json", data_files=...)`; both routes end in the same parsing
code. Rows come out in a seeded order (the same shuffle as local files) with stable ids from the
data, prefixed with the data set's name: `gsm8k/test/12`, `math/algebra/train/345`,
`math500/test/precalculus/807.json`, `deepmind/arithmetic__add_or_sub/test/9`. Indices count
rows of a config's split in file order, before any filter, so they do not depend on filters.

`datasets` is imported on first use, never at import time.

Public for a new data set's parser (docs/architecture.md, "A hub data set"): `HubPart` (a
table and where it came from), `Parsed` (what a parser returns), `require_columns` and
`require_values` (one-line errors naming the file and row), `seeded_order`, and
`mafine.data.files.decode_value`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mafine.data.files import decode_value
from mafine.data.registry import Record
from mafine.data.settings import MATH_LEVELS, MATH_SUBJECTS
from mafine.errors import MafineError
from mafine.registry import resolve
from mafine.seeds import split_rng

if TYPE_CHECKING:
    from mafine.data.settings import HubSource

PARQUET_REVISION = "refs/convert/parquet"

_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
_LEVEL = re.compile(r"\d+")
# Exceptions (anywhere in the cause chain) that mean the hub could not be reached.
_OFFLINE = {
    "ConnectionError",
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "TimeoutException",
    "NameResolutionError",
    "TimeoutError",
}


Parsed = tuple[int, Callable[[int], Record]]  # (row count, the record at an index)


@dataclass(frozen=True)
class HubPart:
    """One table of rows: a hub config's split, or the local files standing for it. A hub data
    set's parser (`HubDataset.parser`) gets the list of them: `parser(source, name, parts)`
    returns `Parsed`, the row count and the record at an index."""

    subject: str | None  # MATH subject known from the config / directory, else None
    table: Any  # datasets.Dataset
    origin: str  # for messages: the files or the hub config


def source_records(source: HubSource, seed: int) -> Iterator[Record]:
    """(id, question, answer) records of a hub data set (or its local copy) in a seeded order.

    Loading, column checks and filters happen on the call (errors are one-line `MafineError`s
    naming the data set); the records are then yielded lazily, so that drawing a few hundred
    problems from DeepMind's 2 million train rows decodes only those.
    """
    name = describe(source)
    parts = _load_parts(source, name)
    count, parse = resolve(source.entry.parser)(source, name, parts)
    return (parse(index) for index in seeded_order(count, seed))


def seeded_order(count: int, seed: int) -> Iterator[int]:
    """A seeded permutation of range(count), drawn lazily (Fisher-Yates with a sparse swap
    table: O(1) time and memory per index, so a few draws from millions of rows stay cheap)."""
    rng = split_rng(seed)
    swapped: dict[int, int] = {}
    for position in range(count):
        pick = rng.randrange(position, count)
        current = swapped.pop(position, position)
        if pick == position:
            yield current
        else:
            yield swapped.get(pick, pick)
            swapped[pick] = current


def describe(source: HubSource) -> str:
    """A short human name: data set, filters, split and where it comes from."""
    label = f"{source.dataset}/{source.module}" if source.entry.needs_module else source.dataset
    details = [str(source.path) if source.path is not None else _repo(source), source.split]
    if source.revision is not None and source.path is None:
        details[0] += f"@{source.revision}"
    if source.subjects:
        details.append("subjects " + ",".join(source.subjects))
    if source.levels:
        details.append("levels " + ",".join(str(level) for level in sorted(set(source.levels))))
    return f"{label} ({', '.join(details)})"


# --- per data set parsing ------------------------------------------------------------------


def parse_deepmind(source: HubSource, name: str, parts: list[HubPart]) -> Parsed:
    """The module's rows, decoded one at a time when drawn (the train split has 2M)."""
    prefix = f"deepmind/{source.module}/{source.split}"
    (part,) = parts
    require_columns(name, part, ["question", "answer"])

    def parse(index: int) -> Record:
        row = part.table[index]
        where = f"{name}: {part.origin}, row {index + 1}"
        question = decode_value(row["question"], f"{where}: 'question'")
        answer = decode_value(row["answer"], f"{where}: 'answer'")
        require_values(name, part, index, question=question, answer=answer)
        return f"{prefix}/{index}", question, answer

    return len(part.table), parse


def parse_gsm8k(source: HubSource, name: str, parts: list[HubPart]) -> Parsed:
    records: list[Record] = []
    for part in parts:
        require_columns(name, part, ["question", "answer"])
        columns = part.table.select_columns(["question", "answer"])
        for index, row in enumerate(columns):
            where = f"{name}: {part.origin}, row {index + 1}"
            question = decode_value(row["question"], f"{where}: 'question'")
            answer = gsm8k_answer(decode_value(row["answer"], f"{where}: 'answer'"))
            if answer is None:
                raise MafineError(
                    f"{name}: {part.origin}, row {index + 1}: the answer has no '####' line"
                )
            require_values(name, part, index, question=question, answer=answer)
            records.append((f"gsm8k/{source.split}/{index}", question, answer))
    return len(records), records.__getitem__


def gsm8k_answer(solution: str) -> str | None:
    """The final answer of a GSM8K solution: what follows the last `####`, stripped."""
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip()


def parse_math(source: HubSource, name: str, parts: list[HubPart]) -> Parsed:
    """MATH and MATH-500 rows that pass the subject and level filters and have an answer."""
    from mafine.grading.extract import extract_boxed

    subjects = set(source.subjects or MATH_SUBJECTS)
    levels = set(source.levels or MATH_LEVELS)
    records: list[Record] = []
    total = unboxed = 0
    for part in parts:
        table = part.table
        answer_column = "answer" if source.dataset == "math500" else "solution"
        needed = ["problem", answer_column]
        default_subject_column = "subject" if source.dataset == "math500" else "type"
        subject_column = next((c for c in ("type", "subject") if c in table.column_names), None)
        if source.levels:
            needed.append("level")
        if source.subjects and part.subject is None:
            needed.append(subject_column or default_subject_column)
        require_columns(name, part, needed)
        wanted = [c for c in dict.fromkeys([*needed, subject_column, "unique_id"]) if c]
        wanted = [c for c in wanted if c in table.column_names]
        counters: dict[str, int] = {}
        for row in table.select_columns(wanted):
            subject = part.subject or _subject_slug(row.get(subject_column))
            index = counters.get(subject or "", 0)
            counters[subject or ""] = index + 1
            total += 1
            if source.subjects and subject not in subjects:
                continue
            if source.levels and parse_level(row["level"]) not in levels:
                continue
            where = f"{name}: {part.origin}, {subject or ''} row {index + 1}"
            question = decode_value(row["problem"], f"{where}: 'problem'")
            if source.dataset == "math500":
                answer = decode_value(row["answer"], f"{where}: 'answer'")
            else:
                solution = decode_value(row["solution"], f"{where}: 'solution'")
                answer = (extract_boxed(solution) or "").strip()
                if not answer:
                    unboxed += 1
                    continue
            if not question or not answer:
                continue
            records.append((_math_id(source, subject, index, row), question, answer))
    if not records:
        filters = []
        if source.subjects:
            filters.append("subjects " + ",".join(source.subjects))
        if source.levels:
            filters.append("levels " + ",".join(str(v) for v in sorted(levels)))
        why = f"after the filters ({'; '.join(filters)})" if filters else "with an answer"
        extra = f", {unboxed} without a \\boxed{{}} answer" if unboxed else ""
        raise MafineError(f"{name}: no problems {why}; {total} rows read{extra}")
    return len(records), records.__getitem__


def parse_level(value: Any) -> int | None:
    """A MATH level as a number: 3, "3" and "Level 3" give 3; "Level ?" gives None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    match = _LEVEL.search(decode_value(value))
    return int(match.group(0)) if match else None


def _subject_slug(value: Any) -> str | None:
    """`Counting & Probability` -> `counting_and_probability` (the hub config's name)."""
    text = decode_value(value)
    if not text:
        return None
    return re.sub(r"[^a-z0-9]+", "_", text.lower().replace("&", " and ")).strip("_")


def _math_id(source: HubSource, subject: str | None, index: int, row: dict[str, Any]) -> str:
    given = decode_value(row.get("unique_id"))
    if given:
        return f"{source.dataset}/{given}"
    where = f"{subject}/{source.split}" if subject else source.split
    return f"{source.dataset}/{where}/{index}"


def require_columns(name: str, part: HubPart, columns: list[str]) -> None:
    """A one-line error naming the data set and its files when `part` lacks a column."""
    present = part.table.column_names
    for column in columns:
        if column not in present:
            raise MafineError(
                f"{name}: {part.origin} has no column {column!r}; "
                f"the columns are: {', '.join(present) or '(none)'}"
            )


def require_values(name: str, part: HubPart, index: int, **values: str) -> None:
    """A one-line error naming the row when one of `values` (column=value) is empty."""
    for column, value in values.items():
        if not value:
            raise MafineError(f"{name}: {part.origin}, row {index + 1}: empty {column!r}")


# --- loading -------------------------------------------------------------------------------


def _repo(source: HubSource) -> str:
    return source.repo or source.entry.repo


def _load_parts(source: HubSource, name: str) -> list[HubPart]:
    """The tables to read: one per hub config the data set names (one per MATH subject asked
    for, the deepmind module, gsm8k's `main`), or the local copy's files for them."""
    by_subject = source.entry.subject_configs
    configs = source.entry.configs(source)
    subject_of = (lambda c: c) if by_subject else (lambda c: None)
    if source.path is None:
        return [
            HubPart(subject_of(config), _load_remote(source, config, name), _hub_origin(config))
            for config in configs
        ]
    root = Path(source.path).expanduser()
    if not root.exists():
        raise MafineError(f"{name}: local copy not found: {root}")
    if root.is_file():
        return [HubPart(None, _load_local(name, [root]), str(root))]
    present = [s for s in MATH_SUBJECTS if (root / s).is_dir()]
    if by_subject and present:
        parts = []
        for subject in configs if source.subjects else present:  # all: those in the copy
            if not (root / str(subject)).is_dir():
                raise MafineError(f"{name}: no directory {subject!r} (MATH subject) in {root}")
            files = _split_files(name, root / str(subject), source.split)
            parts.append(HubPart(subject, _load_local(name, files), _files_origin(files)))
        return parts
    config = configs[0] if not by_subject else None
    base = root / config if config and (root / config).is_dir() else root
    files = _split_files(name, base, source.split)
    return [HubPart(None, _load_local(name, files), _files_origin(files))]


def _split_files(name: str, base: Path, split: str) -> list[Path]:
    """The data files of one split in a directory laid out like a hub repository.

    Recognised (in `base`, or in its `data/`): `<split>.<ext>`, `<split>-*.<ext>` (hub
    parquet shards), `<split>/*.<ext>` (the parquet export) and `*-<split>.<ext>` /
    `*-<split>-*.<ext>` (older exports); ext is parquet, jsonl or json.
    """
    patterns = [f"{split}.*", f"{split}-*", f"{split}/*", f"*-{split}.*", f"*-{split}-*"]
    found: dict[Path, None] = {}
    for directory in (base, base / "data"):
        for pattern in patterns:
            for path in sorted(directory.glob(pattern)):
                if path.is_file() and path.suffix.lower() in _FORMATS:
                    found[path] = None
    if not found:
        raise MafineError(
            f"{name}: no {split!r} data files (.parquet, .jsonl, .json) in {base}; "
            f"expected e.g. {split}-00000-of-00001.parquet or {split}.jsonl"
        )
    files = sorted(found)
    formats = {_FORMATS[p.suffix.lower()] for p in files}
    if len(formats) > 1:
        raise MafineError(f"{name}: {base} mixes parquet and JSON files for split {split!r}")
    return files


def _files_origin(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{files[0].parent} ({len(files)} files)"


def _hub_origin(config: str | None) -> str:
    return f"config {config}" if config else "the hub copy"


def _load_local(name: str, files: list[Path]) -> Any:
    """`datasets.load_dataset` on local files: in memory, quiet, nothing cached, no network."""
    import datasets
    from datasets.utils import logging as datasets_logging

    from mafine.data.files import _quiet, _reason

    suffix = files[0].suffix.lower()
    if suffix not in _FORMATS:
        raise MafineError(
            f"{name}: unsupported file type {suffix or '(no extension)'!r} ({files[0]}); "
            f"use one of {', '.join(_FORMATS)}"
        )
    fmt = _FORMATS[suffix]
    with _quiet(datasets_logging), tempfile.TemporaryDirectory(prefix="mafine-hub-") as cache:
        try:
            table = datasets.load_dataset(
                fmt,
                data_files=[str(path) for path in files],
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
            )
        except Exception as exc:
            raise MafineError(
                f"{name}: cannot read {_files_origin(files)} as {fmt}: {_reason(exc)}"
            ) from None
    if len(table) == 0:
        raise MafineError(f"{name}: {_files_origin(files)} has no rows")
    return table


def _load_remote(source: HubSource, config: str | None, name: str) -> Any:
    """One config's split from the hub, cached in the user's Hugging Face cache."""
    import datasets

    repo = _repo(source)
    kwargs: dict[str, Any] = {"split": source.split}
    if source.revision is not None:
        kwargs["revision"] = source.revision
    with _no_retry_warnings():
        try:
            return datasets.load_dataset(repo, config, **kwargs)
        except Exception as exc:
            if not (
                source.dataset == "deepmind"
                and source.revision is None
                and "scripts are no longer supported" in _chain_text(exc)
            ):
                raise _hub_error(exc, source, config, name) from None
        # The repository still holds a loading script here: read the hub's parquet export.
        try:
            return datasets.load_dataset(
                repo,
                revision=PARQUET_REVISION,
                data_files={source.split: f"{config}/{source.split}/*.parquet"},
                split=source.split,
            )
        except Exception as exc:
            raise _hub_error(exc, source, config, name) from None


@contextlib.contextmanager
def _no_retry_warnings() -> Iterator[None]:
    """Hide huggingface_hub's per-retry warnings (our one-line error follows them); download
    progress bars stay."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _hub_error(exc: BaseException, source: HubSource, config: str | None, name: str) -> MafineError:
    repo = _repo(source)
    if _offline(exc):
        return MafineError(
            f"{name}: cannot reach the Hugging Face hub for {repo}; loading it needs network "
            "access (once; then it is cached) or a local copy of the data set named by the "
            "source's `path` (data.source.path / data.eval_source.path)"
        )
    what = f"{repo}" + (f" config {config!r}" if config else "") + f" split {source.split!r}"
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return MafineError(f"{name}: cannot load {what} from the hub: {reason}")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _offline(exc: BaseException) -> bool:
    for link in _causes(exc):
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & _OFFLINE:
            return True
    return False


def _chain_text(exc: BaseException) -> str:
    return " ".join(str(link) for link in _causes(exc))
