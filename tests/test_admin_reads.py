"""The admin API's reads (SPEC §4): the token list (paging, sorting, filtering, bad
queries and the parameter at fault), derived status and effective expiry, the catalog,
the IP filters and the policy in force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from tests.admin_helpers import (
    DAY,
    TOKENS,
    Reply,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    send,
)
from tests.factories import TOKEN_FIELDS, FrozenClock
from tests.webapp import MANAGE, NOW, VIEW, Client, mint, use_config


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
        ("query", "field"),
        [
            pytest.param("limit=0", "limit", id="limit-0"),
            pytest.param("limit=501", "limit", id="limit-501"),
            pytest.param("limit=-1", "limit", id="limit-negative"),
            pytest.param("limit=abc", "limit", id="limit-text"),
            pytest.param("limit=1.5", "limit", id="limit-fraction"),
            pytest.param("limit=", "limit", id="limit-empty"),
            pytest.param("limit=%201", "limit", id="limit-space"),
            pytest.param("limit=%EF%BC%91", "limit", id="limit-fullwidth-digit"),
            pytest.param("limit=%C2%B2", "limit", id="limit-superscript"),
            pytest.param("limit=99999999999999999999", "limit", id="limit-huge"),
            pytest.param("offset=-1", "offset", id="offset-negative"),
            pytest.param("offset=x", "offset", id="offset-text"),
            pytest.param("offset=1000000001", "offset", id="offset-too-large"),
            pytest.param("sort=created_at", "sort", id="sort-unknown"),
            pytest.param("sort=NAME", "sort", id="sort-case"),
            pytest.param("sort=", "sort", id="sort-empty"),
            pytest.param("order=up", "order", id="order-unknown"),
            pytest.param("order=ASC", "order", id="order-case"),
            pytest.param("name=" + "x" * 101, "name", id="name-too-long"),
            pytest.param("page=2", "page", id="unknown-param"),
            pytest.param("limit=1&limit=2", "limit", id="repeated-param"),
            pytest.param("sort=name&sort=expires_at", "sort", id="repeated-sort"),
            # no token name holds control characters, and the stores read them differently
            pytest.param("name=%00", "name", id="name-nul"),
            pytest.param("name=a%00b", "name", id="name-inner-nul"),
            pytest.param("name=%0A", "name", id="name-newline"),
            pytest.param("name=%1B%5B0m", "name", id="name-escape-sequence"),
        ],
    )
    async def test_bad_query_is_400(
        self, admin_client: Client, admin_secret: str, query: str, field: str
    ) -> None:
        """Every bad parameter is 400 invalid_query in the error shape, naming the parameter."""
        reply = await send(
            admin_client, "GET", URL(f"{TOKENS}?{query}", encoded=True), admin_secret
        )
        error_of(reply, "invalid_query", 400, field=field)

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


class TestEffectiveExpiry:
    """effective_expires_at: when the token stops being accepted, from the server's one rule
    (the earlier of expires_at and created_at + the policy's max_lifetime in force)."""

    @pytest.mark.parametrize(
        ("expires_in", "max_lifetime", "expires_after", "effective_after"),
        [
            pytest.param(None, None, None, None, id="never"),
            pytest.param("2d", None, 2 * DAY, 2 * DAY, id="own-expiry"),
            pytest.param(None, "1d", None, DAY, id="no-own-expiry-capped"),
            pytest.param("2d", "1d", 2 * DAY, DAY, id="policy-earlier"),
            pytest.param("2d", "3d", 2 * DAY, 2 * DAY, id="own-earlier"),
            pytest.param("2d", "2d", 2 * DAY, 2 * DAY, id="equal"),
        ],
    )
    async def test_list_and_show(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        admin_secret: str,
        expires_in: str | None,
        max_lifetime: str | None,
        expires_after: int | None,
        effective_after: int | None,
    ) -> None:
        """Both GET calls answer the token's own expires_at and the effective expiry under
        the policy in force, a maximum set after creation included."""
        target, _ = await mint(runtime, "Reader", name="target", expires_in=expires_in)
        policy = {} if max_lifetime is None else {"max_lifetime": max_lifetime}
        use_config(runtime, tmp_path, security_policy=policy)
        shown = await send(admin_client, "GET", f"{TOKENS}/{target.id}", admin_secret)
        listed = await send(admin_client, "GET", f"{TOKENS}?name=target", admin_secret)
        expected = {
            "expires_at": None if expires_after is None else rfc3339(NOW + expires_after),
            "effective_expires_at": (
                None if effective_after is None else rfc3339(NOW + effective_after)
            ),
        }
        for token in (shown.body, listed.body["tokens"][0]):
            assert {key: token[key] for key in expected} == expected


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
                    "max_rate_limit": None,
                },
                id="defaults",
            ),
            pytest.param(
                {
                    "max_lifetime": "90d",
                    "enforce_ip_filter": "localhost",
                    "allow_permission_updates": False,
                    "max_rate_limit": "10/s",
                },
                {
                    "tokens_enabled": True,
                    "max_lifetime": "90d",
                    "max_lifetime_seconds": 90 * DAY,
                    "enforce_ip_filter": "localhost",
                    "allow_permission_updates": False,
                    "max_rate_limit": "10/s",
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
