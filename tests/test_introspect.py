"""RFC 7662 introspection for other gateways (docs/admin-api.md, ``POST
/admin/v1/introspect``): the answer for a usable token, ``{"active": false}`` and nothing
else for anything not usable now, the IP fence, who may ask, the form body, and that asking
counts nothing and echoes no secret."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from authsvc.rules.explain import introspection
from authsvc.rules.tokens import TokenRecord, new_secret
from authsvc.service.runtime import Runtime
from authsvc.store import StoreUnavailable
from tests.admin_helpers import Reply, error_of, send
from tests.factories import FrozenClock, make_config, make_record
from tests.webapp import MANAGE, NOW, VIEW, Client, mint, use_config

INTROSPECT = "/admin/v1/introspect"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INACTIVE = {"active": False}


@dataclass(frozen=True, slots=True)
class Rig:
    runtime: Runtime
    admin: Client
    secret: str

    async def post(self, data: str | bytes, secret: str | None = None, **headers: str) -> Reply:
        """POST the raw form ``data`` as the Manage token (or ``secret``)."""
        return await send(
            self.admin,
            "POST",
            INTROSPECT,
            secret or self.secret,
            data=data,
            headers={**FORM, **headers},
        )

    async def introspect(self, secret: str | None = None, **fields: str) -> dict[str, Any]:
        """The 200 answer for ``fields`` (``token`` and ``client_ip``)."""
        reply = await self.post(urlencode(fields), secret)
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store"), reply.text
        assert reply.headers["Content-Type"].startswith("application/json")
        answer: dict[str, Any] = reply.body
        return answer


@pytest.fixture
def rig(runtime: Runtime, admin_client: Client, admin_secret: str) -> Rig:
    return Rig(runtime, admin_client, admin_secret)


class TestActive:
    """A token usable now is active, with its claims."""

    async def test_claims(self, rig: Rig) -> None:
        """sub, scope (sorted, space-separated), iat, token_type and name; no exp when
        the token has no effective expiry."""
        record, secret = await mint(rig.runtime, "Writer", "Reader", name="gateway client")
        assert await rig.introspect(token=secret) == {
            "active": True,
            "sub": record.id,
            "scope": "Reader Writer",
            "iat": int(NOW),
            "token_type": "bearer",
            "name": "gateway client",
        }

    @pytest.mark.parametrize(
        ("expires_in", "max_lifetime", "exp"),
        [
            pytest.param("2h", None, int(NOW) + 7200, id="own"),
            pytest.param(None, "1d", int(NOW) + 86400, id="policy"),
            pytest.param("2d", "1d", int(NOW) + 86400, id="earlier-of-both"),
        ],
    )
    async def test_exp_is_the_effective_expiry(
        self, rig: Rig, tmp_path: Path, expires_in: str | None, max_lifetime: str | None, exp: int
    ) -> None:
        """exp is the earlier of expires_at and created_at + max_lifetime (a policy
        tightened after the token was made)."""
        _, secret = await mint(rig.runtime, "Reader", expires_in=expires_in)
        use_config(rig.runtime, tmp_path, security_policy={"max_lifetime": max_lifetime})
        assert (await rig.introspect(token=secret))["exp"] == exp

    async def test_scope_leaves_out_permissions_gone_from_the_catalog(
        self, rig: Rig, tmp_path: Path
    ) -> None:
        """A permission no longer in the catalog grants nothing, so it is not in scope."""
        _, secret = await mint(rig.runtime, "Reader", "Writer")
        permissions = {"Reader": {"description": "r", "endpoints": ["GET /api/v1/items"]}}
        use_config(rig.runtime, tmp_path, permissions=permissions)
        assert (await rig.introspect(token=secret))["scope"] == "Reader"

    async def test_reserved_permissions_are_in_scope(self, rig: Rig) -> None:
        """An admin token's scope names its admin permission."""
        _, secret = await mint(rig.runtime, VIEW)
        assert (await rig.introspect(token=secret))["scope"] == VIEW

    async def test_token_type_hint_is_ignored(self, rig: Rig) -> None:
        """RFC 7662's token_type_hint is accepted whatever it says."""
        _, secret = await mint(rig.runtime, "Reader")
        answer = await rig.introspect(token=secret, token_type_hint="refresh_token")
        assert answer["active"] is True


