"""The admin API (SPEC §4): every call's status, headers and JSON shape, issuance under the
policy, authentication, immediate effect on /auth, the audit log, and hostile input
(SECURITY 9, 13, 14, 19, 25)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import SECRET_PATTERN, TokenRecord, new_secret
from authsvc.service.runtime import Runtime
from authsvc.store import ListQuery
from tests.factories import TOKEN_FIELDS, FrozenClock
from tests.webapp import (
    MANAGE,
    NOW,
    VIEW,
    Client,
    assert_error,
    audit_entries,
    audit_text,
    auth_status,
    bearer,
    mint,
    use_config,
)

TOKENS = "/admin/v1/tokens"
UNKNOWN_ID = "tok_0123456789abcdef"
DAY = 86400
_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class Reply:
    """One admin API answer: status, headers and the parsed JSON body (None if not JSON)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: Any
    text: str


async def send(
    client: Client,
    method: str,
    path: str | URL,
    secret: str | None = None,
    *,
    body: Any = _ABSENT,
    data: Any = None,
    headers: dict[str, str] | CIMultiDict[str] | None = None,
) -> Reply:
    """Make one call, presenting ``secret`` (if any) and ``body`` as JSON (if given)."""
    sent: CIMultiDict[str] = CIMultiDict(bearer(secret) if secret else {})
    sent.extend(headers or {})
    if body is not _ABSENT:
        data = json.dumps(body)
        sent.setdefault("Content-Type", "application/json")
    async with client.request(method, path, data=data, headers=sent) as response:
        text = await response.text()
        is_json = text and response.content_type == "application/json"
        parsed = json.loads(text) if is_json else None
        return Reply(response.status, response.headers, parsed, text)


def error_of(reply: Reply, code: str, status: int) -> None:
    """``reply`` is an error in the documented shape."""
    assert_error(reply.status, reply.body, code, status)
    assert reply.headers["Cache-Control"] == "no-store"


def new_token(name: str = "ci deploys", **fields: Any) -> dict[str, Any]:
    """A create request body."""
    return {"name": name, "permissions": ["Reader"], **fields}


@pytest.fixture
def admin_secret(admin: tuple[TokenRecord, str]) -> str:
    """The secret of the ``admin`` fixture's Manage token."""
    return admin[1]


class TestCreate:
    """POST /admin/v1/tokens."""

    async def test_answers_201_with_the_token_object_and_secret(
        self, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """201, exactly the documented fields plus the secret, and Cache-Control: no-store."""
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
            "status": "active",
            "created_by": admin[0].id,
            "last_used_at": None,
            "last_used_ip": None,
        }

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
        """A second token with an existing name is refused with 409 name_taken."""
        await send(admin_client, "POST", TOKENS, admin_secret, body=new_token("dup"))
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token("dup"))
        error_of(reply, "name_taken", 409)


# (security_policy overrides, create body fields, expected status, expected code or None)
ISSUANCE = [
    pytest.param({"tokens_enabled": False}, {}, 403, "tokens_disabled", id="tokens-disabled"),
    pytest.param({"max_lifetime": "90d"}, {}, 422, "expiry_required", id="expiry-required"),
    pytest.param(
        {"max_lifetime": "90d"},
        {"expires_in": None},
        422,
        "expiry_required",
        id="expiry-null-required",
    ),
    pytest.param(
        {"max_lifetime": "90d"}, {"expires_in": "91d"}, 422, "expiry_too_long", id="expiry-too-long"
    ),
    pytest.param(
        {"max_lifetime": "90d"},
        {"expires_in": "2161h"},
        422,
        "expiry_too_long",
        id="expiry-too-long-hours",
    ),
    pytest.param({"max_lifetime": "90d"}, {"expires_in": "90d"}, 201, None, id="expiry-at-max"),
    pytest.param({"max_lifetime": "90d"}, {"expires_in": "5m"}, 201, None, id="expiry-minutes"),
    pytest.param(
        {"enforce_ip_filter": "localhost"},
        {"ip_filter": "office"},
        422,
        "ip_filter_enforced",
        id="other-filter-than-enforced",
    ),
    pytest.param(
        {"enforce_ip_filter": "localhost"},
        {"ip_filter": "localhost"},
        201,
        None,
        id="enforced-filter-named",
    ),
    pytest.param({}, {"ip_filter": "nope"}, 422, "unknown_ip_filter", id="unknown-filter"),
    pytest.param({}, {"ip_filter": ""}, 422, "unknown_ip_filter", id="empty-filter"),
    pytest.param({}, {"permissions": ["Nope"]}, 422, "unknown_permission", id="unknown-perm"),
    pytest.param(
        {}, {"permissions": ["Reader", "reader"]}, 422, "unknown_permission", id="permission-case"
    ),
    pytest.param({}, {"permissions": []}, 422, "invalid_permissions", id="empty-permissions"),
    pytest.param({}, {"expires_in": "30s"}, 422, "invalid_expiry", id="seconds-unit"),
    pytest.param({}, {"expires_in": "0d"}, 422, "invalid_expiry", id="zero"),
    pytest.param({}, {"expires_in": "-1d"}, 422, "invalid_expiry", id="negative"),
    pytest.param({}, {"expires_in": "1.5d"}, 422, "invalid_expiry", id="fraction"),
    pytest.param({}, {"expires_in": "30D"}, 422, "invalid_expiry", id="upper-case-unit"),
    pytest.param({}, {"expires_in": "１d"}, 422, "invalid_expiry", id="fullwidth-digit"),
    pytest.param({}, {"expires_in": "99999999999d"}, 422, "invalid_expiry", id="huge"),
    pytest.param({}, {"expires_in": ""}, 422, "invalid_expiry", id="empty-expiry"),
    pytest.param({}, {"name": ""}, 422, "invalid_name", id="empty-name"),
    pytest.param({}, {"name": "x" * 101}, 422, "invalid_name", id="101-chars"),
    pytest.param({}, {"name": " padded"}, 422, "invalid_name", id="leading-space"),
    pytest.param({}, {"name": "a\u0000b"}, 422, "invalid_name", id="null-byte"),
    pytest.param({}, {"name": "a\nb"}, 422, "invalid_name", id="newline"),
    pytest.param({}, {"name": "a\u202eb"}, 422, "invalid_name", id="bidi-override"),
]


class TestIssuancePolicy:
    """Create is checked against the policy in force (SPEC §4 'Issuance under the policy')."""

    @pytest.mark.parametrize(("policy", "fields", "status", "code"), ISSUANCE)
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
    ) -> None:
        """Each rule answers its documented status and code; allowed requests get 201."""
        use_config(runtime, tmp_path, security_policy=policy)
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token(**fields))
        if code is None:
            assert reply.status == status, reply.body
        else:
            error_of(reply, code, status)

    async def test_enforced_filter_is_given_to_the_token(
        self, runtime: Runtime, tmp_path: Path, admin_client: Client, admin_secret: str
    ) -> None:
        """With enforce_ip_filter, a token created without a filter gets the enforced one."""
        use_config(runtime, tmp_path, security_policy={"enforce_ip_filter": "localhost"})
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=new_token())
        assert (reply.status, reply.body["ip_filter"]) == (201, "localhost")


