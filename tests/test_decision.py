"""The acceptance rules of SPEC §2, one pure function, frozen time."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from authsvc.rules.decision import Reason, admin_access, decide, token_status
from authsvc.rules.endpoints import split_path
from authsvc.rules.request import Described
from tests.factories import make_config, make_record

CREATED = 1_000_000.0
DAY = 86_400


def request(method: str = "GET", path: str = "/api/v1/items", ip: str = "10.1.2.3") -> Described:
    return Described(method, path, split_path(path), ip_address(ip))


def policy(**fields: Any) -> dict[str, Any]:
    return {"security_policy": fields}


class TestExpiry:
    @pytest.mark.parametrize(
        ("expires_at", "now", "expected"),
        [
            pytest.param(CREATED + 60, CREATED + 59, Reason.OK, id="before"),
            pytest.param(CREATED + 60, CREATED + 59.999, Reason.OK, id="just-before"),
            pytest.param(CREATED + 60, CREATED + 60, Reason.EXPIRED, id="now-equals-expiry"),
            pytest.param(CREATED + 60, CREATED + 61, Reason.EXPIRED, id="after"),
            pytest.param(None, CREATED + 10_000 * DAY, Reason.OK, id="no-expiry"),
        ],
    )
    def test_own_expiry(self, expires_at: float | None, now: float, expected: Reason) -> None:
        """now == expires_at is already expired."""
        record = make_record(created_at=CREATED, expires_at=expires_at)
        assert decide(record, request(), make_config(), now) is expected

    @pytest.mark.parametrize(
        ("max_lifetime", "age_days", "expected"),
        [
            pytest.param("90d", 89, Reason.OK, id="younger-than-max"),
            pytest.param("90d", 90, Reason.EXPIRED, id="exactly-max"),
            pytest.param("30d", 45, Reason.EXPIRED, id="tightened-blocks-older"),
            pytest.param("60d", 45, Reason.OK, id="loosened-unblocks"),
            pytest.param(None, 10_000, Reason.OK, id="no-max"),
        ],
    )
    def test_policy_max_lifetime_counts_from_creation(
        self, max_lifetime: str | None, age_days: int, expected: Reason
    ) -> None:
        """A policy max_lifetime blocks tokens older than it without rewriting them."""
        record = make_record(created_at=CREATED, expires_at=None)
        config = make_config(**policy(max_lifetime=max_lifetime))
        assert decide(record, request(), config, CREATED + age_days * DAY) is expected


class TestPolicySwitches:
    def test_tokens_disabled_refuses_every_token(self) -> None:
        """tokens_enabled: false refuses even a fully valid token."""
        config = make_config(**policy(tokens_enabled=False))
        assert decide(make_record(), request(), config, CREATED) is Reason.TOKENS_DISABLED


class TestIpFilter:
    @pytest.mark.parametrize(
        ("token_filter", "enforced", "ip", "expected"),
        [
            pytest.param(None, None, "192.0.2.1", Reason.OK, id="no-filter-no-restriction"),
            pytest.param("office", None, "10.9.9.9", Reason.OK, id="own-filter-allows"),
            pytest.param(
                "office", None, "192.0.2.1", Reason.IP_NOT_ALLOWED, id="own-filter-denies"
            ),
            pytest.param("office", None, "2001:db8::5", Reason.OK, id="ipv6-allowed"),
            pytest.param("localhost", None, "::ffff:127.0.0.1", Reason.OK, id="mapped-ipv4"),
            pytest.param(
                None, "localhost", "10.9.9.9", Reason.IP_NOT_ALLOWED, id="enforced-applies"
            ),
            pytest.param(
                "office",
                "localhost",
                "10.9.9.9",
                Reason.IP_NOT_ALLOWED,
                id="enforced-overrides-own",
            ),
            pytest.param("office", "localhost", "127.0.0.1", Reason.OK, id="enforced-allows"),
            pytest.param(
                "vanished", None, "10.9.9.9", Reason.IP_NOT_ALLOWED, id="missing-filter-denies"
            ),
        ],
    )
    def test_effective_filter(
        self, token_filter: str | None, enforced: str | None, ip: str, expected: Reason
    ) -> None:
        """The enforced filter wins over the token's; a vanished filter denies all."""
        config = make_config(**policy(enforce_ip_filter=enforced))
        record = make_record(ip_filter=token_filter)
        assert decide(record, request(ip=ip), config, CREATED) is expected


