"""The data sources mafine can draw problems from: source kinds and hub data sets.

A source kind (`data.source.kind`) names its settings model and the function that yields its
`(id or None, question, answer)` records in a seeded order; a hub data set
(`kind: hub, dataset: ...`) names its repository, splits and row parser. Builtin entries are
registered in `mafine.data.settings` (a plugin of mafine's own); docs/architecture.md has the
recipe for adding one, as a plugin package. A hub data set's parser builds on the public helpers
of `mafine.data.hub` (`HubPart`, `Parsed`, `require_columns`, `require_values`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mafine.registry import Registry

Record = tuple[str | None, str, str]  # (id or None, question, answer)


@dataclass(frozen=True)
class SourceKind:
    name: str  # the `kind` key of a source in the config
    settings: type  # its pydantic settings model, with `kind: Literal[name]`
    records: str | Callable[..., Any]  # (source, seed) -> Iterator[Record], in a seeded order
    describe: str | Callable[..., str]  # (source) -> a short human name of the source
    description: str = ""  # what it is, for `mafine plugins` and the docs


@dataclass(frozen=True)
class HubDataset:
    name: str  # `dataset` of a hub source
    repo: str  # the hub repository
    splits: tuple[str, ...]  # the hub splits a source may name
    parser: str | Callable[..., Any]  # (source, name, parts) -> (count, parse(index) -> Record)
    configs: Callable[[Any], list[str | None]]  # the hub configs a source reads
    needs_module: bool = False  # deepmind: `module` names the hub config
    filters: bool = False  # MATH subjects and levels apply
    subject_configs: bool = False  # one hub config per MATH subject


SOURCES: Registry[SourceKind] = Registry("data source kind")
HUB_DATASETS: Registry[HubDataset] = Registry("hub data set")