class TestPatch:
    """PATCH /admin/v1/tokens/{id}: replace permissions."""

    async def test_answers_200_with_the_updated_object(
        self, runtime: Runtime, admin_client: Client, admin_secret: str
    ) -> None:
        """200, the token object (no secret), permissions replaced, no-store."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(
            admin_client,
            "PATCH",
            f"{TOKENS}/{target.id}",
            admin_secret,
            body={"permissions": ["Writer", VIEW]},
        )
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert set(reply.body) == TOKEN_FIELDS
        assert (reply.body["id"], reply.body["permissions"]) == (target.id, [VIEW, "Writer"])

    @pytest.mark.parametrize(
        ("policy", "permissions", "status", "code"),
        [
            pytest.param(
                {"allow_permission_updates": False},
                ["Writer"],
                403,
                "permission_updates_disabled",
                id="updates-disabled",
            ),
            pytest.param(
                {"tokens_enabled": False}, ["Writer"], 403, "tokens_disabled", id="tokens-disabled"
            ),
            pytest.param({}, ["Nope"], 422, "unknown_permission", id="unknown-permission"),
            pytest.param({}, [], 422, "invalid_permissions", id="empty-list"),
            pytest.param({}, "Writer", 422, "invalid_field", id="string-not-list"),
            pytest.param({}, [1], 422, "invalid_field", id="number-in-list"),
            pytest.param({}, None, 422, "invalid_field", id="null"),
        ],
    )
    async def test_refusals(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        admin_secret: str,
        policy: dict[str, Any],
        permissions: Any,
        status: int,
        code: str,
    ) -> None:
        """Each refusal has its status and code, and leaves the token unchanged."""
        target, _ = await mint(runtime, "Reader")
        use_config(runtime, tmp_path, security_policy=policy)
        reply = await send(
            admin_client,
            "PATCH",
            f"{TOKENS}/{target.id}",
            admin_secret,
            body={"permissions": permissions},
        )
        error_of(reply, code, status)
        assert (await runtime.service.get(target.id)).permissions == {"Reader"}

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"permissions": ["Writer"], "name": "renamed"}, id="name"),
            pytest.param({"permissions": ["Writer"], "expires_in": "1d"}, id="expires_in"),
            pytest.param({}, id="empty-object"),
        ],
    )
    async def test_only_permissions_can_change(
        self, runtime: Runtime, admin_client: Client, admin_secret: str, body: dict[str, Any]
    ) -> None:
        """Other fields are unknown (422), a missing list is invalid (422)."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(admin_client, "PATCH", f"{TOKENS}/{target.id}", admin_secret, body=body)
        assert reply.status == 422
        assert reply.body["error"]["code"] in ("unknown_field", "invalid_field")


class TestRotateAndDelete:
    """POST /admin/v1/tokens/{id}/rotate and DELETE /admin/v1/tokens/{id}."""

    async def test_rotate_answers_200_with_a_new_secret(
        self, runtime: Runtime, admin_client: Client, admin_secret: str
    ) -> None:
        """200, the same token object plus a different secret, no-store."""
        target, old = await mint(runtime, "Reader")
        reply = await send(admin_client, "POST", f"{TOKENS}/{target.id}/rotate", admin_secret)
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert set(reply.body) == TOKEN_FIELDS | {"token"}
        assert reply.body["id"] == target.id
        assert SECRET_PATTERN.fullmatch(reply.body["token"])
        assert reply.body["token"] != old

    async def test_delete_answers_204_and_the_token_is_gone(
        self, runtime: Runtime, admin_client: Client, admin_secret: str
    ) -> None:
        """204 with an empty body; then GET, DELETE and rotate of that id are 404."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(admin_client, "DELETE", f"{TOKENS}/{target.id}", admin_secret)
        assert (reply.status, reply.text) == (204, "")
        for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/rotate")]:
            again = await send(admin_client, method, f"{TOKENS}/{target.id}{suffix}", admin_secret)
            error_of(again, "not_found", 404)


BAD_IDS = [
    pytest.param(UNKNOWN_ID, id="unknown"),
    pytest.param("tok_0123456789ABCDEF", id="upper-case-hex"),
    pytest.param("tok_0123", id="short"),
    pytest.param("..%2Fx", id="encoded-dot-dot-slash"),
    pytest.param("%00", id="nul"),
    pytest.param("%E2%80%AE", id="bidi"),
    pytest.param("a" * 4000, id="very-long"),
    pytest.param("tok_0123456789abcdef%0A", id="trailing-newline"),
]


class TestTokenIds:
    """Unknown ids and ids of the wrong shape are 404 in the error shape on every call."""

    @pytest.mark.parametrize("token_id", BAD_IDS)
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            pytest.param("GET", "", _ABSENT, id="get"),
            pytest.param("PATCH", "", {"permissions": ["Reader"]}, id="patch"),
            pytest.param("POST", "/rotate", _ABSENT, id="rotate"),
            pytest.param("DELETE", "", _ABSENT, id="delete"),
        ],
    )
    async def test_bad_id_is_404(
        self,
        *,
        admin_client: Client,
        admin_secret: str,
        token_id: str,
        method: str,
        suffix: str,
        body: Any,
    ) -> None:
        """404 not_found, and the id is not echoed back."""
        path = URL(f"{TOKENS}/{token_id}{suffix}", encoded=True)
        reply = await send(admin_client, method, path, admin_secret, body=body)
        error_of(reply, "not_found", 404)

    async def test_secret_in_the_id_position_is_not_echoed(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A secret pasted where the id belongs does not come back in the 404 body."""
        reply = await send(admin_client, "GET", f"{TOKENS}/{admin_secret}", admin_secret)
        error_of(reply, "not_found", 404)
        assert admin_secret[:20] not in reply.text


@pytest.fixture
async def listed(runtime: Runtime, admin: tuple[TokenRecord, str]) -> str:
    """Six tokens ('admin' included) with mixed-case names and expiries; the admin secret."""
    for name, expires_in in [
        ("alpha", "2d"),
        ("Bravo", None),
        ("charlie", "1d"),
        ("delta-OPS", "3d"),
        ("echo-ops", None),
    ]:
        await mint(runtime, "Reader", name=name, expires_in=expires_in)
    return admin[1]


def names(reply: Reply) -> list[str]:
    return [token["name"] for token in reply.body["tokens"]]


