"""``POST /admin/v1/explain`` and ``POST /admin/v1/introspect`` (docs/admin-api.md): why
``/auth`` would answer what it answers, and RFC 7662 introspection for other gateways.

Both need ``ViewOrganizationTokens`` (``ManageOrganizationTokens`` includes it) and count
nothing: a token is found in this instance's record cache, else read from the store
directly, without the lookup budget of ``/auth``, without caching what was read, and
without usage or decision metrics; explain only looks at a rate-limited token's bucket,
taking nothing from it. A secret sent to either call is never echoed: not in answers,
errors or logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from authsvc.config import Config
from authsvc.rules.decision import effective_rate_limit
from authsvc.rules.explain import (
    STORE_DOWN,
    UNKNOWN_SECRET,
    Bucket,
    TokenFinding,
    TokenFound,
    explain,
    introspection,
    secret_problem,
)
from authsvc.rules.ipfilter import IPAddress, parse_client_ip
from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from authsvc.store import StoreUnavailable
from authsvc.web.admin import MAX_BODY, authorize, no_store, read_object
from authsvc.web.errors import ApiError
from authsvc.web.keys import RUNTIME

EXPLAIN_FIELDS = frozenset({"token_id", "token", "method", "uri", "ip"})
#: ``token_type_hint`` is RFC 7662's optional hint; there is one kind of token, so it is
#: accepted and ignored, as the RFC allows.
INTROSPECT_FIELDS = frozenset({"token", "client_ip", "token_type_hint"})
FORM = "application/x-www-form-urlencoded"
_MAX_FORM_FIELDS = 10


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ApiError("invalid_field", f"{key!r} must be a string.", field=key)
    return value


def _address(text: str | None, key: str) -> IPAddress | None:
    """The client address as ``/auth`` reads ``X-Real-IP`` (an IPv4-mapped address is its
    IPv4 address, a zone id is dropped); None when not given."""
    if text is None:
        return None
    try:
        return parse_client_ip(text)
    except ValueError:
        raise ApiError(
            "invalid_ip", f"{key!r} is not an IPv4 or IPv6 address.", field=key
        ) from None


async def _by_secret(runtime: Runtime, secret: str) -> TokenRecord | None:
    """The record of a well-formed secret as ``/auth`` would find it (this instance's
    cache, else the store), but without spending the lookup budget and without caching
    the result: asking must change nothing. Raises StoreUnavailable."""
    token_digest = runtime.service.digest(secret)
    record = runtime.cache.get(token_digest) or await runtime.store.get_by_digest(token_digest)
    if record is not None and record.via_previous and runtime.service.graces.ended(record):
        return None  # a grace this instance ended; the store may not have committed it yet
    # a previous secret whose grace has run out is returned: explain() says so (401)
    return record


def _subject(body: Mapping[str, Any]) -> tuple[str, str]:
    """``("token_id", id)`` or ``("token", secret)``: exactly one of them, a string."""
    given = [key for key in ("token_id", "token") if key in body]
    if len(given) != 1:
        raise ApiError("invalid_field", "Give exactly one of 'token_id' and 'token'.")
    key = given[0]
    return key, _text(body, key)


async def _finding(runtime: Runtime, key: str, value: str) -> TokenFinding:
    """The token named by id (an unknown one is 404 not_found), or by secret (one that
    names no live token explains as /auth would answer it)."""
    if key == "token_id":
        # not_found for anything not shaped like an id, echoing no secret pasted here
        return TokenFound(await runtime.service.get(value), "found by its id")
    secret = value.strip()  # white space around a pasted secret is noise
    problem = secret_problem(secret)
    if problem is not None:
        return problem
    try:
        record = await _by_secret(runtime, secret)
    except StoreUnavailable:
        return STORE_DOWN  # as /auth answers: 503 store_unavailable
    return UNKNOWN_SECRET if record is None else TokenFound(record, "found by its secret")


async def explain_access(request: web.Request) -> web.Response:
    """``POST /admin/v1/explain``: what ``/auth`` would answer now, and why."""
    await authorize(request, write=False)
    body = await read_object(request, set(EXPLAIN_FIELDS))
    key, value = _subject(body)
    method = _text(body, "method")
    uri = _text(body, "uri")
    ip = body.get("ip")
    if ip is not None and not isinstance(ip, str):
        raise ApiError("invalid_field", "'ip' must be a string or null.", field="ip")
    client_ip = _address(ip, "ip")
    runtime = request.app[RUNTIME]
    finding = await _finding(runtime, key, value)
    config = runtime.live.current
    explanation = explain(
        finding,
        method=method,
        uri=uri,
        client_ip=client_ip,
        config=config,
        now=runtime.clock(),
        bucket=await _bucket(runtime, finding, config),
    )
    return no_store(explanation.as_json())


async def _bucket(runtime: Runtime, finding: TokenFinding, config: Config) -> Bucket | None:
    """The token's rate-limit bucket as this instance's limiter sees it, nothing taken
    (explaining is not a request: SPEC §11); None without a limit."""
    if not isinstance(finding, TokenFound):
        return None
    limit = effective_rate_limit(finding.record, config.policy)
    if limit is None:
        return None
    seen = await runtime.limiter.peek(finding.record.id, limit)
    return Bucket(seen.remaining if seen.allowed else 0, seen.retry_after)


async def read_form(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """The ``application/x-www-form-urlencoded`` body as one value per key; only ``allowed``
    keys, none repeated. Hostile bodies become 4xx."""
    if request.content_type != FORM:
        raise ApiError("unsupported_media_type", f"The body must be {FORM}.")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError("body_too_large", "The request body is larger than 64 KiB.")
    raw = await request.read()  # client_max_size also stops bodies without a length
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(raw),
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError included: not ASCII, or escapes not UTF-8
        raise ApiError(
            "invalid_form", f"The body is not {FORM} text (UTF-8 escapes, key=value pairs)."
        ) from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise ApiError(
                "unknown_field",
                f"Unknown field {key[:40]!r}; allowed: {sorted(allowed)}.",
                field=key[:40],
            )
        if key in form:
            raise ApiError("invalid_field", f"{key!r} is given more than once.", field=key)
        form[key] = value
    return form


async def introspect(request: web.Request) -> web.Response:
    """``POST /admin/v1/introspect`` (RFC 7662): ``{"active": false}`` for anything not
    usable now; a token with an effective IP filter only with a ``client_ip`` it passes."""
    await authorize(request, write=False)
    form = await read_form(request, INTROSPECT_FIELDS)
    if "token" not in form:
        raise ApiError("invalid_field", "'token' is required.", field="token")
    client_ip = _address(form.get("client_ip"), "client_ip")
    runtime = request.app[RUNTIME]
    config = runtime.live.current
    secret = form["token"].strip()
    record = None
    if secret_problem(secret) is None:
        record = await _by_secret(runtime, secret)  # an outage is 503: fail closed
    return no_store(introspection(record, client_ip, config, runtime.clock()))


def add_explain_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/admin/v1/explain", explain_access)
    router.add_post("/admin/v1/introspect", introspect)
