"""The admin API under ``/admin/v1/`` (docs/admin-api.md): thin handlers over TokenService."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Set
from typing import Any, Literal, cast

from aiohttp import web
from multidict import MultiDictProxy

from authsvc.rules.decision import Reason, admin_access
from authsvc.rules.durations import parse_duration
from authsvc.rules.request import Rejected, client_ip
from authsvc.rules.tokens import TokenRecord, is_token_id
from authsvc.service.runtime import Runtime
from authsvc.service.token_view import token_object
from authsvc.store import KEEP, ListQuery, StatusBasis, TokenStatus
from authsvc.web.auth import bearer_secret, peer_address
from authsvc.web.errors import ApiError
from authsvc.web.keys import RUNTIME

MAX_BODY = 64 * 1024
MAX_LIMIT = 500
_CREATE_FIELDS = {"name", "permissions", "expires_in", "ip_filter", "rate_limit"}
_PATCH_FIELDS = {"permissions", "rate_limit"}
_ROTATE_FIELDS = {"grace"}
_STATUSES = ("active", "expired", "blocked")
_LIST_PARAMS = {"name", "sort", "order", "limit", "offset", "status", "expires_within"}


def token_json(record: TokenRecord, runtime: Runtime) -> dict[str, Any]:
    return token_object(record, runtime.live.current.policy, runtime.clock())


def no_store(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


async def authorize(request: web.Request, *, write: bool) -> tuple[TokenRecord, str]:
    """(the calling token's record, client address) of an admin token allowed to make
    this call; the record is the actor that TokenService bounds (what it may hand on)."""
    runtime = request.app[RUNTIME]
    config = runtime.live.current
    peer = peer_address(request)
    ip = client_ip(request.headers.get("X-Real-IP"), peer, config.admin_trusted_proxies)
    if isinstance(ip, Rejected):
        raise ApiError("forbidden", ip.detail)
    secret = bearer_secret(request)
    if isinstance(secret, Reason):
        raise ApiError("unauthorized", "An admin token is required: Authorization: Bearer <token>.")
    # the same bounded lookup as /auth: a flood of made-up admin tokens costs the store
    # no more than one of made-up API tokens
    token_digest = runtime.service.digest(secret)
    record = await runtime.lookups.resolve(token_digest, runtime.clock())
    if record is None:
        raise ApiError("unauthorized", "The supplied authentication is invalid.")
    reason = admin_access(record, ip, config, runtime.clock(), write=write)
    if reason is Reason.TOKENS_DISABLED:
        # Every token is refused, admin tokens included; say why (docs/admin-api.md: 403
        # tokens_disabled) rather than a bare 401 that would send the operator looking
        # for a bad token.
        raise ApiError("tokens_disabled", "The security policy has switched tokens off.")
    if reason is Reason.EXPIRED:
        raise ApiError("unauthorized", "The admin token has expired.")
    if reason is Reason.IP_NOT_ALLOWED:
        raise ApiError("forbidden", "The admin token's IP filter does not accept this address.")
    if reason is not Reason.OK:
        needed = "ManageOrganizationTokens" if write else "ViewOrganizationTokens"
        raise ApiError("forbidden", f"The admin token lacks the {needed} permission.")
    return record, str(ip)


async def read_object(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object body, with only ``allowed`` keys; hostile bodies become 4xx."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError("body_too_large", "The request body is larger than 64 KiB.")
    raw = await request.read()  # client_max_size also stops bodies without a length
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError("invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "The request body must be a JSON object.")
    try:
        # JSON may escape lone surrogates ("\ud800"), which are not text: nothing
        # downstream (the store, logs, headers) can encode them.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            "invalid_json", "The request body holds an unpaired surrogate escape, not text."
        ) from None
    except RecursionError:
        raise ApiError("invalid_json", "The request body is nested too deeply.") from None
    unknown = sorted(set(body) - allowed)
    if unknown:
        shown = ", ".join(repr(key[:40]) for key in unknown[:5])
        raise ApiError(
            "unknown_field",
            f"Unknown field(s) {shown}; allowed: {sorted(allowed)}.",
            field=at_fault(unknown),
        )
    return body


def at_fault(names: list[str]) -> str | None:
    """The input at fault when there is exactly one (cut as messages cut echoed input),
    else None: several bad keys or parameters are no single input to point at."""
    return names[0][:40] if len(names) == 1 else None


def _string(body: Mapping[str, Any], key: str, *, nullable: bool) -> str | None:
    value = body.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        kind = "a string or null" if nullable else "a string"
        raise ApiError("invalid_field", f"{key!r} must be {kind}.", field=key)
    return value


def _permissions(body: Mapping[str, Any]) -> list[str]:
    value = body.get("permissions")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(
            "invalid_field",
            "'permissions' must be a list of permission names.",
            field="permissions",
        )
    return cast(list[str], value)


def query_params(request: web.Request, allowed: Set[str], *, hint: str = "") -> MultiDictProxy[str]:
    """The query's parameters, each one known and given once (400 ``invalid_query``
    otherwise, naming the one at fault); ``hint`` ends the message about unknown ones."""
    params = request.rel_url.query
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError(
            "invalid_query",
            f"Unknown query parameter(s): {', '.join(unknown)[:200]}{hint}.",
            field=at_fault(unknown),
        )
    repeated = sorted(key for key in set(params) if len(params.getall(key)) > 1)
    if repeated:
        # ?limit=1&limit=500 means different things to different readers: refuse it.
        raise ApiError(
            "invalid_query",
            f"Repeated query parameter(s): {', '.join(repeated)}.",
            field=at_fault(repeated),
        )
    return params


def _list_query(request: web.Request, basis: StatusBasis) -> ListQuery:
    params = query_params(request, _LIST_PARAMS)
    sort = params.get("sort", "name")
    order = params.get("order", "asc")
    if sort not in ("name", "expires_at"):
        raise ApiError("invalid_query", "sort must be name or expires_at.", field="sort")
    if order not in ("asc", "desc"):
        raise ApiError("invalid_query", "order must be asc or desc.", field="order")
    limit = _int_param(params.get("limit", "50"), "limit", 1, MAX_LIMIT)
    offset = _int_param(params.get("offset", "0"), "offset", 0, 10**9)
    name = params.get("name") or None
    if name is not None and len(name) > 100:
        raise ApiError("invalid_query", "name is at most 100 characters.", field="name")
    if name is not None and not _searchable(name):
        # No token name holds these (policy.check_name), and the stores would read them
        # differently (SQLite stops at NUL): refuse rather than answer inconsistently.
        raise ApiError(
            "invalid_query", "name may not contain control or surrogate characters.", field="name"
        )
    status = params.get("status") or None  # empty: no filter, as for name
    if status is not None and status not in _STATUSES:
        raise ApiError(
            "invalid_query", "status must be active, expired or blocked.", field="status"
        )
    return ListQuery(
        name_contains=name,
        sort=cast(Literal["name", "expires_at"], sort),
        order=cast(Literal["asc", "desc"], order),
        limit=limit,
        offset=offset,
        status=cast(TokenStatus | None, status),
        expires_within=_expires_within(params.get("expires_within") or None),
        basis=basis,
    )


def _expires_within(text: str | None) -> int | None:
    """``expires_within``: a duration in m, h or d (like ``expires_in``), or None."""
    if text is None:
        return None
    try:
        return parse_duration(text, units="mhd")
    except ValueError as error:
        raise ApiError(
            "invalid_query", f"expires_within: {error}.", field="expires_within"
        ) from None


def token_id_of(request: web.Request) -> str:
    """The path's token id; anything not shaped like one is a 404 that echoes nothing
    (a secret pasted where the id belongs must not come back in the error body)."""
    token_id = request.match_info["token_id"]
    if not is_token_id(token_id):
        raise ApiError("not_found", "No token has this id (ids look like tok_0123456789abcdef).")
    return token_id


def _searchable(text: str) -> bool:
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def _int_param(text: str, key: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10 or not low <= int(text) <= high:
        raise ApiError(
            "invalid_query", f"{key} must be a whole number from {low} to {high}.", field=key
        )
    return int(text)


async def create_token(request: web.Request) -> web.Response:
    actor, client = await authorize(request, write=True)
    body = await read_object(request, _CREATE_FIELDS)
    runtime = request.app[RUNTIME]
    record, secret = await runtime.service.create(
        actor=actor,
        client=client,
        name=cast(str, _string(body, "name", nullable=False)),
        permissions=_permissions(body),
        expires_in=_string(body, "expires_in", nullable=True),
        ip_filter=_string(body, "ip_filter", nullable=True),
        rate_limit=body.get("rate_limit"),  # the policy's rules judge its type too
    )
    return no_store({**token_json(record, runtime), "token": secret}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    await authorize(request, write=False)
    runtime = request.app[RUNTIME]
    # One moment and one policy for the filter and the objects shown: a token is never
    # listed under status=active and shown as expired in the same answer.
    policy, now = runtime.live.current.policy, runtime.clock()
    query = _list_query(request, StatusBasis.of(policy, now))
    total, records = await runtime.service.list_tokens(query)
    tokens = [token_object(record, policy, now) for record in records]
    return no_store({"total": total, "tokens": tokens})


async def get_self(request: web.Request) -> web.Response:
    """The calling token's own object: the page offers only what this token can grant."""
    record, _ = await authorize(request, write=False)
    return no_store(token_json(record, request.app[RUNTIME]))


