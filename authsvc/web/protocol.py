"""HTTP servers that never echo a malformed request back.

aiohttp answers a request it cannot parse (an over-long line or header, a bad method)
with a 400 whose body, and whose logged traceback, repeat the first bytes of the
offending line — which may be an ``Authorization: Bearer`` header. These subclasses
answer with a fixed body (plain text on the auth listener, the error shape on the admin
listener) and log only the kind of error.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from authsvc.rules.tokens import redact_secrets

log = logging.getLogger("authsvc.http")

#: Sent in place of aiohttp's default ``Server: Python/… aiohttp/…``: naming the software
#: and its version only helps an attacker pick an exploit. aiohttp fills the header in only
#: when a response has none, so an empty value leaves it empty.
ANONYMOUS: dict[str, str] = {"Server": ""}


async def anonymous_response(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: every response of an application names no server."""
    response.headers.update(ANONYMOUS)


class QuietRequestHandler(RequestHandler):
    """Parser errors answer the status phrase alone, as plain text."""

    def error_body(self, status: int) -> tuple[str, str]:
        """(body, content type) for a request that could not be parsed."""
        return f"{status} {HTTPStatus(status).phrase}\n", "text/plain"

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("internal error handling a request: %s", type(exc).__name__, exc_info=exc)
        else:
            log.warning("refused an unparseable request (%s, %s)", status, type(exc).__name__)
        body, content_type = self.error_body(status)
        response = web.Response(
            status=status,
            text=body,
            content_type=content_type,
            headers={"Cache-Control": "no-store", **ANONYMOUS},
        )
        response.force_close()
        return response


class QuietJsonRequestHandler(QuietRequestHandler):
    """Parser errors answer in the admin API's error shape."""

    def error_body(self, status: int) -> tuple[str, str]:
        code = "invalid_request" if status < 500 else "internal_error"
        message = (
            "The request line or headers could not be read (malformed or too long)."
            if status < 500
            else "An internal error occurred; see the logs."
        )
        return json.dumps({"error": {"code": code, "message": message}}), "application/json"


class QuietServer(web.Server):
    """``web.Server`` whose connections use a quiet request handler."""

    handler_class: type[QuietRequestHandler] = QuietRequestHandler

    def __call__(self) -> RequestHandler:
        return self.handler_class(self, loop=self._loop, **self._kwargs)


class QuietJsonServer(QuietServer):
    handler_class = QuietJsonRequestHandler


class AdminAccessLogger(AbstractAccessLogger):
    """One line per admin request: client, method, path without its query string (where
    a careless client might put a token), status, size, duration. No Referer or
    User-Agent: they are the client's to fill with anything. A secret pasted into the
    path itself (``/admin/v1/tokens/authsvc_…``) is redacted (SECURITY 34)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote,
            request.method,
            redact_secrets(request.path),
            response.status,
            response.body_length,
            time * 1000,
        )


class QuietAppRunner(web.AppRunner):
    """``web.AppRunner`` serving its application through a :class:`QuietJsonServer`, with
    :class:`AdminAccessLogger` as its access log."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("access_log_class", AdminAccessLogger)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        # Let aiohttp run the application's start-up and build its server, then serve the
        # same handler, request factory and options through the quiet subclass.
        server = await super()._make_server()
        return QuietJsonServer(
            server.request_handler,
            request_factory=server.request_factory,
            loop=server._loop,
            **server._kwargs,
        )
