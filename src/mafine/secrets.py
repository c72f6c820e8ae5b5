"""Secrets never reach a run directory, a log or a message: recognise and scrub them.

What counts as a secret here: the value of any environment variable whose name says it holds
one (`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*CREDENTIAL*`), strings shaped like a
Google API key, the value of a key-like parameter in a URL's query, and the password of a URL's
userinfo (`https://user:password@host`).
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlsplit

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
# Google API keys: "AIza" and 35 more URL-safe characters.
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")
_QUERY_NAMES = r"(?:api[_-]?)?key|token|access_token|secret|password|sig|signature"
_QUERY_SECRET = re.compile(rf"(?i)\b({_QUERY_NAMES})=([^&\s'\"]+)")
# In text, only a parameter of a query (after `?`, `&` or `;`) is scrubbed: `key=value` in a
# usage hint (`--grid key=v1,v2`, `--option key=value`) is no secret.
_QUERY_SECRET_IN_TEXT = re.compile(rf"(?i)([?&;](?:{_QUERY_NAMES}))=([^&\s'\"]+)")
# `scheme://user:password@`: the password part (a token alone as the user is kept: no colon).
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@?#]*):([^/\s@?#]+)@")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REDACTED = "[redacted]"
_MIN_SECRET_LENGTH = 8  # shorter values would scrub ordinary words


def looks_like_a_key(value: str) -> bool:
    """Whether a string is a credential rather than the name of the variable holding one."""
    return bool(_GOOGLE_KEY.search(value)) or not ENV_NAME.fullmatch(value)


def url_secret_parameters(url: str) -> list[str]:
    """Names of key-like parameters in a URL's query (which would store a secret on disk)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    return [name for name, _ in parse_qsl(query) if _QUERY_SECRET.match(f"{name}=x")]


def _secret_values() -> list[str]:
    values = [
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LENGTH
    ]
    return sorted(set(values), key=len, reverse=True)


def holds_secret(text: str) -> bool:
    """Whether `text` holds a Google API key, a secret environment variable's value, or a URL
    carrying a password (in its userinfo) or a key (in its query)."""
    return (
        bool(_GOOGLE_KEY.search(text) or _URL_PASSWORD.search(text))
        or bool("://" in text and url_secret_parameters(text))
        or any(v in text for v in _secret_values())
    )


def scrub(text: str) -> str:
    """`text` with every secret it contains replaced by a marker."""
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    text = _GOOGLE_KEY.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    return _QUERY_SECRET_IN_TEXT.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
