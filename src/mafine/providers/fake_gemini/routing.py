"""The fake's HTTP vocabulary: a parsed request, a reply, the error every route may raise,
and the route table each responsibility (generation, tuning, batches, storage) declares.

Error bodies follow Google's JSON error shape, `{"error": {"code", "message", "status"}}`
with the canonical gRPC status names (https://cloud.google.com/apis/design/errors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

FAKE_PROJECT = "fake-project"
FAKE_LOCATION = "us-central1"

VERSION = r"/(?:v1|v1beta|v1beta1)"
# A Vertex AI resource's parent, after the version.
VERTEX = VERSION + r"/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class Request:
    """One parsed HTTP request, as the dispatcher sees it (the body is never kept)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names; never logged
    body: bytes


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # hang up without answering (a dropped connection)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        data = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        return cls(status, data, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def error(cls, status: int, message: str, details: list[dict] | None = None) -> Reply:
        code_name = _STATUS_NAMES.get(status, "UNKNOWN")
        error: dict[str, Any] = {"code": status, "message": message, "status": code_name}
        if details:
            error["details"] = details
        return cls.json(status, {"error": error})


class FakeError(Exception):
    """Raised by a route: answered as `Reply.error(status, message)`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Route:
    """One served endpoint: HTTP method, path pattern (full match), the kind it is counted
    under in the stats, and the name of the handler method on its responsibility's object."""

    method: str
    pattern: re.Pattern[str]
    kind: str
    handler: str


def route(method: str, pattern: str, kind: str, handler: str) -> Route:
    return Route(method, re.compile(pattern), kind, handler)


Handler = Callable[..., Reply]


class RouteTable:
    """The routes of several responsibilities, each bound to the object that serves it."""

    def __init__(self, owners: Iterable[Any]) -> None:
        self._routes = [
            (r.method, r.pattern, r.kind, getattr(owner, r.handler))
            for owner in owners
            for r in owner.ROUTES
        ]

    def find(self, method: str, path: str) -> tuple[Handler | None, str, dict[str, str]]:
        """(handler, kind, path parameters) for a request; (None, "unknown", {}) if unserved."""
        for route_method, pattern, kind, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                return handler, kind, params
        return None, "unknown", {}


def require_auth(request: Request) -> None:
    """Vertex AI and Cloud Storage: an OAuth bearer token (or a key) must be present."""
    if not (request.headers.get("authorization") or request.headers.get("x-goog-api-key")):
        raise FakeError(401, "Request is missing required authentication credential.")


def require_api_key(request: Request) -> None:
    """The Gemini API (API-key mode): a key in the header or the query."""
    if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
        raise FakeError(401, "API key not valid. Please pass a valid API key.")


def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise FakeError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise FakeError(400, "request body must be a JSON object")
    return body


def now() -> str:
    """The current time as the RFC 3339 timestamp Google's resources carry."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