async def get_token(request: web.Request) -> web.Response:
    await authorize(request, write=False)
    runtime = request.app[RUNTIME]
    record = await runtime.service.get(token_id_of(request))
    return no_store(token_json(record, runtime))


async def patch_token(request: web.Request) -> web.Response:
    actor, client = await authorize(request, write=True)
    body = await read_object(request, _PATCH_FIELDS)
    runtime = request.app[RUNTIME]
    if not body:
        raise ApiError(
            "invalid_field",
            "Give 'permissions', 'rate_limit' or both to change.",
        )
    record = await runtime.service.update(
        actor=actor,
        client=client,
        token_id=token_id_of(request),
        permissions=_permissions(body) if "permissions" in body else None,
        rate_limit=body.get("rate_limit", KEEP),
    )
    return no_store(token_json(record, runtime))


async def rotate_token(request: web.Request) -> web.Response:
    """Rotate; the body is optional: ``{"grace": "1h"}`` keeps the old secret for a while."""
    actor, client = await authorize(request, write=True)
    body = await read_object(request, _ROTATE_FIELDS) if request.body_exists else {}
    runtime = request.app[RUNTIME]
    record, secret = await runtime.service.rotate(
        actor=actor,
        client=client,
        token_id=token_id_of(request),
        grace=_string(body, "grace", nullable=True),
    )
    return no_store({**token_json(record, runtime), "token": secret})