class TestList:
    """GET /admin/v1/tokens: paging, sorting, filtering, total."""

    async def test_defaults_sort_by_name_ascending(self, admin_client: Client, listed: str) -> None:
        """200 {"total", "tokens"}; case-insensitive name order; every object complete."""
        reply = await send(admin_client, "GET", TOKENS, listed)
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert set(reply.body) == {"total", "tokens"}
        assert reply.body["total"] == 6
        assert names(reply) == ["admin", "alpha", "Bravo", "charlie", "delta-OPS", "echo-ops"]
        assert all(set(token) == TOKEN_FIELDS for token in reply.body["tokens"])

    @pytest.mark.parametrize(
        ("query", "total", "expected"),
        [
            pytest.param(
                "sort=name&order=desc",
                6,
                ["echo-ops", "delta-OPS", "charlie", "Bravo", "alpha", "admin"],
                id="name-desc",
            ),
            pytest.param(
                "sort=expires_at",
                6,
                ["charlie", "alpha", "delta-OPS", "admin", "Bravo", "echo-ops"],
                id="expires-asc-never-last",
            ),
            pytest.param(
                "sort=expires_at&order=desc",
                6,
                ["echo-ops", "Bravo", "admin", "delta-OPS", "alpha", "charlie"],
                id="expires-desc-never-first",
            ),
            pytest.param("name=OPS", 2, ["delta-OPS", "echo-ops"], id="filter-case-insensitive"),
            pytest.param(
                "name=A", 5, ["admin", "alpha", "Bravo", "charlie", "delta-OPS"], id="filter-a"
            ),
            pytest.param("name=%25", 0, [], id="filter-percent-is-literal"),
            pytest.param("name=_", 0, [], id="filter-underscore-is-literal"),
            pytest.param(
                "name=",
                6,
                ["admin", "alpha", "Bravo", "charlie", "delta-OPS", "echo-ops"],
                id="empty-filter-is-no-filter",
            ),
            pytest.param("limit=2", 6, ["admin", "alpha"], id="limit"),
            pytest.param("limit=2&offset=2", 6, ["Bravo", "charlie"], id="second-page"),
            pytest.param("limit=2&offset=5", 6, ["echo-ops"], id="last-page"),
            pytest.param("offset=6", 6, [], id="past-the-end"),
            pytest.param(
                "name=ops&limit=1&offset=1&order=desc", 2, ["delta-OPS"], id="everything-at-once"
            ),
            pytest.param(
                "limit=500&offset=0",
                6,
                ["admin", "alpha", "Bravo", "charlie", "delta-OPS", "echo-ops"],
                id="limit-max",
            ),
        ],
    )
    async def test_query(
        self, admin_client: Client, listed: str, query: str, total: int, expected: list[str]
    ) -> None:
        """total counts every match; tokens is the requested page in the requested order."""
        reply = await send(admin_client, "GET", URL(f"{TOKENS}?{query}", encoded=True), listed)
        assert (reply.status, reply.body["total"], names(reply)) == (200, total, expected)

    async def test_default_limit_is_50(self, runtime: Runtime, admin_client: Client) -> None:
        """Without limit, one page holds 50 tokens; total still counts all of them."""
        _, secret = await mint(runtime, MANAGE, name="admin")
        for index in range(50):
            await mint(runtime, "Reader", name=f"bulk {index:02d}")
        reply = await send(admin_client, "GET", TOKENS, secret)
        assert (reply.body["total"], len(reply.body["tokens"])) == (51, 50)

    @pytest.mark.parametrize(
        "query",
        [
            pytest.param("limit=0", id="limit-0"),
            pytest.param("limit=501", id="limit-501"),
            pytest.param("limit=-1", id="limit-negative"),
            pytest.param("limit=abc", id="limit-text"),
            pytest.param("limit=1.5", id="limit-fraction"),
            pytest.param("limit=", id="limit-empty"),
            pytest.param("limit=%201", id="limit-space"),
            pytest.param("limit=%EF%BC%91", id="limit-fullwidth-digit"),
            pytest.param("limit=%C2%B2", id="limit-superscript"),
            pytest.param("limit=99999999999999999999", id="limit-huge"),
            pytest.param("offset=-1", id="offset-negative"),
            pytest.param("offset=x", id="offset-text"),
            pytest.param("offset=1000000001", id="offset-too-large"),
            pytest.param("sort=created_at", id="sort-unknown"),
            pytest.param("sort=NAME", id="sort-case"),
            pytest.param("sort=", id="sort-empty"),
            pytest.param("order=up", id="order-unknown"),
            pytest.param("order=ASC", id="order-case"),
            pytest.param("name=" + "x" * 101, id="name-too-long"),
            pytest.param("page=2", id="unknown-param"),
            pytest.param("limit=1&limit=2", id="repeated-param"),
            pytest.param("sort=name&sort=expires_at", id="repeated-sort"),
            # no token name holds control characters, and the stores read them differently
            pytest.param("name=%00", id="name-nul"),
            pytest.param("name=a%00b", id="name-inner-nul"),
            pytest.param("name=%0A", id="name-newline"),
            pytest.param("name=%1B%5B0m", id="name-escape-sequence"),
        ],
    )
    async def test_bad_query_is_400(
        self, admin_client: Client, admin_secret: str, query: str
    ) -> None:
        """Every bad parameter is 400 invalid_query in the error shape."""
        reply = await send(
            admin_client, "GET", URL(f"{TOKENS}?{query}", encoded=True), admin_secret
        )
        error_of(reply, "invalid_query", 400)

    async def test_status_is_derived(
        self, runtime: Runtime, tmp_path: Path, clock: FrozenClock, admin_client: Client
    ) -> None:
        """'expired' past expires_at and past the policy's max_lifetime, else 'active'."""
        await mint(runtime, "Reader", name="short", expires_in="1h")
        await mint(runtime, "Reader", name="forever")
        clock.advance(2 * DAY)
        _, secret = await mint(runtime, MANAGE, name="admin")
        reply = await send(admin_client, "GET", TOKENS, secret)
        status = {t["name"]: t["status"] for t in reply.body["tokens"]}
        assert status == {"admin": "active", "forever": "active", "short": "expired"}
        use_config(runtime, tmp_path, security_policy={"max_lifetime": "1d"})
        reply = await send(admin_client, "GET", TOKENS, secret)
        status = {t["name"]: t["status"] for t in reply.body["tokens"]}
        assert status == {"admin": "active", "forever": "expired", "short": "expired"}