class TestInactive:
    """Anything not usable now is {"active": false} and nothing else."""

    @pytest.mark.parametrize(
        "token",
        [
            pytest.param("", id="empty"),
            pytest.param("junk", id="malformed"),
            pytest.param("unknown", id="unknown"),
            pytest.param("checksum", id="bad-checksum"),
        ],
    )
    async def test_secrets_that_name_no_token(self, rig: Rig, token: str) -> None:
        """Empty, malformed, unknown and mistyped secrets are inactive."""
        if token == "unknown":
            token = new_secret()
        elif token == "checksum":
            good = new_secret()
            token = good[:-6] + ("000000" if good[-6:] != "000000" else "000001")
        assert await rig.introspect(token=token) == INACTIVE

    async def test_deleted(self, rig: Rig) -> None:
        """A deleted token is inactive at once."""
        record, secret = await mint(rig.runtime, "Reader")
        assert (await rig.introspect(token=secret))["active"] is True
        await rig.runtime.service.delete(actor="cli", client=None, token_id=record.id)
        assert await rig.introspect(token=secret) == INACTIVE

    async def test_rotated_away(self, rig: Rig) -> None:
        """The old secret of a rotated token is inactive; the new one is active."""
        record, old = await mint(rig.runtime, "Reader")
        _, new = await rig.runtime.service.rotate(actor="cli", client=None, token_id=record.id)
        assert await rig.introspect(token=old) == INACTIVE
        assert (await rig.introspect(token=new))["sub"] == record.id

    async def test_expired(self, rig: Rig, clock: FrozenClock) -> None:
        """From its expiry on, a token is inactive (the admin token does not expire)."""
        _, secret = await mint(rig.runtime, "Reader", expires_in="1m")
        clock.advance(59)
        assert (await rig.introspect(token=secret))["active"] is True
        clock.advance(1)
        assert await rig.introspect(token=secret) == INACTIVE

    def test_tokens_disabled(self) -> None:
        """With tokens switched off every token is inactive (the admin API itself then
        refuses every call, so this is shown on the rule)."""
        record = make_record(created_at=NOW - 60)
        enabled = make_config()
        disabled = make_config(security_policy={"tokens_enabled": False})
        assert introspection(record, None, enabled, NOW)["active"] is True
        assert introspection(record, None, disabled, NOW) == INACTIVE
        assert introspection(None, None, enabled, NOW) == INACTIVE


class TestIpFence:
    """A token with an effective IP filter is active only with a client_ip it passes."""

    @pytest.mark.parametrize(
        ("client_ip", "active"),
        [
            pytest.param(None, False, id="no-address"),
            pytest.param("192.0.2.7", False, id="outside"),
            pytest.param("10.1.2.3", True, id="inside"),
            pytest.param("::ffff:10.1.2.3", True, id="mapped-inside"),
            pytest.param("2001:db8::1", True, id="ipv6-inside"),
        ],
    )
    async def test_own_filter(self, rig: Rig, client_ip: str | None, active: bool) -> None:
        """The token's own filter decides; without an address the token is inactive."""
        _, secret = await mint(rig.runtime, "Reader", ip_filter="office")
        fields = (
            {"token": secret} if client_ip is None else {"token": secret, "client_ip": client_ip}
        )
        answer = await rig.introspect(**fields)
        assert answer["active"] is active
        if not active:
            assert answer == INACTIVE

    async def test_enforced_filter(self, rig: Rig, tmp_path: Path) -> None:
        """The policy's enforced filter fences every token, its own filter or not."""
        _, secret = await mint(rig.runtime, "Reader")
        assert (await rig.introspect(token=secret))["active"] is True
        # the admin client (127.0.0.1) must stay inside the fence to ask at all
        fence = {"fence": "allow 127.0.0.1\nallow 10.0.0.0/8\ndeny all"}
        policy = {"enforce_ip_filter": "fence"}
        use_config(rig.runtime, tmp_path, ip_filters=fence, security_policy=policy)
        assert await rig.introspect(token=secret) == INACTIVE
        assert await rig.introspect(token=secret, client_ip="192.0.2.7") == INACTIVE
        assert (await rig.introspect(token=secret, client_ip="10.0.0.9"))["active"] is True

    async def test_unfenced_token_ignores_the_address(self, rig: Rig) -> None:
        """Without a filter, any or no client_ip is the same answer."""
        _, secret = await mint(rig.runtime, "Reader")
        plain = await rig.introspect(token=secret)
        assert await rig.introspect(token=secret, client_ip="192.0.2.7") == plain


