"""The one exception type whose message is shown to the user as is: one line, no traceback."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class MafineError(Exception):
    """An error the user can act on. Its message must never contain a secret."""


class QuotaExhausted(MafineError):
    """A quota that waiting will not restore (per-day, or a tier without quota): stop the stage."""


def describe_validation_error(exc: ValidationError, *, union_tags: Collection[object] = ()) -> str:
    """Pydantic's errors as one line: `key.path: message` for each (tags of discriminated
    unions, `union_tags`, left out of the path)."""
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"] if p not in union_tags)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif "input" in error and error["type"] not in {"missing"}:
            shown = repr(error["input"])
            if len(shown) <= 40:
                message = f"{message} (got {shown})"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)