class TestCatalogAndPolicy:
    """GET /admin/v1/permissions, /admin/v1/ip-filters and /admin/v1/policy."""

    async def test_permissions(self, admin_client: Client, admin_secret: str) -> None:
        """Every permission, reserved ones included, with its templates as written."""
        reply = await send(admin_client, "GET", "/admin/v1/permissions", admin_secret)
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        by_name = {item["name"]: item for item in reply.body}
        assert all(set(item) == {"name", "description", "endpoints"} for item in reply.body)
        assert set(by_name) == {"Reader", "Writer", MANAGE, VIEW}
        assert by_name["Reader"] == {
            "name": "Reader",
            "description": "Read items",
            "endpoints": ["GET /api/v1/items", "GET /api/v1/items/{id}"],
        }
        assert by_name[MANAGE]["endpoints"] == []

    async def test_ip_filters(self, admin_client: Client, admin_secret: str) -> None:
        """Every named filter with its rules."""
        reply = await send(admin_client, "GET", "/admin/v1/ip-filters", admin_secret)
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert reply.body == [
            {"name": "localhost", "rules": ["allow 127.0.0.1", "allow ::1", "deny all"]},
            {"name": "office", "rules": ["allow 10.0.0.0/8", "allow 2001:db8::/32", "deny all"]},
        ]

    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            pytest.param(
                {},
                {
                    "tokens_enabled": True,
                    "max_lifetime": None,
                    "max_lifetime_seconds": None,
                    "enforce_ip_filter": None,
                    "allow_permission_updates": True,
                },
                id="defaults",
            ),
            pytest.param(
                {
                    "max_lifetime": "90d",
                    "enforce_ip_filter": "localhost",
                    "allow_permission_updates": False,
                },
                {
                    "tokens_enabled": True,
                    "max_lifetime": "90d",
                    "max_lifetime_seconds": 90 * DAY,
                    "enforce_ip_filter": "localhost",
                    "allow_permission_updates": False,
                },
                id="strict",
            ),
        ],
    )
    async def test_policy_in_force(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        admin_secret: str,
        policy: dict[str, Any],
        expected: dict[str, Any],
    ) -> None:
        """The policy of the configuration in force, max_lifetime as written and in seconds."""
        use_config(runtime, tmp_path, security_policy=policy)
        reply = await send(admin_client, "GET", "/admin/v1/policy", admin_secret)
        assert (reply.status, reply.body) == (200, expected)


def _typo(secret: str) -> str:
    """``secret`` with its last character changed (so its checksum no longer matches)."""
    return secret[:-1] + ("0" if secret[-1] != "0" else "1")


def _two_authorization_headers(secret: str) -> CIMultiDict[str]:
    return CIMultiDict([("Authorization", f"Bearer {secret}")] * 2)


# How a request presents (or fails to present) a real admin secret; all must be 401.
BAD_CREDENTIALS = [
    pytest.param(lambda s: {}, "", id="none"),
    pytest.param(lambda s: {"Authorization": ""}, "", id="empty-header"),
    pytest.param(lambda s: {"Authorization": "Bearer"}, "", id="bearer-nothing"),
    pytest.param(lambda s: {"Authorization": "Bearer junk"}, "", id="junk"),
    pytest.param(lambda s: {"Authorization": f"Basic {s}"}, "", id="basic-scheme"),
    pytest.param(lambda s: {"Authorization": s}, "", id="no-scheme"),
    pytest.param(lambda s: {"Authorization": f"Bearer {_typo(s)}"}, "", id="bad-checksum"),
    pytest.param(lambda s: {"Authorization": f"Bearer {s}x"}, "", id="too-long"),
    pytest.param(lambda s: {"Authorization": f"Bearer {new_secret()}"}, "", id="unknown"),
    pytest.param(lambda s: {"Authorization": "Bearer " + "a" * 7000}, "", id="7k-junk"),
    pytest.param(lambda s: {}, "?access_token={s}", id="query-string"),
    pytest.param(lambda s: {}, "?token={s}", id="query-string-token"),
    pytest.param(lambda s: {"Cookie": f"access_token={s}"}, "", id="cookie"),
    pytest.param(lambda s: {"Cookie": f"Authorization=Bearer {s}"}, "", id="cookie-bearer"),
    pytest.param(lambda s: {"X-Auth-Token": s}, "", id="other-header"),
    pytest.param(_two_authorization_headers, "", id="two-authorization-headers"),
]


class TestAuthentication:
    """Every admin call needs one Authorization: Bearer header with a valid token (401)."""

    @pytest.mark.parametrize(("headers", "query"), BAD_CREDENTIALS)
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            pytest.param("GET", TOKENS, _ABSENT, id="read"),
            pytest.param("POST", TOKENS, new_token(), id="write"),
            pytest.param("GET", "/admin/v1/policy", _ABSENT, id="policy"),
        ],
    )
    async def test_refused_with_401(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        headers: Any,
        query: str,
        method: str,
        path: str,
        body: Any,
    ) -> None:
        """401 unauthorized with WWW-Authenticate: Bearer; the secret is not echoed; no change."""
        target = URL(path + query.format(s=admin_secret), encoded=True)
        reply = await send(admin_client, method, target, body=body, headers=headers(admin_secret))
        error_of(reply, "unauthorized", 401)
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert admin_secret[:20] not in reply.text
        total, _ = await runtime.service.list_tokens(ListQuery())
        assert total == 1

    async def test_expired_admin_token_is_401(
        self, runtime: Runtime, clock: FrozenClock, admin_client: Client
    ) -> None:
        """Accepted a second before expires_at, refused at it (now == expires_at is expired)."""
        _, secret = await mint(runtime, MANAGE, expires_in="1h")
        clock.advance(3599)
        assert (await send(admin_client, "GET", TOKENS, secret)).status == 200
        clock.advance(1)
        reply = await send(admin_client, "GET", TOKENS, secret)
        error_of(reply, "unauthorized", 401)
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_admin_token_past_policy_max_lifetime_is_401(
        self,
        runtime: Runtime,
        tmp_path: Path,
        clock: FrozenClock,
        admin_client: Client,
        admin_secret: str,
    ) -> None:
        """Tightening max_lifetime refuses an older admin token at once."""
        clock.advance(2 * DAY)
        assert (await send(admin_client, "GET", TOKENS, admin_secret)).status == 200
        use_config(runtime, tmp_path, security_policy={"max_lifetime": "1d"})
        error_of(await send(admin_client, "GET", TOKENS, admin_secret), "unauthorized", 401)


READS = [
    pytest.param("GET", TOKENS, _ABSENT, id="list"),
    pytest.param("GET", f"{TOKENS}/{{id}}", _ABSENT, id="show"),
    pytest.param("GET", "/admin/v1/permissions", _ABSENT, id="permissions"),
    pytest.param("GET", "/admin/v1/ip-filters", _ABSENT, id="ip-filters"),
    pytest.param("GET", "/admin/v1/policy", _ABSENT, id="policy"),
]
WRITES = [
    pytest.param("POST", TOKENS, new_token("new"), id="create"),
    pytest.param("PATCH", f"{TOKENS}/{{id}}", {"permissions": ["Writer"]}, id="patch"),
    pytest.param("POST", f"{TOKENS}/{{id}}/rotate", _ABSENT, id="rotate"),
    pytest.param("DELETE", f"{TOKENS}/{{id}}", _ABSENT, id="delete"),
]
SUCCESS = {"GET": 200, "POST": 201, "PATCH": 200, "DELETE": 204}


