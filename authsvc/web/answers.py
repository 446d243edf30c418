"""The answers of ``/auth``, serialized ahead of time.

Every ``/auth`` answer is a status and a few headers with an empty body (SPEC: nginx
discards the body of an auth subrequest, and only a body-less answer lets it keep its
connection alive whichever method the subrequest uses). So the header block of each
denial is built once at import, and that of an allow once per token record, and a request
costs one small object and one write. aiohttp still parses the request, keeps the
connection and applies back-pressure: :class:`PreparedAnswer` is an ordinary aiohttp
response that skips only the generic header handling (docs/performance-notes.md measured
it at about a fifth of a naive handler's time).
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from functools import lru_cache
from http import HTTPStatus
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion10, HttpVersion11

from authsvc.rules.decision import AUTH_STATUS, Reason
from authsvc.rules.durations import rfc3339

#: Seconds an allow may be reused by nginx's optional micro-cache (deploy/nginx/microcache):
#: nginx honours X-Accel-Expires over Cache-Control, and only where proxy_cache is on.
MICROCACHE_SECONDS = 1


_LINE_BREAK = re.compile("[\r\n\0]")


def header_block(fields: list[tuple[str, str]]) -> bytes:
    """``Name: value`` lines, each ending in CRLF. Refuses a value that could end its line
    early (a header injected into nginx's view of the answer)."""
    for name, value in fields:
        if _LINE_BREAK.search(value):
            raise ValueError(f"header {name} would carry a line break")
    return "".join([f"{name}: {value}\r\n" for name, value in fields]).encode("latin-1")


# Every answer ends with these: no server name (SECURITY), and an explicit empty body.
_TAIL = header_block([("Server", ""), ("Content-Length", "0")])


def _denial_block(reason: Reason) -> bytes:
    # Denials are never cached: X-Accel-Expires 0 whatever the nginx configuration says.
    fields = [("X-Auth-Reason", reason.value)]
    if reason is Reason.MISSING_TOKEN:
        fields.append(("WWW-Authenticate", 'Bearer realm="authsvc"'))
    elif AUTH_STATUS[reason] == 401:
        fields.append(("WWW-Authenticate", 'Bearer realm="authsvc", error="invalid_token"'))
    fields += [("Cache-Control", "no-store"), ("X-Accel-Expires", "0")]
    return header_block(fields) + _TAIL


_DENIALS: dict[Reason, bytes] = {
    reason: _denial_block(reason) for reason in Reason if reason is not Reason.OK
}
_INTERNAL_ERROR = (
    header_block(
        [
            ("X-Auth-Reason", "internal_error"),
            ("Cache-Control", "no-store"),
            ("X-Accel-Expires", "0"),
        ]
    )
    + _TAIL
)


_REUSABLE = header_block([("X-Accel-Expires", str(MICROCACHE_SECONDS))]) + _TAIL
_NOT_REUSABLE = header_block([("X-Accel-Expires", "0")]) + _TAIL


@lru_cache(maxsize=8192)  # names repeat on every request of a token; bounded
def header_safe(text: str) -> str:
    """Token names may hold any printable Unicode; header values must be ASCII, so
    everything else (and ``%``) is percent-encoded as UTF-8."""
    return quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")


class AllowBlocks:
    """The two header blocks of an allow for one token: reusable by the micro-cache or not;
    ``head`` is what they share (an allow of a rate-limited token adds its counts to it)."""

    __slots__ = ("head", "not_reusable", "reusable")

    def __init__(self, token_id: str, name: str, expires_at: float | None) -> None:
        fields = [
            ("X-Auth-Reason", "ok"),
            ("X-Auth-Token-Id", token_id),
            ("X-Auth-Token-Name", header_safe(name)),
        ]
        if expires_at is not None:
            fields.append(("X-Auth-Token-Expires", rfc3339(expires_at)))
        fields.append(("Cache-Control", "no-store"))
        self.head = head = header_block(fields)
        self.reusable = head + _REUSABLE
        self.not_reusable = head + _NOT_REUSABLE


def _limit_fields(limit: int, remaining: int, reset: int) -> bytes:
    # Integers only: nothing a client sent reaches these lines, so no check is needed.
    return b"X-RateLimit-Limit: %d\r\nX-RateLimit-Remaining: %d\r\nX-RateLimit-Reset: %d\r\n" % (
        limit,
        remaining,
        reset,
    )


_RATE_LIMITED_HEAD = header_block([("X-Auth-Reason", Reason.RATE_LIMITED.value)])
_NEVER_STORED = header_block([("Cache-Control", "no-store"), ("X-Accel-Expires", "0")]) + _TAIL


class _Date:
    """The ``Date`` header line, formatted once per second (as aiohttp does)."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._line = f"Date: {formatdate(second, usegmt=True)}\r\n".encode("ascii")
        return self._line


_DATE = _Date()
_STATUS_LINES: dict[tuple[int, int, int], bytes] = {}


def _status_line(version: tuple[int, int], status: int) -> bytes:
    key = (version[0], version[1], status)
    line = _STATUS_LINES.get(key)
    if line is None:
        if len(_STATUS_LINES) > 64:  # only a handful of versions exist; bound it anyway
            _STATUS_LINES.clear()
        phrase = HTTPStatus(status).phrase
        line = _STATUS_LINES[key] = f"HTTP/{key[0]}.{key[1]} {status} {phrase}\r\n".encode()
    return line


class PreparedAnswer(web.StreamResponse):
    """An aiohttp response with an empty body whose headers were serialized beforehand.

    ``prepare`` writes status line, ``Date``, the connection header HTTP asks for, and the
    prepared block in one piece through the request's own stream writer (which applies
    back-pressure), instead of building a header map and serializing it per request.
    """

    def __init__(self, status: int, block: bytes) -> None:
        super().__init__(status=status)
        self._block = block

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        keep_alive = request.keep_alive
        self._keep_alive = keep_alive
        version = request.version
        if keep_alive and version == HttpVersion10:
            connection = b"Connection: keep-alive\r\n"
        elif not keep_alive and version == HttpVersion11:
            connection = b"Connection: close\r\n"
        else:
            connection = b""
        writer = self._payload_writer = request._payload_writer  # as StreamResponse._start
        await writer.write(
            b"".join(
                (_status_line(version, self.status), _DATE.line(), connection, self._block, b"\r\n")
            )
        )
        return writer


def denial(reason: Reason) -> PreparedAnswer:
    return PreparedAnswer(AUTH_STATUS[reason], _DENIALS[reason])


def limited_allow(blocks: AllowBlocks, limit: int, remaining: int, reset: int) -> PreparedAnswer:
    """An allow of a rate-limited token: its counts, and never reusable by nginx's
    micro-cache (an answer served from it would not be counted)."""
    return PreparedAnswer(200, blocks.head + _limit_fields(limit, remaining, reset) + _NOT_REUSABLE)


def rate_limited(limit: int, reset: int, retry_after: int) -> PreparedAnswer:
    """403 ``rate_limited`` with ``Retry-After`` (whole seconds, at least 1), which the
    shipped nginx snippets turn into a 429 for the client."""
    counts = _limit_fields(limit, 0, reset)
    retry = b"Retry-After: %d\r\n" % max(1, retry_after)
    return PreparedAnswer(403, _RATE_LIMITED_HEAD + retry + counts + _NEVER_STORED)


def internal_error() -> PreparedAnswer:
    """A bug must not become an allow: 503 makes nginx fail closed (500)."""
    return PreparedAnswer(503, _INTERNAL_ERROR)
