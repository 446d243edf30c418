"""A tiny echo upstream: the protected API that nginx proxies to in the e2e tests.

It answers every request with a JSON object describing exactly what it received (method,
raw request target, every header in order with duplicates, body) and keeps a log of the
requests, so a test can assert both what nginx forwarded and that a refused request never
arrived at all.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the upstream saw it."""

    method: str
    target: str  # the raw request target, query string included
    headers: tuple[tuple[str, str], ...]  # in arrival order, duplicates kept
    body: bytes

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive)."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header_names(self) -> list[str]:
        """The header names as received."""
        return [key for key, _ in self.headers]


class _EchoHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 so nginx's keepalive connections to the upstream are exercised as in production.
    protocol_version = "HTTP/1.1"
    server: _EchoServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = ReceivedRequest(
            method=self.command,
            target=self.path,
            headers=tuple((key, value) for key, value in self.headers.items()),
            body=body,
        )
        # Logged before answering, so by the time nginx's client has its response the
        # request is visible to the test.
        self.server.log.append(received)
        payload = json.dumps(
            {
                "method": received.method,
                "target": received.target,
                "headers": [list(pair) for pair in received.headers],
                "body": body.decode("utf-8", "replace"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr line; the log list is what tests read."""


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.log = _RequestLog()


class _RequestLog:
    """A thread-safe list of received requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[ReceivedRequest] = []

    def append(self, item: ReceivedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class EchoUpstream:
    """The echo server running in a background thread on a free loopback port."""

    def __init__(self) -> None:
        self._server = _EchoServer()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="echo-upstream", daemon=True
        )

    @property
    def port(self) -> int:
        """The TCP port the upstream listens on (127.0.0.1)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Start serving in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received since the last :meth:`clear`, oldest first."""
        return self._server.log.snapshot()

    def clear(self) -> None:
        """Forget the requests received so far."""
        self._server.log.clear()