async def call_on_target(
    runtime: Runtime, client: Client, secret: str, call: tuple[str, str, Any]
) -> tuple[Reply, str]:
    """Call ``path`` with ``{id}`` replaced by a fresh Reader token's id; (reply, its secret)."""
    method, path, body = call
    target, target_secret = await mint(runtime, "Reader")
    reply = await send(client, method, path.format(id=target.id), secret, body=body)
    return reply, target_secret


async def unchanged(runtime: Runtime, target_secret: str, tokens: int) -> bool:
    """The target still works with its old secret and permissions; no token was added."""
    record = await runtime.store.get_by_digest(runtime.service.digest(target_secret))
    total, _ = await runtime.service.list_tokens(ListQuery())
    return record is not None and record.permissions == {"Reader"} and total == tokens


def succeeded(reply: Reply, method: str, path: str) -> bool:
    """The call answered its documented success status."""
    expected = 200 if path.endswith("/rotate") else SUCCESS[method]
    return reply.status == expected


class TestAuthorization:
    """View reads, Manage reads and writes, anything else is 403 forbidden (SPEC §4)."""

    @pytest.mark.parametrize(("method", "path", "body"), READS)
    @pytest.mark.parametrize("permission", [VIEW, MANAGE])
    async def test_view_and_manage_can_read(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        permission: str,
        method: str,
        path: str,
        body: Any,
    ) -> None:
        """Both admin permissions may read."""
        _, secret = await mint(runtime, permission)
        reply, _ = await call_on_target(runtime, admin_client, secret, (method, path, body))
        assert succeeded(reply, method, path), reply.body

    @pytest.mark.parametrize(("method", "path", "body"), WRITES)
    async def test_view_cannot_write(
        self, runtime: Runtime, admin_client: Client, method: str, path: str, body: Any
    ) -> None:
        """A View token gets 403 forbidden on every write, and nothing changes."""
        _, secret = await mint(runtime, VIEW)
        call = (method, path, body)
        reply, target_secret = await call_on_target(runtime, admin_client, secret, call)
        error_of(reply, "forbidden", 403)
        assert "ManageOrganizationTokens" in reply.body["error"]["message"]
        assert await unchanged(runtime, target_secret, tokens=2)

    @pytest.mark.parametrize(("method", "path", "body"), READS + WRITES)
    async def test_token_without_admin_permission_is_403(
        self, runtime: Runtime, admin_client: Client, method: str, path: str, body: Any
    ) -> None:
        """A valid token holding only API permissions gets 403 forbidden everywhere."""
        _, secret = await mint(runtime, "Reader", "Writer")
        call = (method, path, body)
        reply, target_secret = await call_on_target(runtime, admin_client, secret, call)
        error_of(reply, "forbidden", 403)
        assert await unchanged(runtime, target_secret, tokens=2)

    @pytest.mark.parametrize(
        ("token_filter", "policy", "real_ip", "expected"),
        [
            pytest.param("office", {}, None, 403, id="office-from-loopback"),
            pytest.param("office", {}, "10.1.2.3", 200, id="office-via-trusted-x-real-ip"),
            pytest.param("office", {}, "::ffff:10.1.2.3", 200, id="office-ipv4-mapped"),
            pytest.param("office", {}, "192.0.2.1", 403, id="office-outside-address"),
            pytest.param("localhost", {}, None, 200, id="localhost-from-loopback"),
            pytest.param("localhost", {}, "10.1.2.3", 403, id="localhost-via-x-real-ip"),
            pytest.param(
                None, {"enforce_ip_filter": "office"}, None, 403, id="enforced-office-from-loopback"
            ),
            pytest.param(
                None,
                {"enforce_ip_filter": "office"},
                "10.1.2.3",
                200,
                id="enforced-office-via-x-real-ip",
            ),
            pytest.param(
                "localhost", {"enforce_ip_filter": "office"}, None, 403, id="enforced-overrides-own"
            ),
        ],
    )
    async def test_ip_filter_of_the_admin_token(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        token_filter: str | None,
        policy: dict[str, Any],
        real_ip: str | None,
        expected: int,
    ) -> None:
        """The admin token's effective filter is checked against the client address; X-Real-IP
        from the trusted loopback peer is that address."""
        _, secret = await mint(runtime, MANAGE, ip_filter=token_filter)
        use_config(runtime, tmp_path, security_policy=policy)
        headers = {"X-Real-IP": real_ip} if real_ip else {}
        reply = await send(admin_client, "GET", TOKENS, secret, headers=headers)
        if expected == 200:
            assert reply.status == 200, reply.body
        else:
            error_of(reply, "forbidden", 403)

    @pytest.mark.parametrize(
        "real_ip",
        [
            "not-an-ip",
            "",
            "10.1.2.3, 10.0.0.1",
            "010.1.2.3",
            "10.1.2.3:80",
            "10.0.0.0/8",
            "[::1]",
            "unknown",
            "10.1.2.3\u00a0",
            "١٠.١.٢.٣",
        ],
    )
    async def test_garbage_x_real_ip_from_trusted_peer_is_403(
        self, runtime: Runtime, admin_client: Client, admin_secret: str, real_ip: str
    ) -> None:
        """An unparseable X-Real-IP from a trusted proxy is refused, never guessed at."""
        reply = await send(
            admin_client, "GET", TOKENS, admin_secret, headers={"X-Real-IP": real_ip}
        )
        error_of(reply, "forbidden", 403)

    async def test_x_real_ip_from_untrusted_peer_is_ignored(
        self, runtime: Runtime, tmp_path: Path, admin_client: Client
    ) -> None:
        """With no trusted proxies, X-Real-IP cannot put a loopback client in the office."""
        _, secret = await mint(runtime, MANAGE, ip_filter="office")
        use_config(runtime, tmp_path, trusted_proxies=[])
        reply = await send(admin_client, "GET", TOKENS, secret, headers={"X-Real-IP": "10.1.2.3"})
        error_of(reply, "forbidden", 403)

    async def test_tokens_disabled_refuses_every_admin_call(
        self, runtime: Runtime, tmp_path: Path, admin_client: Client, admin_secret: str
    ) -> None:
        """tokens_enabled: false refuses admin tokens too, with 403 tokens_disabled."""
        use_config(runtime, tmp_path, security_policy={"tokens_enabled": False})
        for method, path in [("GET", TOKENS), ("GET", "/admin/v1/policy")]:
            error_of(await send(admin_client, method, path, admin_secret), "tokens_disabled", 403)


def is_cached(runtime: Runtime, secret: str) -> bool:
    """The record cache holds the token of ``secret``."""
    return runtime.cache.get(runtime.service.digest(secret)) is not None


