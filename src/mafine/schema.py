"""What every settings model shares: strictness, and the marker of keys that may change.

A field marked `json_schema_extra=MUTABLE` may change between invocations on one run
directory: it changes how a run proceeds (limits, pacing, polling), never what it produces.
`mutable_keys` derives the dotted keys from the markers, so the list is never kept by hand.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticUndefined

MUTABLE: dict[str, Any] = {"mutable": True}
MAX_SHOWN_ERRORS = 5  # more than this and the input is not a config with a few mistakes
MAX_KEY_CHARS = 60
_KEY_PATH = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")


def mutable_field(default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """`Field(default, ...)` marked MUTABLE: it may change on an existing run directory."""
    return Field(default, json_schema_extra=MUTABLE, **kwargs)


class Strict(BaseModel):
    """A settings model that refuses unknown keys and infinite or NaN numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def mutable_keys(model: type[BaseModel], prefix: str = "") -> tuple[str, ...]:
    """The dotted keys of `model` (and of the settings models it nests) marked MUTABLE."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("mutable"):
            keys.append(prefix + name)
        for nested in _models(field.annotation):
            keys.extend(mutable_keys(nested, f"{prefix}{name}."))
    return tuple(keys)


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one line: `key.path: message` for each."""
    parts = []
    errors = exc.errors()
    for error in errors[:MAX_SHOWN_ERRORS]:
        loc = _shorten(".".join(str(p) for p in error["loc"])) if error["loc"] else ""
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])  # our validators' own words
        elif "input" in error and error["type"] not in {"missing"} and not _secret_key(loc):
            shown = repr(error["input"])
            if len(shown) <= 40:
                message = f"{message} (got {shown})"
        parts.append(f"{loc}: {message}" if loc else message)
    counts = Counter(parts)
    shown = [part if counts[part] == 1 else f"{part} (x{counts[part]})" for part in counts]
    if len(errors) > MAX_SHOWN_ERRORS:
        shown.append(f"and {len(errors) - MAX_SHOWN_ERRORS} more")
    return "; ".join(shown)


def _shorten(loc: str) -> str:
    """A key path fit to show: a file that is no config (a password file, say) has 'keys'
    that are its lines, and they are named only as what they are, never echoed."""
    if not _KEY_PATH.fullmatch(loc):
        return "a key that is no config key name (is this a mafine config?)"
    return loc if len(loc) <= MAX_KEY_CHARS else loc[: MAX_KEY_CHARS - 3] + "..."


def _secret_key(loc: str) -> bool:
    """Keys whose bad values may be secrets: never echoed."""
    return loc.endswith(("api_key_env", "base_url"))
