"""Checks on a raw config before pydantic sees it: what validation would coerce or choke on.

- YAML is read with YAML 1.2 booleans: `yes`, `no`, `on`, `off` stay strings (so `seed: yes`
  is an error, not 1), and a document whose aliases expand past a sane size is refused.
- A yes/no where the schema wants a number or a string is refused (pydantic would read
  `true` as 1), and so is an infinite or NaN number anywhere (`.inf` timeouts, `.nan` rates).
"""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel

from mafine.errors import MafineError

MAX_NODES = 100_000  # a config has hundreds; an alias bomb has billions


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: only true/false (any case)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str) -> Any:
    """YAML 1.2-style values (see the module docstring); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: safe


def read_yaml_file(path: Path) -> Any:
    """A YAML file's data; undecodable bytes and alias bombs are one-line errors naming it."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MafineError(
            f"{path}: not UTF-8 text (byte {exc.start}); re-save it as UTF-8"
        ) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise MafineError(f"{path}: not valid YAML{where}") from None
    except RecursionError:
        raise MafineError(f"{path}: nested too deeply to be a config") from None
    if expanded_size(data) > MAX_NODES:
        raise MafineError(
            f"{path}: its aliases expand past {MAX_NODES} values (an alias bomb?); "
            "write the values out"
        )
    return data


def expanded_size(data: Any) -> int:
    """How many values `data` holds with every shared (aliased) part counted each time."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = MAX_NODES + 1  # a cycle (a recursive alias) is too big too
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                break
        sizes[id(node)] = total
        return total

    return size(data)


def check_raw(raw: Any, model: type[BaseModel], prefix: str = "") -> None:
    """Refuse non-finite numbers anywhere and yes/no values where `model` wants no bool."""
    if isinstance(raw, float) and not math.isfinite(raw):
        raise MafineError(f"{prefix.rstrip('.') or 'value'}: must be a finite number (got {raw})")
    if isinstance(raw, list):
        for index, item in enumerate(raw):
            check_raw(item, model, f"{prefix}{index}.")
        return
    if not isinstance(raw, dict):
        return
    for key, value in raw.items():
        field = model.model_fields.get(str(key))
        where = f"{prefix}{key}"
        if field is None:
            check_raw(value, model, f"{where}.")
            continue
        accepted = _types(field.annotation)
        if isinstance(value, bool) and bool not in accepted and Any not in accepted:
            raise MafineError(
                f"{where}: expected {_describe(accepted)}, not a yes/no (got {value!r})"
            )
        models = [t for t in accepted if isinstance(t, type) and issubclass(t, BaseModel)]
        chosen = _choose(models, value)
        if chosen is not None:
            check_raw(value, chosen, f"{where}.")
        else:
            check_raw(value, model, f"{where}.")


def _types(annotation: Any) -> set[Any]:
    """The concrete types an annotation accepts, through Optional, unions, Annotated, lists."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _types(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        found: set[Any] = set()
        for arg in typing.get_args(annotation):
            found |= _types(arg)
        return found
    if origin is typing.Literal:
        return {type(arg) for arg in typing.get_args(annotation)}
    if origin in (list, tuple, set):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        found = {origin}
        for arg in args:
            found |= _types(arg)
        return found
    if origin is dict:
        return {dict, Any}
    return {annotation}


def _choose(models: list[type[BaseModel]], value: Any) -> type[BaseModel] | None:
    """The model a nested mapping is validated against (a union picks by its `kind`)."""
    if not models or not isinstance(value, dict):
        return None
    if len(models) == 1:
        return models[0]
    for candidate in models:
        kind = candidate.model_fields.get("kind")
        if kind is not None and kind.default == value.get("kind"):
            return candidate
    return None


def _describe(accepted: set[Any]) -> str:
    names = sorted({getattr(t, "__name__", str(t)) for t in accepted if t is not type(None)})
    return " or ".join(names) or "a value"
