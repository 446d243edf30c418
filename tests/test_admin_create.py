"""POST /admin/v1/tokens (SPEC §4): the token object and its secret, and issuance under
the security policy in force, each refusal with its code and the field at fault."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import SECRET_PATTERN, TokenRecord
from authsvc.service.runtime import Runtime
from tests.admin_helpers import (
    DAY,
    TOKENS,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    new_token,
    send,
)
from tests.factories import TOKEN_FIELDS
from tests.webapp import NOW, Client, auth_status, use_config


class TestCreate:
    """POST /admin/v1/tokens."""

    async def test_answers_201_with_the_token_object_and_secret(
        self, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """201, exactly the documented fields (effective_expires_at right after expires_at)
        plus the secret, and Cache-Control: no-store."""
        body = new_token(permissions=["Writer", "Reader"], expires_in="30d", ip_filter="office")
        reply = await send(admin_client, "POST", TOKENS, admin[1], body=body)
        assert reply.status == 201
        assert reply.headers["Cache-Control"] == "no-store"
        assert set(reply.body) == TOKEN_FIELDS | {"token"}
        assert SECRET_PATTERN.fullmatch(reply.body["token"])
        assert re.fullmatch(r"tok_[0-9a-f]{16}", reply.body["id"])
        assert {k: v for k, v in reply.body.items() if k not in ("id", "token")} == {
            "name": "ci deploys",
            "permissions": ["Reader", "Writer"],
            "ip_filter": "office",
            "created_at": rfc3339(NOW),
            "expires_at": rfc3339(NOW + 30 * DAY),
            "effective_expires_at": rfc3339(NOW + 30 * DAY),
            "previous_secret_expires_at": None,
            "status": "active",
            "created_by": admin[0].id,
            "last_used_at": None,
            "last_used_ip": None,
            "rate_limit": None,
        }
        keys = list(reply.body)
        assert keys[keys.index("expires_at") + 1] == "effective_expires_at"

    async def test_secret_is_shown_once_and_works_at_once(
        self, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """The new secret authenticates at /auth immediately; GET never shows it again."""
        created = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token())
        assert await auth_status(auth_client, created.body["token"]) == 200
        shown = await send(admin_client, "GET", f"{TOKENS}/{created.body['id']}", admin_secret)
        listed = await send(admin_client, "GET", TOKENS, admin_secret)
        assert created.body["token"] not in shown.text + listed.text
        assert "token" not in shown.body

    async def test_expiry_is_optional_without_max_lifetime(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """No max_lifetime: expires_in null or absent gives a token that never expires."""
        for name, extra in [("absent", {}), ("null", {"expires_in": None})]:
            reply = await send(
                admin_client, "POST", TOKENS, admin_secret, body=new_token(name, **extra)
            )
            assert (reply.status, reply.body["expires_at"]) == (201, None)
            assert reply.body["effective_expires_at"] is None

    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("Déploiement — CI 🚀", id="unicode"),
            pytest.param("日本語のトークン", id="cjk"),
            pytest.param("x" * 100, id="100-chars"),
            pytest.param("a", id="1-char"),
            pytest.param("ops\"'<script>%00", id="markup-and-escapes"),
        ],
    )
    async def test_names_round_trip(
        self, admin_client: Client, admin_secret: str, name: str
    ) -> None:
        """Any printable name of 1-100 characters is kept exactly."""
        created = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token(name))
        shown = await send(admin_client, "GET", f"{TOKENS}/{created.body['id']}", admin_secret)
        assert (created.status, shown.body["name"]) == (201, name)

    async def test_name_taken_is_409(self, admin_client: Client, admin_secret: str) -> None:
        """A second token with an existing name is refused with 409 name_taken at name."""
        await send(admin_client, "POST", TOKENS, admin_secret, body=new_token("dup"))
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token("dup"))
        error_of(reply, "name_taken", 409, field="name")


# (security_policy overrides, create body fields, expected status, expected code or None,
# the field at fault or None)
ISSUANCE = [
    pytest.param({"tokens_enabled": False}, {}, 403, "tokens_disabled", None, id="tokens-disabled"),
    pytest.param(
        {"max_lifetime": "90d"}, {}, 422, "expiry_required", "expires_in", id="expiry-required"
    ),
    pytest.param(
        {"max_lifetime": "90d"},
        {"expires_in": None},
        422,
        "expiry_required",
        "expires_in",
        id="expiry-null-required",
    ),
    pytest.param(
        {"max_lifetime": "90d"},
        {"expires_in": "91d"},
        422,
        "expiry_too_long",
        "expires_in",
        id="expiry-too-long",
    ),
    pytest.param(
        {"max_lifetime": "90d"},
        {"expires_in": "2161h"},
        422,
        "expiry_too_long",
        "expires_in",
        id="expiry-too-long-hours",
    ),
    pytest.param(
        {"max_lifetime": "90d"}, {"expires_in": "90d"}, 201, None, None, id="expiry-at-max"
    ),
    pytest.param(
        {"max_lifetime": "90d"}, {"expires_in": "5m"}, 201, None, None, id="expiry-minutes"
    ),
    pytest.param(
        {"enforce_ip_filter": "localhost"},
        {"ip_filter": "office"},
        422,
        "ip_filter_enforced",
        "ip_filter",
        id="other-filter-than-enforced",
    ),
    pytest.param(
        {"enforce_ip_filter": "localhost"},
        {"ip_filter": "localhost"},
        201,
        None,
        None,
        id="enforced-filter-named",
    ),
    pytest.param(
        {}, {"ip_filter": "nope"}, 422, "unknown_ip_filter", "ip_filter", id="unknown-filter"
    ),
    pytest.param({}, {"ip_filter": ""}, 422, "unknown_ip_filter", "ip_filter", id="empty-filter"),
    pytest.param(
        {}, {"permissions": ["Nope"]}, 422, "unknown_permission", "permissions", id="unknown-perm"
    ),
    pytest.param(
        {},
        {"permissions": ["Reader", "reader"]},
        422,
        "unknown_permission",
        "permissions",
        id="permission-case",
    ),
    pytest.param(
        {}, {"permissions": []}, 422, "invalid_permissions", "permissions", id="empty-permissions"
    ),
    pytest.param({}, {"expires_in": "30s"}, 422, "invalid_expiry", "expires_in", id="seconds-unit"),
    pytest.param({}, {"expires_in": "0d"}, 422, "invalid_expiry", "expires_in", id="zero"),
    pytest.param({}, {"expires_in": "-1d"}, 422, "invalid_expiry", "expires_in", id="negative"),
    pytest.param({}, {"expires_in": "1.5d"}, 422, "invalid_expiry", "expires_in", id="fraction"),
    pytest.param(
        {}, {"expires_in": "30D"}, 422, "invalid_expiry", "expires_in", id="upper-case-unit"
    ),
    pytest.param(
        {}, {"expires_in": "１d"}, 422, "invalid_expiry", "expires_in", id="fullwidth-digit"
    ),
    pytest.param(
        {}, {"expires_in": "99999999999d"}, 422, "invalid_expiry", "expires_in", id="huge"
    ),
    pytest.param({}, {"expires_in": ""}, 422, "invalid_expiry", "expires_in", id="empty-expiry"),
    pytest.param({}, {"name": ""}, 422, "invalid_name", "name", id="empty-name"),
    pytest.param({}, {"name": "x" * 101}, 422, "invalid_name", "name", id="101-chars"),
    pytest.param({}, {"name": " padded"}, 422, "invalid_name", "name", id="leading-space"),
    pytest.param({}, {"name": "a\u0000b"}, 422, "invalid_name", "name", id="null-byte"),
    pytest.param({}, {"name": "a\nb"}, 422, "invalid_name", "name", id="newline"),
    pytest.param({}, {"name": "a\u202eb"}, 422, "invalid_name", "name", id="bidi-override"),
]


class TestIssuancePolicy:
    """Create is checked against the policy in force (SPEC §4 'Issuance under the policy')."""

    @pytest.mark.parametrize(("policy", "fields", "status", "code", "field"), ISSUANCE)
    async def test_create_under_policy(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        admin_secret: str,
        policy: dict[str, Any],
        fields: dict[str, Any],
        status: int,
        code: str | None,
        field: str | None,
    ) -> None:
        """Each rule answers its documented status, code and field; allowed requests get 201."""
        use_config(runtime, tmp_path, security_policy=policy)
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token(**fields))
        if code is None:
            assert reply.status == status, reply.body
        else:
            error_of(reply, code, status, field=field)

    async def test_enforced_filter_is_given_to_the_token(
        self, runtime: Runtime, tmp_path: Path, admin_client: Client, admin_secret: str
    ) -> None:
        """With enforce_ip_filter, a token created without a filter gets the enforced one."""
        use_config(runtime, tmp_path, security_policy={"enforce_ip_filter": "localhost"})
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token())
        assert (reply.status, reply.body["ip_filter"]) == (201, "localhost")
