"""``GET /auth``: the nginx ``auth_request`` endpoint — the hot path.

One straight line: token shape (no I/O) → request description (pure) → record cache →
store only on a miss → pure decision → one precomputed response per outcome. A cache hit
awaits nothing. Every outcome is 200, 401, 403 or 503: nginx turns anything else into 500.

During a rotation's grace (a record with ``grace_ends_at``) both secrets work: the previous
one until the grace ends, and its allows say when in ``X-Auth-Token-Expires``; the first
allow of the new one ends the grace (:mod:`authsvc.service.grace`: at once here, with the
store write started off the request path).

A token with a rate limit (its own, or the policy's maximum) takes from its bucket after
every other rule has allowed the request (``authsvc.service.ratelimit``: no I/O for the
instance scope, a Redis round trip only now and then for the cluster scope); its allows
carry ``X-RateLimit-*`` and are never reusable by nginx's micro-cache. Usage per token and
hour is a dict increment here, written to the store in batches (``service.usage``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from authsvc.config import Config
from authsvc.rules.decision import (
    Reason,
    decide,
    effective_expiry,
    effective_rate_limit,
    is_expired,
)
from authsvc.rules.request import Described, Rejected, describe
from authsvc.rules.tokens import (
    TokenRecord,
    has_token_shape,
    has_valid_checksum,
    previous_secret_ends_at,
    secret_ended,
)
from authsvc.service.runtime import Runtime
from authsvc.store import USAGE_ALLOWED, USAGE_DENIALS, StoreUnavailable
from authsvc.web.answers import (
    MICROCACHE_SECONDS,
    AllowBlocks,
    PreparedAnswer,
    denial,
    internal_error,
    limited_allow,
    rate_limited,
)
from authsvc.web.protocol import ANONYMOUS, QuietServer

log = logging.getLogger("authsvc.auth")

MAX_HEADER_FIELD = 32 * 1024  # an 8 KiB junk token must get its 401, not a parser 400

_ALLOW = {"Allow": "GET, HEAD", **ANONYMOUS}

#: Tokens whose allow headers are kept ready (about 0.7 KB each). Far fewer than the record
#: cache holds: building them costs ~4 µs, so only tokens in steady use need them kept, and
#: 100,000 of them would cost ~80 MB (measured: the RSS target of docs/performance.md).
MAX_PREPARED_ALLOWS = 4096

#: Denials of an identified token, which its usage counts (SPEC §12); the others (no or an
#: unknown token, a bad request) belong to no token.
_TOKEN_DENIALS = frozenset(map(Reason, USAGE_DENIALS))


def presented_secret(request: web.BaseRequest) -> str | Reason:
    """The presented token-shaped secret, or why there is none, its checksum unchecked.
    Only one ``Authorization: Bearer`` header counts; query strings and cookies are never
    looked at."""
    values = request.headers.getall("Authorization", ())
    if not values:
        return Reason.MISSING_TOKEN
    if len(values) > 1:
        return Reason.MALFORMED_TOKEN
    scheme, _, secret = values[0].partition(" ")
    secret = secret.strip(" ")
    if scheme.lower() != "bearer" or not has_token_shape(secret):
        return Reason.MALFORMED_TOKEN
    return secret


def bearer_secret(request: web.BaseRequest) -> str | Reason:
    """The presented secret, or why there is none; a wrong checksum is malformed."""
    secret = presented_secret(request)
    if isinstance(secret, Reason) or has_valid_checksum(secret):
        return secret
    return Reason.MALFORMED_TOKEN


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
        self._counts = runtime.metrics.hot
        self._usage = runtime.usage
        self._graces = runtime.service.graces
        self._limiter = runtime.limiter
        self._clock = runtime.clock
        # token id → (the record and configuration they were built from, the blocks).
        # A changed record or a reload is a new object, so it never meets stale headers.
        # Allows by a previous secret carry another expiry: they are kept apart.
        self._allows: dict[str, tuple[TokenRecord, Config, AllowBlocks]] = {}
        self._previous_allows: dict[str, tuple[TokenRecord, Config, AllowBlocks]] = {}

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The whole listener: ``GET``/``HEAD /auth``, and short refusals for anything else."""
        if request.path != "/auth":
            return web.Response(
                status=404, text="not found: authsvc answers GET /auth only", headers=ANONYMOUS
            )
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="method not allowed", headers=_ALLOW)
        started = time.perf_counter()
        try:
            reason, answer = await self._evaluate(request)
        except Exception:
            log.exception("unexpected error while evaluating /auth")
            return internal_error()
        self._counts.decided(reason, time.perf_counter() - started)
        return answer

    async def _evaluate(self, request: web.BaseRequest) -> tuple[Reason, PreparedAnswer]:
        config = self._live.current
        secret = presented_secret(request)
        if isinstance(secret, Reason):
            return secret, denial(secret)
        # A malformed secret is refused before the request description is read (the order
        # of docs/auth-endpoint.md). Its checksum is computed only when the cache does not
        # know the secret: a cached record proves it was issued, and so well formed.
        token_digest = self._service.digest(secret)
        record = self._cache.get(token_digest)
        if record is None and not has_valid_checksum(secret):
            return Reason.MALFORMED_TOKEN, denial(Reason.MALFORMED_TOKEN)
        headers = request.headers
        described = describe(
            headers.get("X-Original-Method"),
            headers.get("X-Original-URI"),
            headers.get("X-Real-IP"),
            peer_address(request),
            config.trusted_proxies,
        )
        if isinstance(described, Rejected):
            reason = Reason(described.reason)
            return reason, denial(reason)
        if record is None:
            found = await self._lookup(token_digest)
            if isinstance(found, Reason):
                return found, denial(found)
            record = found
        else:
            self._counts.cache_hits += 1
        now = self._clock()
        if secret_ended(record, now):
            # a previous secret past its grace: as if unknown (and no token's usage)
            return Reason.INVALID_TOKEN, denial(Reason.INVALID_TOKEN)
        return await self._judge(record, token_digest, described, config, now)

    async def _judge(
        self,
        record: TokenRecord,
        token_digest: bytes,
        described: Described,
        config: Config,
        now: float,
    ) -> tuple[Reason, PreparedAnswer]:
        """The decision about an identified token, its rate limit, and its usage."""
        reason = decide(record, described, config, now)
        if reason is not Reason.OK:
            if reason in _TOKEN_DENIALS:
                self._usage.count(record.id, reason, now)
            return reason, denial(reason)
        limit = effective_rate_limit(record, config.policy)
        verdict = None
        if limit is not None:
            # Both secrets of a rotation share the token's bucket: it is keyed by the id.
            limiter = self._limiter
            verdict = limiter.try_take(record.id, limit) or await limiter.take(record.id, limit)
            if not verdict.allowed:
                self._usage.count(record.id, Reason.RATE_LIMITED, now)
                return Reason.RATE_LIMITED, rate_limited(
                    verdict.limit, verdict.reset, verdict.retry_after
                )
        self._usage.note(record.id, now, described.client_ip)
        self._usage.count(record.id, USAGE_ALLOWED, now)
        if verdict is None:
            return reason, self._allow(record, token_digest, config, now, described)
        self._first_use(record, token_digest, now, described)
        blocks = self._allow_blocks(record, config)  # never reusable: see limited_allow
        return reason, limited_allow(blocks, verdict.limit, verdict.remaining, verdict.reset)

    def _allow(
        self,
        record: TokenRecord,
        token_digest: bytes,
        config: Config,
        now: float,
        described: Described,
    ) -> PreparedAnswer:
        if record.grace_ends_at is not None:
            # During a rotation's grace. An allow by the previous secret says when that
            # secret stops, and nginx's micro-cache must not reuse it (the new secret's
            # first use may end it any moment).
            if record.via_previous:
                return PreparedAnswer(200, self._allow_blocks(record, config).not_reusable)
            self._first_use(record, token_digest, now, described)
        blocks = self._allow_blocks(record, config)
        # nginx counts X-Accel-Expires in whole seconds from when it stores the answer,
        # so a 1 s hint can be reused for up to 2 s: the token must stay valid that long.
        if is_expired(record, config.policy, now + 2 * MICROCACHE_SECONDS):
            return PreparedAnswer(200, blocks.not_reusable)
        return PreparedAnswer(200, blocks.reusable)

    def _first_use(
        self, record: TokenRecord, token_digest: bytes, now: float, described: Described
    ) -> None:
        """The new secret's first allow during a rotation's grace ends the grace."""
        grace = record.grace_ends_at
        if grace is not None and not record.via_previous and now < grace:
            self._graces.first_use(record, token_digest, str(described.client_ip))

    async def _lookup(self, token_digest: bytes) -> TokenRecord | Reason:
        """A cache miss of a well-formed secret with a usable request: ask the store."""
        self._counts.cache_misses += 1
        try:
            record = await self._lookups.find(token_digest)
        except StoreUnavailable as error:
            self._metrics.store_errors.labels(operation="lookup").inc()
            log.warning("store unavailable for a token lookup: %s", error)
            return Reason.STORE_UNAVAILABLE
        return Reason.INVALID_TOKEN if record is None else record

    def _allow_blocks(self, record: TokenRecord, config: Config) -> AllowBlocks:
        allows = self._previous_allows if record.via_previous else self._allows
        entry = allows.get(record.id)
        if entry is not None and entry[0] is record and entry[1] is config:
            return entry[2]
        expires = effective_expiry(record, config.policy)
        if record.via_previous:
            expires = previous_secret_ends_at(record, expires)
        blocks = AllowBlocks(record.id, record.name, expires)
        if len(allows) >= MAX_PREPARED_ALLOWS:
            allows.clear()  # the busy tokens come back at once and are rebuilt
        allows[record.id] = (record, config, blocks)
        return blocks


#: Options of the auth listener's low-level server: a larger header limit than aiohttp's
#: 8190 bytes, so an 8 KiB junk token gets its 401 rather than a parser 400 (which nginx
#: would turn into a 500), and no access log (counts go to /metrics).
SERVER_OPTIONS: dict[str, Any] = {"max_field_size": MAX_HEADER_FIELD, "access_log": None}


def create_auth_server(runtime: Runtime) -> web.Server:
    """The auth listener: aiohttp's low-level server around one handler — no application,
    router, middleware or signals on the hot path."""
    return QuietServer(AuthHandler(runtime).handle, **SERVER_OPTIONS)
