"""A fake Gemini: a real HTTP server on loopback speaking Gemini's and Cloud Storage's REST.

The real `google-genai` and `google-cloud-storage` clients talk to it unchanged, pointed at
`FakeGemini.url` (`HttpOptions(base_url=...)`, `client_options={"api_endpoint": ...}`).
Standard library only. Every request goes through `FakeGemini._dispatch`, the one place
where fault injection and latency are added (`faults`) before the route runs. Each
responsibility serves its own routes: `generation`, `tuning`, `batches`, `storage`.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from mafine.providers.fake_gemini.batches import Batches
from mafine.providers.fake_gemini.faults import Faults
from mafine.providers.fake_gemini.generation import Generation
from mafine.providers.fake_gemini.routing import FakeError, Reply, Request, Route, RouteTable, route
from mafine.providers.fake_gemini.settings import FakeSettings
from mafine.providers.fake_gemini.state import (
    Collection,
    RequestLog,
    Served,
    loading,
    prepare_state_dir,
)
from mafine.providers.fake_gemini.storage import Storage
from mafine.providers.fake_gemini.tuning import Tuning

_MAX_BODY = 512 * 1024 * 1024


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (a cancelled request) is normal here, not an error
    to print a traceback for."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeGemini:
    """The fake service. `start()` binds and serves in a daemon thread; `stop()` ends it."""

    ROUTES: ClassVar[list[Route]] = [
        route("GET", r"/_fake/stats", "stats", "_route_stats"),
        route("POST", r"/_fake/reset", "reset", "_route_reset"),
    ]

    def __init__(
        self,
        settings: FakeSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
    ) -> None:
        """`state_dir`: where objects, jobs and tuned models outlive this process (see
        `state`); None keeps everything in memory."""
        self.settings = settings
        self.state_dir = state_dir
        self.host = host
        self.port = port
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests = 0
        self._by_kind: dict[str, int] = {}
        self._generate_keys: dict[str, int] = {}
        self._stopping = threading.Event()

        def current_settings() -> FakeSettings:  # a test may swap `self.settings`
            return self.settings

        if state_dir is not None:
            prepare_state_dir(state_dir)
        self._served = RequestLog(state_dir)
        self.faults = Faults(current_settings, self._stopping)
        objects, tuning, batches = (
            Collection(state_dir, name) for name in ("objects", "tuning", "batches")
        )
        with loading(objects):
            self.storage = Storage(lambda: self.url, objects)
        with loading(tuning):
            self.tuning = Tuning(current_settings, self.storage.read, tuning)
        self.generation = Generation(current_settings, self.tuning, self._count_key)
        with loading(batches):
            self.batches = Batches(
                current_settings, self.generation, self.tuning, self.storage, batches
            )
        self._routes = RouteTable([self, self.generation, self.tuning, self.batches, self.storage])

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeGemini:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _QuietServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() may wait for the loop
            name="fake-gemini",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # ends injected hangs
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._served.close()

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve until stopped; Ctrl-C (or SIGTERM, which the CLI raises the same way) stops
        the server cleanly and then propagates, so the command exits 130 (143)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.1)
        finally:
            self.stop()

    # ---- statistics ------------------------------------------------------------------
    def stats(self, cumulative: bool = False) -> dict[str, Any]:
        """Requests served, by kind, and how often each generation (path and body) arrived:
        by this server since it started (or was reset), or with `cumulative` by every
        server that used its state directory (`GET /_fake/stats?cumulative=true`)."""
        if cumulative and self.state_dir is not None:
            by_kind: dict[str, int] = {}
            keys: dict[str, int] = {}
            for served in self._served.served():
                if served.kind is not None:
                    by_kind[served.kind] = by_kind.get(served.kind, 0) + 1
                if served.key is not None:
                    keys[served.key] = keys.get(served.key, 0) + 1
            return {"requests": sum(by_kind.values()), "by_kind": by_kind, "generate_keys": keys}
        with self._lock:
            return {
                "requests": self._requests,
                "by_kind": dict(self._by_kind),
                "generate_keys": dict(self._generate_keys),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_kind = {}
            self._generate_keys = {}
        self.faults.reset()

    def fault_stats(self) -> dict[str, int]:
        """How many faults of each kind were injected (and 429s from `requests_per_minute`)."""
        return self.faults.counts()

    def object_bytes(self, uri: str) -> bytes | None:
        """The stored bytes of `gs://bucket/name`, or None (for tests)."""
        return self.storage.read(uri)

    def _count(self, kind: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_kind[kind] = self._by_kind.get(kind, 0) + 1
            self._served.append(Served(kind=kind))

    def _count_key(self, key: str) -> None:
        with self._lock:
            self._generate_keys[key] = self._generate_keys.get(key, 0) + 1
            self._served.append(Served(key=key))

    # ---- the single dispatch point ---------------------------------------------------
    def _dispatch(self, request: Request) -> Reply:
        """Route one request. Fault injection and latency belong here, before the route runs."""
        handler, kind, params = self._routes.find(request.method, request.path)
        if kind not in ("stats", "reset"):
            self._count(kind)
        injected = self.intercept(kind, request)
        if injected is not None:
            return injected
        if handler is None:
            return Reply.error(404, f"{request.method} {request.path} is not served by the fake")
        try:
            return handler(request, **params)
        except FakeError as exc:
            return Reply.error(exc.status, exc.message)

    def intercept(self, kind: str, request: Request) -> Reply | None:
        """A Reply to answer instead of the real route, or None (see `Faults.intercept`).

        Tests subclass the fake and override this to gate or refuse requests."""
        return self.faults.intercept(kind, request)

    # ---- fake-only endpoints ---------------------------------------------------------
    def _route_stats(self, request: Request) -> Reply:
        cumulative = request.query.get("cumulative", "").lower() in ("1", "true")
        return Reply.json(200, self.stats(cumulative=cumulative))

    def _route_reset(self, request: Request) -> Reply:
        self.reset_stats()
        return Reply.json(200, self.stats())


def _handler_for(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeGemini/1.0"
        # One buffered write per reply (flushed by handle_one_request) and no Nagle delay:
        # otherwise keep-alive clients wait ~40 ms per request on delayed ACKs.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # never log (keys, paths)
            return

        def _serve(self) -> None:
            try:
                body = self._read_body()
            except ValueError as exc:
                self._send(Reply.error(400, str(exc)))
                return
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Request(self.command, parts.path, query, headers, body)
            try:
                reply = fake._dispatch(request)
            except Exception as exc:  # a bug in the fake: answer 500 rather than hang up
                reply = Reply.error(500, f"fake internal error: {type(exc).__name__}")
            self._send(reply)

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > _MAX_BODY:
                raise ValueError("request body too large")
            return self.rfile.read(length) if length else b""

        def _send(self, reply: Reply) -> None:
            if reply.drop:  # hang up: the client sees the connection close with no reply
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    return Handler