class TestChangesTakeEffectAtOnce:
    """A change through the admin API reaches /auth at once, past the record cache (SPEC §6)."""

    async def test_patch(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """Removing the permission that grants the request denies it on the next request."""
        target, secret = await mint(runtime, "Reader")
        assert await auth_status(auth_client, secret) == 200
        assert is_cached(runtime, secret)
        path = f"{TOKENS}/{target.id}"
        await send(admin_client, "PATCH", path, admin_secret, body={"permissions": ["Writer"]})
        assert await auth_status(auth_client, secret) == 403
        await send(admin_client, "PATCH", path, admin_secret, body={"permissions": ["Reader"]})
        assert await auth_status(auth_client, secret) == 200

    async def test_rotate(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """The old secret is refused on the next request; the new one is accepted."""
        target, old = await mint(runtime, "Reader")
        assert await auth_status(auth_client, old) == 200
        assert is_cached(runtime, old)
        reply = await send(admin_client, "POST", f"{TOKENS}/{target.id}/rotate", admin_secret)
        assert await auth_status(auth_client, old) == 401
        assert await auth_status(auth_client, reply.body["token"]) == 200

    async def test_delete(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """A deleted token is refused on the next request."""
        target, secret = await mint(runtime, "Reader")
        assert await auth_status(auth_client, secret) == 200
        assert is_cached(runtime, secret)
        await send(admin_client, "DELETE", f"{TOKENS}/{target.id}", admin_secret)
        assert await auth_status(auth_client, secret) == 401

    async def test_admin_token_deleting_itself(
        self, runtime: Runtime, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """An admin token that deletes itself is refused on its next call."""
        record, secret = admin
        assert (await send(admin_client, "GET", TOKENS, secret)).status == 200
        assert is_cached(runtime, secret)
        assert (await send(admin_client, "DELETE", f"{TOKENS}/{record.id}", secret)).status == 204
        error_of(await send(admin_client, "GET", TOKENS, secret), "unauthorized", 401)

    async def test_admin_token_rotating_itself(
        self, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """After rotating itself, only the new admin secret works."""
        record, old = admin
        reply = await send(admin_client, "POST", f"{TOKENS}/{record.id}/rotate", old)
        error_of(await send(admin_client, "GET", TOKENS, old), "unauthorized", 401)
        assert (await send(admin_client, "GET", TOKENS, reply.body["token"])).status == 200

    async def test_admin_token_demoted_to_view(
        self, runtime: Runtime, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """An admin token patched down to View can read but no longer write, at once."""
        record, secret = admin
        path = f"{TOKENS}/{record.id}"
        assert (
            await send(admin_client, "PATCH", path, secret, body={"permissions": [VIEW]})
        ).status == 200
        assert (await send(admin_client, "GET", TOKENS, secret)).status == 200
        reply = await send(admin_client, "POST", TOKENS, secret, body=new_token())
        error_of(reply, "forbidden", 403)


class TestAuditLog:
    """Each successful change is one JSON line without secrets; failures write nothing."""

    async def test_each_change_writes_one_line(
        self, runtime: Runtime, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """create, update, rotate and delete: action, actor, target, client and time."""
        actor, secret = admin
        start = len(audit_entries(runtime))
        created = await send(admin_client, "POST", TOKENS, secret, body=new_token())
        token_id = created.body["id"]
        path = f"{TOKENS}/{token_id}"
        await send(admin_client, "PATCH", path, secret, body={"permissions": ["Writer"]})
        rotated = await send(admin_client, "POST", f"{path}/rotate", secret)
        await send(admin_client, "DELETE", path, secret, headers={"X-Real-IP": "10.9.8.7"})
        entries = audit_entries(runtime)[start:]
        assert [entry["action"] for entry in entries] == [
            "token.create",
            "token.update",
            "token.rotate",
            "token.delete",
        ]
        for entry in entries:
            assert {"time", "action", "actor", "target", "client"} <= set(entry)
            assert (entry["time"], entry["actor"], entry["target"]) == (
                rfc3339(NOW),
                actor.id,
                token_id,
            )
        assert [entry["client"] for entry in entries] == ["127.0.0.1"] * 3 + ["10.9.8.7"]
        text = audit_text(runtime)
        for leaked in (secret, created.body["token"], rotated.body["token"]):
            assert leaked not in text
        assert SECRET_PATTERN.search(text) is None

    @pytest.mark.parametrize(
        ("method", "path", "body", "status"),
        [
            pytest.param("POST", TOKENS, new_token("admin"), 409, id="name-taken"),
            pytest.param("POST", TOKENS, new_token(permissions=["Nope"]), 422, id="unknown-perm"),
            pytest.param("POST", TOKENS, {"name": "x"}, 422, id="no-permissions"),
            pytest.param("POST", TOKENS, [1], 400, id="not-an-object"),
            pytest.param(
                "PATCH",
                f"{TOKENS}/{UNKNOWN_ID}",
                {"permissions": ["Reader"]},
                404,
                id="patch-unknown",
            ),
            pytest.param("PATCH", f"{TOKENS}/{{id}}", {"permissions": []}, 422, id="patch-empty"),
            pytest.param(
                "POST", f"{TOKENS}/{UNKNOWN_ID}/rotate", _ABSENT, 404, id="rotate-unknown"
            ),
            pytest.param("DELETE", f"{TOKENS}/{UNKNOWN_ID}", _ABSENT, 404, id="delete-unknown"),
            pytest.param("DELETE", f"{TOKENS}/x", _ABSENT, 404, id="delete-bad-id"),
        ],
    )
    async def test_failed_changes_write_nothing(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        method: str,
        path: str,
        body: Any,
        status: int,
    ) -> None:
        """A refused change leaves the audit log as it was."""
        target, _ = await mint(runtime, "Reader")
        before = audit_text(runtime)
        reply = await send(admin_client, method, path.format(id=target.id), admin_secret, body=body)
        assert reply.status == status
        assert audit_text(runtime) == before

    async def test_refused_callers_write_nothing(
        self, runtime: Runtime, admin_client: Client
    ) -> None:
        """Unauthenticated and unauthorized change attempts leave no audit record."""
        target, _ = await mint(runtime, "Reader")
        _, view = await mint(runtime, VIEW)
        before = audit_text(runtime)
        for secret in (None, view):
            for method, path in [("POST", TOKENS), ("DELETE", f"{TOKENS}/{target.id}")]:
                body = new_token() if method == "POST" else _ABSENT
                reply = await send(admin_client, method, path, secret, body=body)
                assert reply.status in (401, 403)
        assert audit_text(runtime) == before


class TestSecretsNeverInErrors:
    """Error bodies never carry a secret, even one pasted into the wrong field (SECURITY 14)."""

    @pytest.mark.parametrize(
        ("make_body", "code"),
        [
            pytest.param(lambda s: new_token(permissions=[s]), "unknown_permission", id="perm"),
            pytest.param(lambda s: new_token(ip_filter=s), "unknown_ip_filter", id="ip-filter"),
            pytest.param(lambda s: new_token(expires_in=s), "invalid_expiry", id="expiry"),
            pytest.param(lambda s: {**new_token(), s: 1}, "unknown_field", id="field-name"),
        ],
    )
    async def test_pasted_secret_is_not_echoed(
        self, admin_client: Client, admin_secret: str, make_body: Any, code: str
    ) -> None:
        """The refusal explains itself without repeating the secret (or 20 chars of it)."""
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=make_body(admin_secret))
        error_of(reply, code, 422)
        assert admin_secret[8:28] not in reply.text

    async def test_name_taken_with_a_secret_as_name(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A 409 about a token named like a secret does not repeat that name."""
        body = new_token(name=admin_secret)
        assert (await send(admin_client, "POST", TOKENS, admin_secret, body=body)).status == 201
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=body)
        error_of(reply, "name_taken", 409)
        assert admin_secret not in reply.text


def _json_text(value: Any) -> bytes:
    return json.dumps(value).encode()


_VALID = '"name": "n", "permissions": ["Reader"]'
# (raw body, status, code): hostile bodies for POST /admin/v1/tokens (SECURITY 25).
HOSTILE_BODIES = [
    pytest.param(b"", 400, "invalid_json", id="empty"),
    pytest.param(b"not json", 400, "invalid_json", id="text"),
    pytest.param(b"{", 400, "invalid_json", id="truncated"),
    pytest.param(b"{'name': 'n'}", 400, "invalid_json", id="single-quotes"),
    pytest.param(b"null", 400, "invalid_json", id="null"),
    pytest.param(b"[]", 400, "invalid_json", id="array"),
    pytest.param(b'"x"', 400, "invalid_json", id="string"),
    pytest.param(b"1", 400, "invalid_json", id="number"),
    pytest.param(b"true", 400, "invalid_json", id="bool"),
    pytest.param(b"NaN", 400, "invalid_json", id="nan"),
    pytest.param(b"\xff\xfe\x00", 400, "invalid_json", id="not-utf8"),
    pytest.param(b"\x00" * 100, 400, "invalid_json", id="nul-bytes"),
    pytest.param(b"{" + _VALID.encode() + b"} trailing", 400, "invalid_json", id="trailing"),
    pytest.param(b"[" * 100_000, 413, "body_too_large", id="deep-open-100k"),
    pytest.param(b"[" * 60_000, 400, "invalid_json", id="deep-open-60k"),
    pytest.param(b"[" * 30_000 + b"]" * 30_000, 400, "invalid_json", id="deep-closed"),
    pytest.param(b'{"a":' * 10_000, 400, "invalid_json", id="deep-objects"),
    pytest.param(
        b'{"name":' + b"[" * 30_000 + b"]" * 30_000 + b"}", 400, "invalid_json", id="deep-in-field"
    ),
    pytest.param(b'{"name": ' + b"9" * 5000 + b"}", 400, "invalid_json", id="5000-digit-int"),
    pytest.param(
        b'{"name": "\\ud800", "permissions": ["Reader"]}',
        400,
        "invalid_json",
        id="lone-surrogate-name",
    ),
    pytest.param(
        b'{"name": "n", "permissions": ["\\udfff"]}',
        400,
        "invalid_json",
        id="lone-surrogate-permission",
    ),
    pytest.param(b'{"\\ud800": 1}', 400, "invalid_json", id="lone-surrogate-key"),
    pytest.param(
        b'{"name": 1e999, "permissions": ["Reader"]}', 422, "invalid_field", id="infinite-name"
    ),
    pytest.param(b'{"name": NaN, "permissions": ["Reader"]}', 422, "invalid_field", id="nan-name"),
    pytest.param(
        _json_text({"name": 5, "permissions": ["Reader"]}), 422, "invalid_field", id="name-number"
    ),
    pytest.param(
        _json_text({"name": None, "permissions": ["Reader"]}), 422, "invalid_field", id="name-null"
    ),
    pytest.param(
        _json_text({"name": ["n"], "permissions": ["Reader"]}), 422, "invalid_field", id="name-list"
    ),
    pytest.param(
        _json_text({"name": {"n": 1}, "permissions": ["Reader"]}),
        422,
        "invalid_field",
        id="name-object",
    ),
    pytest.param(
        _json_text({"name": True, "permissions": ["Reader"]}), 422, "invalid_field", id="name-bool"
    ),
    pytest.param(_json_text({"permissions": ["Reader"]}), 422, "invalid_field", id="name-missing"),
    pytest.param(
        _json_text({"name": "n", "permissions": "x"}), 422, "invalid_field", id="permissions-string"
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [1]}),
        422,
        "invalid_field",
        id="permissions-number-item",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [None]}),
        422,
        "invalid_field",
        id="permissions-null-item",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [["Reader"]]}),
        422,
        "invalid_field",
        id="permissions-nested",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": {"Reader": True}}),
        422,
        "invalid_field",
        id="permissions-object",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": None}), 422, "invalid_field", id="permissions-null"
    ),
    pytest.param(_json_text({"name": "n"}), 422, "invalid_field", id="permissions-missing"),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "expires_in": 30}),
        422,
        "invalid_field",
        id="expires-in-number",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "expires_in": True}),
        422,
        "invalid_field",
        id="expires-in-bool",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "expires_in": ["1d"]}),
        422,
        "invalid_field",
        id="expires-in-list",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "ip_filter": 1}),
        422,
        "invalid_field",
        id="ip-filter-number",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "ip_filter": ["office"]}),
        422,
        "invalid_field",
        id="ip-filter-list",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "nam": "x"}),
        422,
        "unknown_field",
        id="unknown-field",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "id": UNKNOWN_ID}),
        422,
        "unknown_field",
        id="field-id",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "created_by": "cli"}),
        422,
        "unknown_field",
        id="field-created-by",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "token": "authsvc_x"}),
        422,
        "unknown_field",
        id="field-token",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "__proto__": {}}),
        422,
        "unknown_field",
        id="field-proto",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "name\u0000": "x"}),
        422,
        "unknown_field",
        id="field-with-nul",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "x" * 5000: 1}),
        422,
        "unknown_field",
        id="field-5000-chars",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [f"P{i}" for i in range(5000)]}),
        422,
        "unknown_permission",
        id="5000-permissions",
    ),
    pytest.param(
        _json_text({"name": "n" * 60_000, "permissions": ["Reader"]}),
        422,
        "invalid_name",
        id="60k-name",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"] * 5000}),
        201,
        None,
        id="repeated-permission",
    ),
]


async def _chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    """``data`` sent with Transfer-Encoding: chunked (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class TestHostileBodies:
    """Bad bodies get a 4xx in the error shape, never a 500, and change nothing."""

    @pytest.mark.parametrize(("raw", "status", "code"), HOSTILE_BODIES)
    async def test_create(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        raw: bytes,
        status: int,
        code: str | None,
    ) -> None:
        """Each hostile create body answers its documented status and code."""
        reply = await send(
            admin_client,
            "POST",
            TOKENS,
            admin_secret,
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        if code is None:
            assert reply.status == status, reply.body
            return
        error_of(reply, code, status)
        assert len(await runtime.store.all_tokens()) == 1

    @pytest.mark.parametrize(("raw", "status", "code"), HOSTILE_BODIES)
    async def test_patch_never_500s(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        raw: bytes,
        status: int,
        code: str | None,
    ) -> None:
        """The same bodies sent to PATCH get a 4xx in the error shape; the token is unchanged."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(admin_client, "PATCH", f"{TOKENS}/{target.id}", admin_secret, data=raw)
        if reply.status == 200:  # {"permissions": [...]} alone is a valid PATCH body
            assert set(json.loads(raw)) == {"permissions"}
            return
        assert 400 <= reply.status < 500, reply.body
        error_of(reply, reply.body["error"]["code"], reply.status)
        assert (await runtime.service.get(target.id)).permissions == {"Reader"}

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    @pytest.mark.parametrize("method", ["POST", "PATCH"])
    async def test_body_over_64_kib_is_413(
        self,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        chunked: bool,
        method: str,
    ) -> None:
        """One byte over 64 KiB is 413 body_too_large, with or without Content-Length."""
        target, _ = await mint(runtime, "Reader")
        path = TOKENS if method == "POST" else f"{TOKENS}/{target.id}"
        raw = b'{"name": "' + b"n" * (64 * 1024 - 11) + b'"}'
        assert len(raw) == 64 * 1024 + 1
        data = _chunks(raw) if chunked else raw
        reply = await send(admin_client, method, path, admin_secret, data=data)
        error_of(reply, "body_too_large", 413)

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    async def test_body_of_exactly_64_kib_is_read(
        self, admin_client: Client, admin_secret: str, chunked: bool
    ) -> None:
        """A 64 KiB body is within the limit: it is parsed and judged on its content."""
        head = b'{"permissions": ["Reader"], "name": "'
        raw = head + b"n" * (64 * 1024 - len(head) - 2) + b'"}'
        assert len(raw) == 64 * 1024
        reply = await send(
            admin_client, "POST", TOKENS, admin_secret, data=_chunks(raw) if chunked else raw
        )
        error_of(reply, "invalid_name", 422)

    async def test_large_body_without_token_is_401(self, admin_client: Client) -> None:
        """Authentication comes first: an anonymous huge body gets 401, not 413."""
        reply = await send(admin_client, "POST", TOKENS, data=b"[" * 100_000)
        error_of(reply, "unauthorized", 401)


class TestRoutingErrors:
    """Unknown routes and wrong methods answer in the error shape too."""

    @pytest.mark.parametrize(
        "path",
        [
            "/admin",
            "/admin/v1",
            "/admin/v1/",
            "/admin/v2/tokens",
            "/admin/v1/tokens/",
            "/admin/v1/nope",
            "/admin/v1/Tokens",
            f"/admin/v1/tokens/{UNKNOWN_ID}/rotate/x",
            "/admin/v1/permissions/",
            "/.env",
            "/admin/v1/%2e%2e/healthz",
        ],
    )
    @pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "admin"])
    async def test_unknown_route_is_404(
        self, admin_client: Client, admin_secret: str, path: str, authenticated: bool
    ) -> None:
        """404 not_found in the error shape, with or without a token."""
        secret = admin_secret if authenticated else None
        reply = await send(admin_client, "GET", URL(path, encoded=True), secret)
        error_of(reply, "not_found", 404)

    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("PUT", TOKENS, {"GET", "POST"}),
            ("DELETE", TOKENS, {"GET", "POST"}),
            ("PATCH", TOKENS, {"GET", "POST"}),
            ("PUT", f"{TOKENS}/{UNKNOWN_ID}", {"GET", "PATCH", "DELETE"}),
            ("POST", f"{TOKENS}/{UNKNOWN_ID}", {"GET", "PATCH", "DELETE"}),
            ("GET", f"{TOKENS}/{UNKNOWN_ID}/rotate", {"POST"}),
            ("POST", "/admin/v1/permissions", {"GET"}),
            ("POST", "/admin/v1/ip-filters", {"GET"}),
            ("PUT", "/admin/v1/policy", {"GET"}),
            ("POST", "/admin/v1/openapi.json", {"GET"}),
            ("POST", "/healthz", {"GET", "HEAD"}),
            ("DELETE", "/metrics", {"GET", "HEAD"}),
        ],
    )
    async def test_wrong_method_is_405(
        self, admin_client: Client, admin_secret: str, method: str, path: str, allowed: set[str]
    ) -> None:
        """405 method_not_allowed in the error shape, with an Allow header."""
        reply = await send(admin_client, method, path, admin_secret)
        error_of(reply, "method_not_allowed", 405)
        assert set(reply.headers["Allow"].split(",")) == allowed

    async def test_head_on_admin_reads_is_405(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """HEAD is not a read of the admin API (allow_head is off): 405, never a 500."""
        reply = await send(admin_client, "HEAD", TOKENS, admin_secret)
        assert reply.status == 405


ALL_CALLS = [*READS, *WRITES]


class TestStoreUnavailable:
    """With the store gone, every admin call that needs it is 503 store_unavailable."""

    @pytest.mark.parametrize(("method", "path", "body"), ALL_CALLS)
    @pytest.mark.parametrize("warm", [False, True], ids=["cold-cache", "admin-cached"])
    async def test_every_call_is_503(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        method: str,
        path: str,
        body: Any,
        warm: bool,
    ) -> None:
        """503 in the error shape; nothing is written; an uncached admin token cannot be
        checked, so then even configuration reads are 503."""
        target, _ = await mint(runtime, "Reader")
        if warm:
            assert (await send(admin_client, "GET", TOKENS, admin_secret)).status == 200
        before = audit_text(runtime)
        await runtime.store.close()
        reply = await send(admin_client, method, path.format(id=target.id), admin_secret, body=body)
        if warm and not path.startswith(TOKENS):
            # The catalog, filters and policy live in the configuration: with the admin
            # token cached (as /auth serves cached tokens, SECURITY 19) they still answer.
            assert reply.status == 200, reply.body
        else:
            error_of(reply, "store_unavailable", 503)
        assert audit_text(runtime) == before
        assert admin_secret not in reply.text


class TestOversizedRequestHead:
    """Request lines and headers beyond the server's limits (SECURITY 10, 14, 25)."""

    async def test_oversized_authorization_does_not_echo_the_secret(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A 9 KiB Authorization header starting with a real secret is refused without
        sending the secret back."""
        headers = {"Authorization": f"Bearer {admin_secret}" + "a" * 9000}
        reply = await send(admin_client, "GET", TOKENS, headers=headers)
        assert 400 <= reply.status < 500
        assert admin_secret not in reply.text

    async def test_very_long_path_is_in_the_error_shape(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A 9000-character id is a 4xx in the documented error shape."""
        reply = await send(admin_client, "GET", f"{TOKENS}/{'a' * 9000}", admin_secret)
        assert 400 <= reply.status < 500
        assert isinstance(reply.body, dict), reply.text[:200]
        error_of(reply, reply.body["error"]["code"], reply.status)