class TestPermissions:
    @pytest.mark.parametrize(
        ("permissions", "method", "path", "expected"),
        [
            pytest.param({"Reader"}, "GET", "/api/v1/items", Reason.OK, id="granted"),
            pytest.param({"Reader"}, "HEAD", "/api/v1/items/7", Reason.OK, id="head-like-get"),
            pytest.param(
                {"Reader"},
                "POST",
                "/api/v1/items",
                Reason.PERMISSION_DENIED,
                id="method-not-granted",
            ),
            pytest.param(
                {"Reader", "Writer"}, "POST", "/api/v1/items", Reason.OK, id="any-permission-grants"
            ),
            pytest.param(
                {"Reader"}, "GET", "/api/v1/itemsx", Reason.PERMISSION_DENIED, id="prefix-trick"
            ),
            pytest.param(
                {"Reader"}, "GET", "/api/v1/items/", Reason.PERMISSION_DENIED, id="trailing-slash"
            ),
            pytest.param(
                {"Reader"}, "GET", "/API/v1/items", Reason.PERMISSION_DENIED, id="case-sensitive"
            ),
            pytest.param(
                {"Removed"},
                "GET",
                "/api/v1/items",
                Reason.PERMISSION_DENIED,
                id="removed-permission-grants-nothing",
            ),
            pytest.param(
                {"ManageOrganizationTokens"},
                "GET",
                "/api/v1/items",
                Reason.PERMISSION_DENIED,
                id="admin-permission-grants-no-api",
            ),
        ],
    )
    def test_endpoint_match(
        self, permissions: set[str], method: str, path: str, expected: Reason
    ) -> None:
        """Some permission of the token must have a template matching method and path."""
        record = make_record(permissions=frozenset(permissions))
        assert decide(record, request(method, path), make_config(), CREATED) is expected


class TestAdminAccess:
    @pytest.mark.parametrize(
        ("permissions", "write", "expected"),
        [
            pytest.param({"ViewOrganizationTokens"}, False, Reason.OK, id="view-reads"),
            pytest.param(
                {"ViewOrganizationTokens"}, True, Reason.PERMISSION_DENIED, id="view-cannot-write"
            ),
            pytest.param({"ManageOrganizationTokens"}, True, Reason.OK, id="manage-writes"),
            pytest.param({"ManageOrganizationTokens"}, False, Reason.OK, id="manage-reads"),
            pytest.param({"Reader"}, False, Reason.PERMISSION_DENIED, id="api-token-refused"),
        ],
    )
    def test_admin_permissions(self, permissions: set[str], write: bool, expected: Reason) -> None:
        """Reads need View or Manage; writes need Manage."""
        record = make_record(permissions=frozenset(permissions))
        ip = ip_address("127.0.0.1")
        assert admin_access(record, ip, make_config(), CREATED, write=write) is expected

    def test_admin_token_obeys_its_ip_filter(self) -> None:
        """An admin token from outside its filter is refused."""
        record = make_record(
            permissions=frozenset({"ManageOrganizationTokens"}), ip_filter="office"
        )
        ip = ip_address("192.0.2.1")
        assert (
            admin_access(record, ip, make_config(), CREATED, write=False) is Reason.IP_NOT_ALLOWED
        )


class TestStatus:
    def test_status_follows_policy(self) -> None:
        """active, expired (own or max_lifetime), blocked (tokens off)."""
        record = make_record(created_at=CREATED, expires_at=CREATED + DAY)
        assert token_status(record, make_config().policy, CREATED) == "active"
        assert token_status(record, make_config().policy, CREATED + DAY) == "expired"
        short = make_config(**policy(max_lifetime="1h")).policy
        assert token_status(record, short, CREATED + 3600) == "expired"
        off = make_config(**policy(tokens_enabled=False)).policy
        assert token_status(record, off, CREATED) == "blocked"
