"""``GET /auth``: the nginx ``auth_request`` endpoint — the hot path.

One straight line: token shape (no I/O) → request description (pure) → record cache →
store only on a miss → pure decision → one precomputed response per outcome. A cache hit
awaits nothing. Every outcome is 200, 401, 403 or 503: nginx turns anything else into 500.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from aiohttp import web

from authsvc.rules.decision import Reason, decide, is_expired
from authsvc.rules.request import Rejected, describe
from authsvc.rules.tokens import TokenRecord, is_well_formed
from authsvc.service.runtime import Runtime
from authsvc.store import StoreUnavailable
from authsvc.web.protocol import ANONYMOUS, QuietServer

log = logging.getLogger("authsvc.auth")

INVALID = "The supplied authentication is invalid"
IP_DENIED = "Tokens can only be used from IP addresses accepted by the IP filter set for them"
MAX_HEADER_FIELD = 32 * 1024  # an 8 KiB junk token must get its 401, not a parser 400

_STATUS: dict[Reason, int] = {
    Reason.OK: 200,
    Reason.MISSING_TOKEN: 401,
    Reason.MALFORMED_TOKEN: 401,
    Reason.INVALID_TOKEN: 401,
    Reason.EXPIRED: 401,
    Reason.TOKENS_DISABLED: 401,
    Reason.IP_NOT_ALLOWED: 403,
    Reason.PERMISSION_DENIED: 403,
    Reason.BAD_REQUEST: 403,
    Reason.BAD_PATH: 403,
    Reason.STORE_UNAVAILABLE: 503,
}
_BODY: dict[Reason, str] = {
    Reason.OK: "ok",
    Reason.MISSING_TOKEN: INVALID,
    Reason.MALFORMED_TOKEN: INVALID,
    Reason.INVALID_TOKEN: INVALID,
    Reason.EXPIRED: INVALID,
    Reason.TOKENS_DISABLED: INVALID,
    Reason.IP_NOT_ALLOWED: IP_DENIED,
    Reason.PERMISSION_DENIED: "The token does not grant this request",
    Reason.BAD_REQUEST: "The request description from the proxy is unusable",
    Reason.BAD_PATH: "The request path is not accepted",
    Reason.STORE_UNAVAILABLE: "The token store is unavailable",
}


#: Seconds an allow may be reused by nginx's optional micro-cache (deploy/nginx/microcache):
#: nginx honours X-Accel-Expires over Cache-Control, and only where proxy_cache is on.
MICROCACHE_SECONDS = 1
_REUSABLE = str(MICROCACHE_SECONDS)


def _denial_headers(reason: Reason) -> dict[str, str]:
    # Denials are never cached: X-Accel-Expires 0 whatever the nginx configuration says.
    headers = {
        "X-Auth-Reason": reason.value,
        "Cache-Control": "no-store",
        "X-Accel-Expires": "0",
        **ANONYMOUS,
    }
    if reason is Reason.MISSING_TOKEN:
        headers["WWW-Authenticate"] = 'Bearer realm="authsvc"'
    elif _STATUS[reason] == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="authsvc", error="invalid_token"'
    return headers


_ALLOW = {"Allow": "GET, HEAD", **ANONYMOUS}
_DENIAL_HEADERS: dict[Reason, dict[str, str]] = {
    reason: _denial_headers(reason) for reason in Reason if reason is not Reason.OK
}


@lru_cache(maxsize=8192)  # names repeat on every request of a token; bounded
def header_safe(text: str) -> str:
    """Token names may hold any printable Unicode; header values must be ASCII, so
    everything else (and ``%``) is percent-encoded as UTF-8."""
    return quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")


def denial(reason: Reason) -> web.Response:
    return web.Response(status=_STATUS[reason], text=_BODY[reason], headers=_DENIAL_HEADERS[reason])


def bearer_secret(request: web.BaseRequest) -> str | Reason:
    """The presented secret, or why there is none. Only one ``Authorization: Bearer``
    header counts; query strings and cookies are never looked at."""
    values = request.headers.getall("Authorization", ())
    if not values:
        return Reason.MISSING_TOKEN
    if len(values) > 1:
        return Reason.MALFORMED_TOKEN
    scheme, _, secret = values[0].partition(" ")
    secret = secret.strip(" ")
    if scheme.lower() != "bearer" or not is_well_formed(secret):
        return Reason.MALFORMED_TOKEN
    return secret


def peer_address(request: web.BaseRequest) -> str | None:
    """The TCP peer's address; None for a unix-socket peer."""
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return None