class TestRotationGrace:
    """A previous secret in its grace is active until the grace ends, and says when."""

    async def test_previous_secret(self, rig: Rig, clock: FrozenClock) -> None:
        """exp of the previous secret is the grace's end; after it, inactive."""
        record, old = await mint(rig.runtime, "Reader", expires_in="1d")
        _, new = await rig.runtime.service.rotate(
            actor="cli", client=None, token_id=record.id, grace="1h"
        )
        previous = await rig.introspect(token=old)
        assert (previous["sub"], previous["exp"]) == (record.id, int(NOW) + 3600)
        assert (await rig.introspect(token=new))["exp"] == int(NOW) + 86400
        clock.advance(3600)
        assert await rig.introspect(token=old) == INACTIVE
        assert (await rig.introspect(token=new))["active"] is True


class TestWhoMayAsk:
    """Introspection needs ViewOrganizationTokens (Manage includes it)."""

    @pytest.mark.parametrize("permission", [VIEW, MANAGE])
    async def test_view_or_manage(self, rig: Rig, permission: str) -> None:
        """A View or a Manage token may introspect."""
        _, caller = await mint(rig.runtime, permission)
        _, secret = await mint(rig.runtime, "Reader")
        assert (await rig.introspect(caller, token=secret))["active"] is True

    async def test_other_token_is_403(self, rig: Rig) -> None:
        """A token without an admin permission is refused, even about itself."""
        _, reader = await mint(rig.runtime, "Reader")
        error_of(await rig.post(urlencode({"token": reader}), reader), "forbidden", 403)

    async def test_no_token_is_401(self, rig: Rig) -> None:
        """Without an admin token nothing is said about the secret."""
        _, secret = await mint(rig.runtime, "Reader")
        reply = await send(
            rig.admin, "POST", INTROSPECT, data=urlencode({"token": secret}), headers=FORM
        )
        error_of(reply, "unauthorized", 401)
        assert secret not in reply.text


