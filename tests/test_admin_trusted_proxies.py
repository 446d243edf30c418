"""The admin listener believes ``X-Real-IP`` only from ``admin_trusted_proxies`` (SPEC §4,
SECURITY 31); the auth listener only from ``trusted_proxies``. Each list is live.

The test client connects from 127.0.0.1, so "loopback listed" makes it a trusted proxy
and ``[]`` an ordinary client whose address is its TCP peer's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authsvc.service.runtime import Runtime
from tests.admin_helpers import TOKENS, error_of, send
from tests.webapp import MANAGE, READ_ITEMS, Client, bearer, mint, use_config

LOOPBACK = ["127.0.0.1/32", "::1/128"]
OFFICE_IP = "10.1.2.3"  # allowed by the "office" filter, denied by "localhost"

# (trusted_proxies, admin_trusted_proxies, the admin token's IP filter, X-Real-IP sent
# (None: no header), expected status of GET /admin/v1/tokens)
ADMIN_CASES = [
    pytest.param(LOOPBACK, [], "office", OFFICE_IP, 403, id="untrusted-peer-claims-office"),
    pytest.param(LOOPBACK, [], "localhost", OFFICE_IP, 200, id="untrusted-peer-is-its-address"),
    pytest.param(LOOPBACK, [], "localhost", "not-an-ip", 200, id="untrusted-peer-junk-ignored"),
    pytest.param([], ["127.0.0.1/32"], "office", OFFICE_IP, 200, id="trusted-peer-believed"),
    pytest.param([], LOOPBACK, "localhost", OFFICE_IP, 403, id="trusted-peer-claim-judged"),
    pytest.param([], LOOPBACK, "localhost", "not-an-ip", 403, id="trusted-peer-junk-refused"),
    pytest.param([], LOOPBACK, "localhost", None, 200, id="trusted-peer-without-header"),
    pytest.param(LOOPBACK, ["10.0.0.0/8"], "office", OFFICE_IP, 403, id="other-proxy-listed"),
]


class TestAdminListener:
    @pytest.mark.parametrize(
        ("trusted", "admin_trusted", "ip_filter", "real_ip", "expected"), ADMIN_CASES
    )
    async def test_x_real_ip_is_believed_only_from_admin_trusted_proxies(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        trusted: list[str],
        admin_trusted: list[str],
        ip_filter: str,
        real_ip: str | None,
        expected: int,
    ) -> None:
        """The admin token's IP filter judges X-Real-IP from a peer in
        admin_trusted_proxies, and the TCP peer otherwise, whatever trusted_proxies says."""
        _, secret = await mint(runtime, MANAGE, ip_filter=ip_filter)
        use_config(runtime, tmp_path, trusted_proxies=trusted, admin_trusted_proxies=admin_trusted)
        headers = {} if real_ip is None else {"X-Real-IP": real_ip}
        reply = await send(admin_client, "GET", TOKENS, secret, headers=headers)
        if expected == 200:
            assert reply.status == 200, reply.text
        else:
            error_of(reply, "forbidden", expected)

    async def test_a_live_change_applies_to_the_next_call(
        self, runtime: Runtime, tmp_path: Path, admin_client: Client
    ) -> None:
        """Listing the peer lets its X-Real-IP in; removing it again shuts it out."""
        _, secret = await mint(runtime, MANAGE, ip_filter="office")
        claim = {"X-Real-IP": OFFICE_IP}
        statuses = []
        for admin_trusted in ([], LOOPBACK, []):
            use_config(runtime, tmp_path, admin_trusted_proxies=admin_trusted)
            statuses.append((await send(admin_client, "GET", TOKENS, secret, headers=claim)).status)
        assert statuses == [403, 200, 403]


class TestAuthListener:
    @pytest.mark.parametrize(
        ("trusted", "admin_trusted", "expected"),
        [
            pytest.param([], LOOPBACK, 403, id="only-admin-trusts-the-peer"),
            pytest.param(LOOPBACK, [], 200, id="only-auth-trusts-the-peer"),
        ],
    )
    async def test_auth_listener_ignores_admin_trusted_proxies(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        auth_client: Client,
        trusted: list[str],
        admin_trusted: list[str],
        expected: int,
    ) -> None:
        """/auth believes X-Real-IP from trusted_proxies alone, never from the admin list."""
        _, secret = await mint(runtime, "Reader", ip_filter="office")
        use_config(runtime, tmp_path, trusted_proxies=trusted, admin_trusted_proxies=admin_trusted)
        headers = {**bearer(secret), **READ_ITEMS, "X-Real-IP": OFFICE_IP}
        response = await auth_client.get("/auth", headers=headers)
        assert response.status == expected