class AuthHandler:
    """The ``/auth`` handler; the live configuration is read once per request."""

    def __init__(self, runtime: Runtime) -> None:
        # Each part is bound once here: the hot path reaches through nothing.
        self._live = runtime.live
        self._service = runtime.service
        self._lookups = runtime.lookups
        self._cache = runtime.cache
        self._metrics = runtime.metrics
        self._usage = runtime.usage
        self._clock = runtime.clock

    async def handle(self, request: web.BaseRequest) -> web.Response:
        """The whole listener: ``GET``/``HEAD /auth``, and short refusals for anything else."""
        if request.path != "/auth":
            return web.Response(
                status=404, text="not found: authsvc answers GET /auth only", headers=ANONYMOUS
            )
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="method not allowed", headers=_ALLOW)
        started = time.perf_counter()
        try:
            reason, record, reusable = await self._evaluate(request)
        except Exception:
            # A bug must not become an allow. 503 makes nginx fail closed (500).
            log.exception("unexpected error while evaluating /auth")
            return web.Response(
                status=503,
                text="internal error",
                headers={"X-Auth-Reason": "internal_error", **ANONYMOUS},
            )
        self._metrics.decision_by_reason[reason].inc()
        self._metrics.decision_latency.observe(time.perf_counter() - started)
        if reason is not Reason.OK or record is None:
            return denial(reason)
        return web.Response(
            status=200,
            text="ok",
            headers={
                "X-Auth-Reason": "ok",
                "X-Auth-Token-Id": record.id,
                "X-Auth-Token-Name": header_safe(record.name),
                "Cache-Control": "no-store",
                "X-Accel-Expires": _REUSABLE if reusable else "0",
                "Server": "",
            },
        )

    async def _evaluate(self, request: web.BaseRequest) -> tuple[Reason, TokenRecord | None, bool]:
        """(reason, the record if one was found, whether an allow may be reused for
        MICROCACHE_SECONDS: only when the token stays valid that long)."""
        config = self._live.current
        secret = bearer_secret(request)
        if isinstance(secret, Reason):
            return secret, None, False
        headers = request.headers
        described = describe(
            headers.get("X-Original-Method"),
            headers.get("X-Original-URI"),
            headers.get("X-Real-IP"),
            peer_address(request),
            config.trusted_proxies,
        )
        if isinstance(described, Rejected):
            return Reason(described.reason), None, False
        token_digest = self._service.digest(secret)
        record = self._cache.get(token_digest)
        if record is None:
            self._metrics.cache_misses.inc()
            try:
                record = await self._lookups.find(token_digest)
            except StoreUnavailable as error:
                self._metrics.store_errors.labels(operation="lookup").inc()
                log.warning("store unavailable for a token lookup: %s", error)
                return Reason.STORE_UNAVAILABLE, None, False
            if record is None:
                return Reason.INVALID_TOKEN, None, False
        else:
            self._metrics.cache_hits.inc()
        now = self._clock()
        reason = decide(record, described, config, now)
        if reason is not Reason.OK:
            return reason, record, False
        self._usage.note(record.id, now, described.client_ip)
        # nginx counts X-Accel-Expires in whole seconds from when it stores the answer,
        # so a 1 s hint can be reused for up to 2 s: the token must stay valid that long.
        later = now + 2 * MICROCACHE_SECONDS
        return reason, record, not is_expired(record, config.policy, later)


#: Options of the auth listener's low-level server: a larger header limit than aiohttp's
#: 8190 bytes, so an 8 KiB junk token gets its 401 rather than a parser 400 (which nginx
#: would turn into a 500), and no access log (counts go to /metrics).
SERVER_OPTIONS: dict[str, Any] = {"max_field_size": MAX_HEADER_FIELD, "access_log": None}


def create_auth_server(runtime: Runtime) -> web.Server:
    """The auth listener: aiohttp's low-level server around one handler — no application,
    router, middleware or signals on the hot path."""
    return QuietServer(AuthHandler(runtime).handle, **SERVER_OPTIONS)
