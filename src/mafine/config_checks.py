"""Checks on a raw config before pydantic sees it: what validation would coerce or choke on.

- YAML is read with YAML 1.2's core schema, not PyYAML's YAML 1.1 one: `yes`, `no`, `on`, `off`
  stay strings (so `seed: yes` is an error, not 1); `010` is 10 (not octal 8), `0o10` 8, `0x10`
  16, `1e3` 1000.0, `+1` 1; `1:30` (YAML 1.1's sexagesimal 90), `1_000` and `0b1` are strings,
  which a number field reads as written or refuses naming the key. A key given twice and a
  document whose aliases expand past a sane size are refused. Files mafine writes quote every
  string that either YAML version would read as another type, so both read them alike.
  (A SafeLoader subclass with the core schema's resolvers, rather than ruamel.yaml: the rest of
  the project reads and writes YAML with PyYAML, and these few resolvers are the whole change.)
- An empty or blank string where the schema wants a string or a path is refused (an empty
  `provider.model` would fail only mid-run; an empty path would mean the current directory).
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


_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float"))
_CORE_RESOLVERS = (  # YAML 1.2.2, 10.3.2 (the core schema's tag resolution)
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")),
    (
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    ),
)


class RefusedValue(yaml.constructor.ConstructorError):
    """YAML that parses but is refused: its `problem` is the message, with the line."""


class DuplicateKey(RefusedValue):
    """A mapping names one key twice (PyYAML would keep the last value silently)."""


def _number(node: yaml.ScalarNode, kind: str, parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except ValueError:  # an explicit !!int or !!float tag on text that is no such number
        raise RefusedValue(
            None, None, f"{text!r} is not a YAML 1.2 {kind}", node.start_mark
        ) from None


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans and numbers, refusing repeated keys."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise DuplicateKey(
                        None, None, f"key {key!r} is given twice; keep one", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:  # type: ignore[override]
        text = str(self.construct_scalar(node))
        if text.startswith(("0o", "0x")):
            base = 8 if text[1] == "o" else 16
            return _number(node, "integer", lambda t: int(t[2:], base), text)
        return _number(node, "integer", lambda t: int(t, 10), text)  # 010 is 10

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:  # type: ignore[override]
        text = str(self.construct_scalar(node))
        special = text.lower().lstrip("+")
        if special in {".inf", "-.inf", ".nan"}:
            return float(special.replace(".", ""))
        return _number(node, "number", float, text)


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in {_BOOL, _INT, _FLOAT}]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _CORE_RESOLVERS:
    _Yaml12Loader.add_implicit_resolver(_tag, _regexp, _first)
_Yaml12Loader.add_constructor(_INT, _Yaml12Loader.construct_yaml_int)
_Yaml12Loader.add_constructor(_FLOAT, _Yaml12Loader.construct_yaml_float)


class _BothVersionsDumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings the YAML 1.2 core schema reads as another type
    (`1e3`, `0o7`), so a file it writes reads the same with PyYAML's loaders and with ours."""


for _tag, _regexp, _first in _CORE_RESOLVERS:
    _BothVersionsDumper.add_implicit_resolver(_tag, _regexp, _first)


def parse_yaml(text: str) -> Any:
    """YAML 1.2-style values (see the module docstring); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: safe


def dump_yaml(data: Any) -> str:
    """YAML text that reads back as `data` under YAML 1.1 and 1.2 alike, keys in order."""
    return yaml.dump(data, Dumper=_BothVersionsDumper, sort_keys=False, allow_unicode=True)


def override_value(text: str) -> Any:
    """The value of a `--set key=value` or of a `--grid` / `--seeds` item, typed as YAML 1.2.

    A plain (unquoted) word that YAML would change is kept as written: YAML folds a line break
    in it into a space and drops a ` # comment`, so `a\nb` and `1 # x` stay exactly that text
    (a number field then refuses `1 # x` naming its key). Quote a value for YAML's own reading.
    """
    stripped = text.strip()
    if not stripped:
        return text
    try:
        node = yaml.compose(stripped, Loader=_Yaml12Loader)
        value = parse_yaml(stripped)
    except yaml.YAMLError:
        return text
    plain = isinstance(node, yaml.ScalarNode) and node.style is None
    if plain and (node.value != stripped or isinstance(value, str)):
        return stripped
    return value


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
    except RefusedValue as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise MafineError(f"{path}, line {line}: {exc.problem}") from None
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
    """Refuse non-finite numbers anywhere, blank strings where `model` wants a string or a path,
    and yes/no values where it wants no bool."""
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
        if isinstance(value, str) and not value.strip() and accepted & {str, Path}:
            raise MafineError(f"{where}: empty; give a value, or leave the key out for its default")
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


def field_types(model: type[BaseModel], raw: Any, parts: list[str]) -> set[Any]:
    """The types the field at the dotted `parts` accepts (empty: no such field); a section
    that is a union of models is chosen by the `kind` in `raw`, as validation would."""
    node: Any = raw
    current: type[BaseModel] | None = model
    for index, part in enumerate(parts):
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return set()
        accepted = _types(field.annotation)
        if index == len(parts) - 1:
            return accepted
        node = node.get(part) if isinstance(node, dict) else None
        models = [t for t in accepted if isinstance(t, type) and issubclass(t, BaseModel)]
        current = _choose(models, node) if isinstance(node, dict) else (models or [None])[0]
    return set()


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