async def delete_token(request: web.Request) -> web.Response:
    actor, client = await authorize(request, write=True)
    await request.app[RUNTIME].service.delete(
        actor=actor, client=client, token_id=token_id_of(request)
    )
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def list_permissions(request: web.Request) -> web.Response:
    await authorize(request, write=False)
    catalog = request.app[RUNTIME].live.current.permissions
    return no_store(
        [
            {
                "name": p.name,
                "description": p.description,
                "endpoints": [e.text for e in p.endpoints],
            }
            for p in sorted(catalog.values(), key=lambda p: p.name)
        ]
    )


async def list_ip_filters(request: web.Request) -> web.Response:
    await authorize(request, write=False)
    filters = request.app[RUNTIME].live.current.ip_filters
    return no_store(
        [
            {"name": f.name, "rules": list(f.rules)}
            for f in sorted(filters.values(), key=lambda f: f.name)
        ]
    )


async def get_policy(request: web.Request) -> web.Response:
    await authorize(request, write=False)
    policy = request.app[RUNTIME].live.current.policy
    return no_store(
        {
            "tokens_enabled": policy.tokens_enabled,
            "max_lifetime": policy.max_lifetime_text,
            "max_lifetime_seconds": policy.max_lifetime,
            "enforce_ip_filter": policy.enforce_ip_filter,
            "max_rate_limit": None if policy.max_rate_limit is None else policy.max_rate_limit.text,
            "allow_permission_updates": policy.allow_permission_updates,
        }
    )


def add_admin_routes(router: web.UrlDispatcher) -> None:
    prefix = "/admin/v1"
    router.add_post(f"{prefix}/tokens", create_token)
    router.add_get(f"{prefix}/tokens", list_tokens, allow_head=False)
    router.add_get(f"{prefix}/tokens/{{token_id}}", get_token, allow_head=False)
    router.add_patch(f"{prefix}/tokens/{{token_id}}", patch_token)
    router.add_post(f"{prefix}/tokens/{{token_id}}/rotate", rotate_token)
    from authsvc.web.admin_revoke import revoke_leaked  # noqa: PLC0415 - it imports us

    router.add_post(f"{prefix}/tokens/revoke", revoke_leaked)  # needs no admin token
    router.add_delete(f"{prefix}/tokens/{{token_id}}", delete_token)
    router.add_get(f"{prefix}/permissions", list_permissions, allow_head=False)
    router.add_get(f"{prefix}/ip-filters", list_ip_filters, allow_head=False)
    router.add_get(f"{prefix}/policy", get_policy, allow_head=False)
    router.add_get(f"{prefix}/self", get_self, allow_head=False)
    from authsvc.web.admin_explain import add_explain_routes  # noqa: PLC0415 - it imports us

    add_explain_routes(router)
    from authsvc.web.admin_usage import add_usage_routes  # noqa: PLC0415 - it imports us

    add_usage_routes(router)
