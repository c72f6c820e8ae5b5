"""A registry of named extensions (providers, data sources, compared methods, graders).

Each kind keeps one `Registry`; an entry is a frozen dataclass with at least a `name`. The
config reads the accepted names from the registry when it validates, so registering an entry
is the one line that makes a new extension usable; `registered` adds one for the length of a
block (tests). Factories are named by a dotted path `"package.module:attribute"` and imported
on first use, so listing the names never imports torch, transformers or google-genai.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


EntryT = TypeVar("EntryT", bound=Named)


class Registry(Generic[EntryT]):
    """Named entries of one kind, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, EntryT] = {}

    def register(self, entry: EntryT) -> EntryT:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        return entry

    @contextmanager
    def registered(self, entry: EntryT) -> Iterator[EntryT]:
        """`entry` registered inside the block, removed after it."""
        self.register(entry)
        try:
            yield entry
        finally:
            del self._entries[entry.name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[EntryT, ...]:
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> EntryT:
        """The entry called `name`; ValueError naming the known ones when there is none (the
        config turns it into a one-line error at validation)."""
        entry = self._entries.get(name)
        if entry is None:
            raise ValueError(self.unknown(name))
        return entry

    def unknown(self, name: object) -> str:
        return f"unknown {self.kind} {name!r}; use one of: {', '.join(self._entries)}"


def resolve(reference: str | Callable[..., Any]) -> Any:
    """The object a `"package.module:attribute"` reference names (imported now), or the
    callable itself when the entry gave one directly."""
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
