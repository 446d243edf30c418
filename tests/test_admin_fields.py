"""``field`` in the admin API's errors (SPEC §4): the one JSON body key or list query
parameter at fault, exactly, for every code that can name one; no ``field`` key at all
for errors about the whole request or about several inputs at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from authsvc.service.runtime import Runtime
from authsvc.web.admin import _CREATE_FIELDS, _LIST_PARAMS, _PATCH_FIELDS
from authsvc.web.errors import FIELD_CODES
from tests.admin_helpers import (
    ABSENT,
    TOKENS,
    UNKNOWN_ID,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    new_token,
    send,
)
from tests.factories import BASE
from tests.webapp import MANAGE, VIEW, Client, mint, use_config

CREATE = ("POST", TOKENS)
PATCH = ("PATCH", f"{TOKENS}/{{id}}")
LIST = "GET"
MAX_90D = {"max_lifetime": "90d"}
#: A permission that the catalog gains after the admin token was made, so it does not
#: hold it: asking for it exceeds the caller (delegation bounds).
UNHELD = "Auditor"
CATALOG = {
    **BASE["permissions"],
    UNHELD: {"description": "Read the audit trail", "endpoints": ["GET /api/v1/audit"]},
}

# (security_policy, method, path ("{id}": a Reader token), JSON body, status, code, field):
# at least one call per code that names a field, and per body key and list parameter.
FIELD_ERRORS = [
    pytest.param(
        {},
        "GET",
        f"{TOKENS}/{{id}}/usage?from=yesterday",
        ABSENT,
        422,
        "invalid_range",
        "from",
        id="usage-range",
    ),
    pytest.param({}, *CREATE, new_token("admin"), 409, "name_taken", "name", id="name-taken"),
    pytest.param({}, *CREATE, new_token(""), 422, "invalid_name", "name", id="invalid-name"),
    pytest.param(
        {},
        *CREATE,
        new_token(permissions=[]),
        422,
        "invalid_permissions",
        "permissions",
        id="no-perm",
    ),
    pytest.param(
        {},
        *CREATE,
        new_token(permissions=["Nope"]),
        422,
        "unknown_permission",
        "permissions",
        id="perm",
    ),
    pytest.param(
        {}, *CREATE, new_token(expires_in="30s"), 422, "invalid_expiry", "expires_in", id="expiry"
    ),
    pytest.param(
        MAX_90D, *CREATE, new_token(), 422, "expiry_required", "expires_in", id="expiry-required"
    ),
    pytest.param(
        MAX_90D,
        *CREATE,
        new_token(expires_in="91d"),
        422,
        "expiry_too_long",
        "expires_in",
        id="too-long",
    ),
    pytest.param(
        {"enforce_ip_filter": "localhost"},
        *CREATE,
        new_token(ip_filter="office"),
        422,
        "ip_filter_enforced",
        "ip_filter",
        id="filter-enforced",
    ),
    pytest.param(
        {}, *CREATE, new_token(ip_filter="nope"), 422, "unknown_ip_filter", "ip_filter", id="filter"
    ),
    pytest.param(
        {},
        *CREATE,
        new_token(permissions=[UNHELD]),
        403,
        "exceeds_caller",
        "permissions",
        id="perm-not-held",
    ),
    pytest.param(
        {}, *CREATE, {"permissions": ["Reader"]}, 422, "invalid_field", "name", id="name-missing"
    ),
    pytest.param(
        {},
        *CREATE,
        new_token(permissions="Reader"),
        422,
        "invalid_field",
        "permissions",
        id="perm-str",
    ),
    pytest.param(
        {},
        *CREATE,
        new_token(expires_in=30),
        422,
        "invalid_field",
        "expires_in",
        id="expiry-number",
    ),
    pytest.param(
        {},
        *CREATE,
        new_token(ip_filter=["office"]),
        422,
        "invalid_field",
        "ip_filter",
        id="filter-list",
    ),
    pytest.param(
        {}, *CREATE, {**new_token(), "nam": "x"}, 422, "unknown_field", "nam", id="unknown-key"
    ),
    pytest.param(
        {}, *CREATE, {**new_token(), "k" * 60: 1}, 422, "unknown_field", "k" * 40, id="long-key"
    ),
    pytest.param(
        {},
        *PATCH,
        {"permissions": ["Reader"], "name": "x"},
        422,
        "unknown_field",
        "name",
        id="patch-create-key",
    ),
    pytest.param(
        {}, *PATCH, {"permissions": "Reader"}, 422, "invalid_field", "permissions", id="patch-type"
    ),
    pytest.param(
        {},
        *PATCH,
        {"rate_limit": "5/d"},
        422,
        "invalid_rate_limit",
        "rate_limit",
        id="patch-rate-limit",
    ),
    # per-token rate limits (SPEC §12)
    pytest.param(
        {},
        *CREATE,
        new_token(rate_limit="0/s"),
        422,
        "invalid_rate_limit",
        "rate_limit",
        id="rate-limit",
    ),
    pytest.param(
        {"max_rate_limit": "10/s"},
        *CREATE,
        new_token(),
        422,
        "rate_limit_required",
        "rate_limit",
        id="rate-limit-required",
    ),
    pytest.param(
        {"max_rate_limit": "10/s"},
        *CREATE,
        new_token(rate_limit="601/m"),
        422,
        "rate_limit_too_high",
        "rate_limit",
        id="rate-limit-too-high",
    ),
    pytest.param(
        {},
        *PATCH,
        {"permissions": ["Nope"]},
        422,
        "unknown_permission",
        "permissions",
        id="patch-perm",
    ),
    pytest.param(
        {}, *PATCH, {"permissions": []}, 422, "invalid_permissions", "permissions", id="patch-empty"
    ),
    pytest.param(
        {},
        *PATCH,
        {"permissions": ["Reader", UNHELD]},
        403,
        "exceeds_caller",
        "permissions",
        id="patch-perm-not-held",
    ),
    pytest.param(
        {}, LIST, f"{TOKENS}?name={'x' * 101}", ABSENT, 400, "invalid_query", "name", id="q-name"
    ),
    pytest.param({}, LIST, f"{TOKENS}?sort=x", ABSENT, 400, "invalid_query", "sort", id="q-sort"),
    pytest.param(
        {}, LIST, f"{TOKENS}?order=x", ABSENT, 400, "invalid_query", "order", id="q-order"
    ),
    pytest.param(
        {}, LIST, f"{TOKENS}?limit=0", ABSENT, 400, "invalid_query", "limit", id="q-limit"
    ),
    pytest.param(
        {}, LIST, f"{TOKENS}?offset=x", ABSENT, 400, "invalid_query", "offset", id="q-offset"
    ),
    pytest.param(
        {}, LIST, f"{TOKENS}?page=2", ABSENT, 400, "invalid_query", "page", id="q-unknown"
    ),
    pytest.param(
        {}, LIST, f"{TOKENS}?status=gone", ABSENT, 400, "invalid_query", "status", id="q-status"
    ),
    pytest.param(
        {},
        LIST,
        f"{TOKENS}?expires_within=7w",
        ABSENT,
        400,
        "invalid_query",
        "expires_within",
        id="q-expires-within",
    ),
    pytest.param(
        {},
        LIST,
        f"{TOKENS}?limit=1&limit=2",
        ABSENT,
        400,
        "invalid_query",
        "limit",
        id="q-repeated",
    ),
    # rotation with a grace, and the revocation of a leaked secret (SPEC §11)
    pytest.param(
        {},
        "POST",
        f"{TOKENS}/{{id}}/rotate",
        {"grace": "30s"},
        422,
        "invalid_grace",
        "grace",
        id="invalid-grace",
    ),
    pytest.param(
        {},
        "POST",
        f"{TOKENS}/{{id}}/rotate",
        {"grace": "8d"},
        422,
        "grace_too_long",
        "grace",
        id="grace-too-long",
    ),
    pytest.param(
        {},
        "POST",
        f"{TOKENS}/revoke",
        {"token": "junk"},
        422,
        "malformed_token",
        "token",
        id="malformed-token",
    ),
    # explaining a decision (SPEC §11)
    pytest.param(
        {},
        "POST",
        "/admin/v1/explain",
        {"token_id": "tok_0000000000000000", "method": "GET", "uri": "/", "ip": "10.0.0.300"},
        422,
        "invalid_ip",
        "ip",
        id="explain-invalid-ip",
    ),
]

# (security_policy, who calls, method, path, JSON body or raw bytes, status, code): errors
# about the whole request, or about several inputs at once, which name no field.
WHOLE_REQUEST_ERRORS = [
    pytest.param({}, "nobody", "GET", TOKENS, ABSENT, 401, "unauthorized", id="no-token"),
    pytest.param({}, "junk", "GET", TOKENS, ABSENT, 401, "unauthorized", id="junk-token"),
    pytest.param({}, "view", *CREATE, new_token(), 403, "forbidden", id="forbidden"),
    pytest.param(
        {},
        "manage-only",
        "POST",
        f"{TOKENS}/{{id}}/rotate",
        ABSENT,
        403,
        "exceeds_caller",
        id="rotate-beyond-caller",
    ),
    pytest.param(
        {},
        "manage-only",
        *PATCH,
        {"permissions": [MANAGE]},
        403,
        "exceeds_caller",
        id="patch-target-beyond-caller",
    ),
    pytest.param(
        {"tokens_enabled": False}, "admin", "GET", TOKENS, ABSENT, 403, "tokens_disabled", id="off"
    ),
    pytest.param(
        {"allow_permission_updates": False},
        "admin",
        *PATCH,
        {"permissions": ["Writer"]},
        403,
        "permission_updates_disabled",
        id="updates-disabled",
    ),
    pytest.param(
        {}, "admin", "GET", f"{TOKENS}/{UNKNOWN_ID}", ABSENT, 404, "not_found", id="unknown-id"
    ),
    pytest.param({}, "admin", "GET", f"{TOKENS}/x", ABSENT, 404, "not_found", id="bad-id"),
    pytest.param({}, "admin", "GET", "/admin/v1/nope", ABSENT, 404, "not_found", id="no-route"),
    pytest.param({}, "admin", "PUT", TOKENS, ABSENT, 405, "method_not_allowed", id="method"),
    pytest.param({}, "admin", *CREATE, b"not json", 400, "invalid_json", id="not-json"),
    pytest.param({}, "admin", *CREATE, b"[]", 400, "invalid_json", id="not-an-object"),
    pytest.param({}, "admin", *CREATE, b"[" * 100_000, 413, "body_too_large", id="too-large"),
    pytest.param(
        {},
        "admin",
        *CREATE,
        {**new_token(), "a": 1, "b": 2},
        422,
        "unknown_field",
        id="two-unknown-keys",
    ),
    pytest.param(
        {},
        "admin",
        "GET",
        f"{TOKENS}?a=1&b=2",
        ABSENT,
        400,
        "invalid_query",
        id="two-unknown-params",
    ),
    pytest.param(
        {},
        "admin",
        "GET",
        f"{TOKENS}?limit=1&limit=2&sort=name&sort=name",
        ABSENT,
        400,
        "invalid_query",
        id="two-repeated-params",
    ),
]


async def _caller(runtime: Runtime, admin_secret: str, who: str) -> str | None:
    """The secret ``who`` presents: the admin's, a View token's, a Manage token's that holds
    nothing else (the Reader target is beyond it), junk, or none."""
    if who == "view":
        return (await mint(runtime, VIEW))[1]
    if who == "manage-only":
        return (await mint(runtime, MANAGE))[1]
    return {"admin": admin_secret, "junk": "junk", "nobody": None}[who]


class TestErrorFields:
    """``field`` names the one body key or list parameter at fault, and only then."""

    def test_every_field_code_is_in_the_table(self) -> None:
        """The table covers every code that names a field, every create and PATCH key and
        every list parameter."""
        rows = [param.values for param in FIELD_ERRORS]
        assert {row[5] for row in rows} == FIELD_CODES
        assert {row[6] for row in rows if row[1] == "POST"} >= _CREATE_FIELDS
        assert {row[6] for row in rows if row[1] == "PATCH"} >= _PATCH_FIELDS
        assert {row[6] for row in rows if row[1] == LIST} >= _LIST_PARAMS

    @pytest.mark.parametrize(
        ("policy", "method", "path", "body", "status", "code", "field"), FIELD_ERRORS
    )
    async def test_field_names_the_input_at_fault(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        admin_secret: str,
        policy: dict[str, Any],
        method: str,
        path: str,
        body: Any,
        status: int,
        code: str,
        field: str,
    ) -> None:
        """The error names exactly the body key or query parameter at fault."""
        target, _ = await mint(runtime, "Reader")
        use_config(runtime, tmp_path, security_policy=policy, permissions=CATALOG)
        url = URL(path.format(id=target.id), encoded=True)
        reply = await send(admin_client, method, url, admin_secret, body=body)
        error_of(reply, code, status, field=field)
        assert reply.body["error"]["field"] == field

    @pytest.mark.parametrize(
        ("policy", "who", "method", "path", "body", "status", "code"), WHOLE_REQUEST_ERRORS
    )
    async def test_whole_request_errors_name_no_field(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        admin_secret: str,
        policy: dict[str, Any],
        who: str,
        method: str,
        path: str,
        body: Any,
        status: int,
        code: str,
    ) -> None:
        """Errors about the whole request (or several inputs) have no ``field`` key at all."""
        target, _ = await mint(runtime, "Reader")
        secret = await _caller(runtime, admin_secret, who)
        use_config(runtime, tmp_path, security_policy=policy)
        url = URL(path.format(id=target.id), encoded=True)
        if isinstance(body, bytes):
            headers = {"Content-Type": "application/json"}
            reply = await send(admin_client, method, url, secret, data=body, headers=headers)
        else:
            reply = await send(admin_client, method, url, secret, body=body)
        error_of(reply, code, status)
        assert "field" not in reply.body["error"]
