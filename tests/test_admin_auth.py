"""Who may call the admin API (SPEC §4, SECURITY 9, 13): authentication with one bearer
token (401), authorization by View and Manage (403), and the admin token's own IP filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from yarl import URL

from authsvc.rules.tokens import new_secret
from authsvc.service.runtime import Runtime
from authsvc.store import ListQuery
from tests.admin_helpers import (
    ABSENT,
    READS,
    TOKENS,
    WRITES,
    Reply,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    new_token,
    send,
)
from tests.factories import FrozenClock
from tests.webapp import MANAGE, VIEW, Client, mint, use_config

DAY = 86400


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
            pytest.param("GET", TOKENS, ABSENT, id="read"),
            pytest.param("POST", TOKENS, new_token(), id="write"),
            pytest.param("GET", "/admin/v1/policy", ABSENT, id="policy"),
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
        """With no admin trusted proxies, X-Real-IP cannot put a loopback client in the
        office, whatever the auth listener's trusted_proxies say."""
        _, secret = await mint(runtime, MANAGE, ip_filter="office")
        use_config(runtime, tmp_path, admin_trusted_proxies=[])
        reply = await send(admin_client, "GET", TOKENS, secret, headers={"X-Real-IP": "10.1.2.3"})
        error_of(reply, "forbidden", 403)

    async def test_tokens_disabled_refuses_every_admin_call(
        self, runtime: Runtime, tmp_path: Path, admin_client: Client, admin_secret: str
    ) -> None:
        """tokens_enabled: false refuses admin tokens too, with 403 tokens_disabled."""
        use_config(runtime, tmp_path, security_policy={"tokens_enabled": False})
        for method, path in [("GET", TOKENS), ("GET", "/admin/v1/policy")]:
            error_of(await send(admin_client, method, path, admin_secret), "tokens_disabled", 403)