class TestBadForms:
    """The body is application/x-www-form-urlencoded; anything else is a 4xx."""

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            pytest.param("", ("invalid_field", 422, "token"), id="no-token"),
            pytest.param("client_ip=10.0.0.1", ("invalid_field", 422, "token"), id="only-ip"),
            pytest.param("token=a&token=b", ("invalid_field", 422, "token"), id="repeated"),
            pytest.param("token=a&scope=x", ("unknown_field", 422, "scope"), id="unknown"),
            pytest.param("token=a&client_ip=10.0.0.256", ("invalid_ip", 422, "client_ip"), id="ip"),
            pytest.param("token=a&client_ip=", ("invalid_ip", 422, "client_ip"), id="empty-ip"),
            pytest.param("token=%ff", ("invalid_form", 400, None), id="not-utf8"),
            pytest.param("token", ("invalid_form", 400, None), id="no-equals"),
            pytest.param("token=a&&b=c", ("invalid_form", 400, None), id="empty-pair"),
            pytest.param(
                "token=a" + "&token_type_hint=x" * 11, ("invalid_form", 400, None), id="many"
            ),
            pytest.param(
                "token=caf\u00e9".encode(), ("invalid_form", 400, None), id="raw-non-ascii"
            ),
        ],
    )
    async def test_refused(
        self, rig: Rig, data: str | bytes, expected: tuple[str, int, str | None]
    ) -> None:
        """Each bad form gets its code, and the field when one is at fault."""
        code, status, field = expected
        error_of(await rig.post(data), code, status, field=field)

    @pytest.mark.parametrize(
        "content_type",
        ["application/json", "multipart/form-data; boundary=x", "text/plain"],
    )
    async def test_other_media_types_are_415(self, rig: Rig, content_type: str) -> None:
        """Only a form body is read: JSON, multipart or text is 415."""
        reply = await rig.post('{"token": "x"}', **{"Content-Type": content_type})
        error_of(reply, "unsupported_media_type", 415)

    async def test_body_over_64_kib_is_413(self, rig: Rig) -> None:
        """A body larger than 64 KiB is refused."""
        error_of(await rig.post("token=" + "a" * 70_000), "body_too_large", 413)

    async def test_a_secret_is_never_echoed(
        self, rig: Rig, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Neither answers, errors nor logs repeat a secret sent to introspect."""
        caplog.set_level(logging.DEBUG)
        _, secret = await mint(rig.runtime, "Reader", ip_filter="office")
        replies = [
            await rig.post(urlencode({"token": secret})),
            await rig.post(urlencode({"token": secret, "client_ip": secret})),
            await rig.post(urlencode({"token": secret, secret: "1"})),
            await rig.post(urlencode({"token": secret, "client_ip": "10.0.0.1"})),
            await rig.post(urlencode([("token", secret), ("token", secret)])),
        ]
        assert [reply.status for reply in replies] == [200, 422, 422, 200, 422]
        assert all(secret not in reply.text for reply in replies)
        assert secret not in caplog.text


class TestCountsNothing:
    """Introspection is not use: no usage, no cache entry, no lookup metrics."""

    async def test_no_trace(self, rig: Rig) -> None:
        """The token's last use stays empty, it is not cached, and the lookup and
        decision counters do not move."""
        runtime = rig.runtime
        record, secret = await mint(runtime, "Reader")
        await send(rig.admin, "GET", "/admin/v1/policy", rig.secret)  # the admin's own lookup
        before = (await (await rig.admin.get("/metrics")).text()).splitlines()
        for token in (secret, new_secret(), "junk"):
            await rig.introspect(token=token)
        after = (await (await rig.admin.get("/metrics")).text()).splitlines()
        counted = ("authsvc_decisions_total", "authsvc_store_lookups_total", "authsvc_cache_")
        assert [line for line in after if line.startswith(counted)] == [
            line for line in before if line.startswith(counted)
        ]
        assert runtime.cache.get(runtime.service.digest(secret)) is None
        await runtime.usage.flush()
        assert (await runtime.service.get(record.id)).last_used_at is None

    async def test_store_outage_is_503(self, rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
        """A secret not in the cache while the store is down is 503, never active."""
        await send(rig.admin, "GET", "/admin/v1/policy", rig.secret)  # admin token cached

        async def down(digest: bytes) -> TokenRecord | None:
            raise StoreUnavailable("down")

        monkeypatch.setattr(rig.runtime.store, "get_by_digest", down)
        error_of(await rig.post(urlencode({"token": new_secret()})), "store_unavailable", 503)


def test_pure_answer_without_expiry() -> None:
    """introspection() leaves out exp when there is no effective expiry and fences a
    filtered token without an address."""
    record = make_record(created_at=NOW - 60, ip_filter="office")
    config = make_config()
    assert introspection(record, None, config, NOW) == INACTIVE
    answer = introspection(record, IPv4Address("10.0.0.1"), config, NOW)
    assert "exp" not in answer
    assert answer["iat"] == int(NOW - 60)
