"""A registry of named extensions (providers, data sources, compared methods, graders), and
the plugins that fill them.

Each kind keeps one `Registry`; an entry is a frozen dataclass with at least a `name`. The
config reads the accepted names from the registry when it validates, so registering an entry
is the one line that makes a new extension usable; `registered` adds one for the length of a
block (tests). Factories are named by a dotted path `"package.module:attribute"` and imported
on first use, so listing the names never imports torch, transformers or google-genai.

Plugins: every entry point in the group `mafine.plugins` (mafine's own built-ins first, as
declared in its pyproject.toml, then installed packages by name) names a module whose import
registers its entries, or a callable (`module:register`) that registers them when called. They
are loaded the first time any registry is read, so `mafine --help` loads none. A plugin that
fails (import error, error while registering, a name already taken) is one line on stderr
naming it and what failed; whatever it had registered is removed, and mafine runs without it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, Protocol, TypeVar

from mafine.errors import MafineError
from mafine.secrets import scrub

PLUGIN_GROUP = "mafine.plugins"
BUILTIN_DISTRIBUTION = "mafine"


class Named(Protocol):
    @property
    def name(self) -> str: ...


EntryT = TypeVar("EntryT", bound=Named)


class Registry(Generic[EntryT]):
    """Named entries of one kind, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, EntryT] = {}
        self._origins: dict[str, str] = {}  # name -> the plugin that registered it
        _REGISTRIES.append(self)

    def register(self, entry: EntryT) -> EntryT:
        return self._add(entry, _loading or _package_of_caller(2))

    @contextmanager
    def registered(self, entry: EntryT) -> Iterator[EntryT]:
        """`entry` registered inside the block, removed after it."""
        load_plugins()
        self._add(entry, _package_of_caller(3))
        try:
            yield entry
        finally:
            del self._entries[entry.name]
            self._origins.pop(entry.name, None)

    def _add(self, entry: EntryT, origin: str) -> EntryT:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        self._origins[entry.name] = origin
        return entry

    def names(self) -> tuple[str, ...]:
        load_plugins()
        return tuple(self._entries)

    def entries(self) -> tuple[EntryT, ...]:
        load_plugins()
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def get(self, name: str) -> EntryT:
        """The entry called `name`; ValueError naming the known ones when there is none (the
        config turns it into a one-line error at validation)."""
        load_plugins()
        entry = self._entries.get(name)
        if entry is None:
            raise ValueError(self.unknown(name))
        return entry

    def origin(self, name: str) -> str:
        """Who registered `name`: `distribution:entry point` of the plugin being loaded, else
        the top-level package of the module that registered it (`mafine` for the built-ins
        that other modules import before any registry is read)."""
        load_plugins()
        return self._origins[name]

    def unknown(self, name: object) -> str:
        return f"unknown {self.kind} {name!r}; use one of: {', '.join(self.names())}"


_REGISTRIES: list[Registry[Any]] = []
_loaded = False
_loading: str | None = None  # the plugin being loaded, which registrations are credited to


def _package_of_caller(depth: int) -> str:
    module = sys._getframe(depth).f_globals.get("__name__", "")
    return str(module).partition(".")[0] or "?"


@dataclass(frozen=True)
class ErrorHint:
    """What the CLI's guard says about an error of a library it does not import: `name` is the
    prefix of the exception's `module.Class` (e.g. `google.auth.exceptions`), `hint` the one
    line shown, with `{error}` replaced by the exception's text. A provider registers the hints
    of its own client libraries beside its entry."""

    name: str
    hint: str


ERROR_HINTS: Registry[ErrorHint] = Registry("error hint")


def resolve(reference: str | Callable[..., Any]) -> Any:
    """The object a `"package.module:attribute"` reference names (imported now), or the
    callable itself when the entry gave one directly. A module that cannot be found or an
    attribute it lacks is a one-line error naming the reference."""
    if not isinstance(reference, str):
        return reference
    module, _, attribute = reference.partition(":")
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MafineError(
            f"{reference} (named by a registry entry) cannot be imported: {exc}; correct the "
            "entry's import path, or install the package it needs"
        ) from exc
    try:
        return getattr(found, attribute)
    except AttributeError:
        raise MafineError(
            f"{reference} (named by a registry entry): {module} has no {attribute!r}; correct "
            "the entry's import path"
        ) from None


def load_plugins() -> None:
    """Load every plugin of `PLUGIN_GROUP` once (later calls return at once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # first: a plugin that reads a registry while it loads does not recurse
    for entry_point in plugin_entry_points():
        load_plugin(entry_point)


def plugin_entry_points() -> list[metadata.EntryPoint]:
    """The group's entry points: mafine's built-ins first (in their metadata's order), then the
    other distributions' by name."""
    found = list(metadata.entry_points(group=PLUGIN_GROUP))
    builtins = [ep for ep in found if _distribution(ep) == BUILTIN_DISTRIBUTION]
    if not builtins:  # run from a source tree, or installed before its entry points existed
        sys.stderr.write(
            f"mafine: its own entry points ({PLUGIN_GROUP}) are not installed, so built-in "
            "providers, graders, data sources or methods may be missing; reinstall mafine "
            "(pip install -e . in a checkout)\n"
        )
    others = sorted((ep for ep in found if ep not in builtins), key=_origin)
    return [*builtins, *others]


def load_plugin(entry_point: metadata.EntryPoint) -> bool:
    """Import (and call, when it names a callable) one plugin; on failure, one line on stderr
    and every entry it registered removed. True when it loaded."""
    global _loading
    before = [set(registry._entries) for registry in _REGISTRIES]
    _loading = _origin(entry_point)
    try:
        loaded = entry_point.load()
        if callable(loaded):
            loaded()
    except Exception as exc:
        for registry, names in zip(_REGISTRIES, before, strict=False):
            for name in set(registry._entries) - names:
                del registry._entries[name]
                del registry._origins[name]
        lines = scrub(str(exc)).strip().splitlines()
        detail = lines[0] if lines else "no detail"
        sys.stderr.write(
            f"mafine: plugin {_origin(entry_point)} ({entry_point.value}) not loaded: "
            f"{type(exc).__name__}: {detail}; mafine runs without it\n"
        )
        return False
    finally:
        _loading = None
    return True


def _distribution(entry_point: metadata.EntryPoint) -> str | None:
    dist = entry_point.dist
    return None if dist is None else dist.metadata["Name"]


def _origin(entry_point: metadata.EntryPoint) -> str:
    """`distribution:name`, how a message names a plugin."""
    dist = _distribution(entry_point)
    return f"{dist}:{entry_point.name}" if dist else entry_point.name
