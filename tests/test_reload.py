"""Live policy: a reload swaps the whole configuration or changes nothing (in process)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc.config.load import load_config
from authsvc.service.reload import ConfigReloader
from authsvc.service.runtime import Runtime
from tests.auth_client import admin_client, auth_client
from tests.factories import FrozenClock, config_data
from tests.webapp import (
    ENVIRON,
    MANAGE,
    READ_ITEMS,
    Client,
    ClientMaker,
    audit_entries,
    bearer,
    mint,
)

DAY = 86_400


class Setup:
    """A runtime on a real config file, its reloader, and clients for both listeners."""

    def __init__(self, tmp_path: Path, clock: FrozenClock) -> None:
        self.path = tmp_path / "authsvc.yaml"
        self.clock = clock
        self.data = config_data(tmp_path, security_policy={})
        self.write()
        self.runtime: Runtime
        self.reloader: ConfigReloader
        self.auth: Client
        self.admin: Client

    def write(self, text: str | None = None) -> None:
        self.path.write_text(text if text is not None else yaml.safe_dump(self.data))

    def edit_policy(self, **policy: Any) -> bool:
        self.data["security_policy"].update(policy)
        self.write()
        return self.reloader.reload("test")

    async def auth_status(self, secret: str, **headers: str) -> tuple[int, str]:
        all_headers = {**bearer(secret), **READ_ITEMS, **headers}
        response = await self.auth.get("/auth", headers=all_headers)
        return response.status, response.headers["X-Auth-Reason"]


@pytest.fixture
async def setup(tmp_path: Path, aiohttp_client: ClientMaker) -> AsyncIterator[Setup]:
    s = Setup(tmp_path, FrozenClock(2_000_000_000.0))
    s.runtime = await Runtime.open(load_config(s.path), clock=s.clock, environ=ENVIRON)
    s.reloader = s.runtime.reloader(s.path)
    s.auth = await auth_client(aiohttp_client, s.runtime)
    s.admin = await admin_client(aiohttp_client, s.runtime)
    yield s
    await s.runtime.close()


class TestPolicySwitches:
    async def test_tightening_max_lifetime_blocks_older_tokens_and_loosening_unblocks(
        self, setup: Setup
    ) -> None:
        """max_lifetime counts from creation: a 10-day-old token dies under 7d, lives under 30d."""
        _, secret = await mint(setup.runtime, "Reader")
        setup.clock.advance(10 * DAY)
        assert await setup.auth_status(secret) == (200, "ok")
        assert setup.edit_policy(max_lifetime="7d")
        assert await setup.auth_status(secret) == (401, "expired")
        assert setup.edit_policy(max_lifetime="30d")
        assert await setup.auth_status(secret) == (200, "ok")

    async def test_lifetime_edge_after_reload(self, setup: Setup) -> None:
        """Under a 1h maximum, a token is valid at 59m59s and expired at exactly 1h."""
        record, secret = await mint(setup.runtime, "Reader")
        assert setup.edit_policy(max_lifetime="1h")
        setup.clock.now = record.created_at + 3599
        assert await setup.auth_status(secret) == (200, "ok")
        setup.clock.now = record.created_at + 3600
        assert await setup.auth_status(secret) == (401, "expired")

    async def test_enforced_ip_filter_applies_to_every_token(self, setup: Setup) -> None:
        """enforce_ip_filter overrides tokens without a filter and with another one."""
        _, plain = await mint(setup.runtime, "Reader", name="plain")
        _, local = await mint(setup.runtime, "Reader", name="local", ip_filter="localhost")
        assert setup.edit_policy(enforce_ip_filter="office")
        for secret in (plain, local):
            assert await setup.auth_status(secret) == (403, "ip_not_allowed")  # from 127.0.0.1
            assert await setup.auth_status(secret, **{"X-Real-IP": "10.0.0.1"}) == (200, "ok")

    async def test_tokens_disabled_refuses_all_and_creation(self, setup: Setup) -> None:
        """tokens_enabled: false refuses every token and every admin call, at once."""
        _, admin_secret = await mint(setup.runtime, MANAGE, name="admin")
        _, secret = await mint(setup.runtime, "Reader")
        assert setup.edit_policy(tokens_enabled=False)
        assert await setup.auth_status(secret) == (401, "tokens_disabled")
        response = await setup.admin.get("/admin/v1/tokens", headers=bearer(admin_secret))
        assert response.status == 403  # the CLI is the break-glass path
        assert (await response.json())["error"]["code"] == "tokens_disabled"
        assert setup.edit_policy(tokens_enabled=True)
        assert await setup.auth_status(secret) == (200, "ok")

    async def test_permission_updates_switch(self, setup: Setup) -> None:
        """allow_permission_updates: false makes PATCH 403 at once; true allows it again."""
        # It holds what it changes: an admin token may only hand on permissions it holds.
        _, admin = await mint(setup.runtime, MANAGE, "Reader", "Writer", name="admin")
        record, _ = await mint(setup.runtime, "Reader")
        headers = bearer(admin)
        url = f"/admin/v1/tokens/{record.id}"
        assert setup.edit_policy(allow_permission_updates=False)
        response = await setup.admin.patch(url, json={"permissions": ["Writer"]}, headers=headers)
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "permission_updates_disabled"
        policy = await (await setup.admin.get("/admin/v1/policy", headers=headers)).json()
        assert policy["allow_permission_updates"] is False
        assert setup.edit_policy(allow_permission_updates=True)
        response = await setup.admin.patch(url, json={"permissions": ["Writer"]}, headers=headers)
        assert response.status == 200

    async def test_removed_permission_grants_nothing_and_added_one_grants(
        self, setup: Setup
    ) -> None:
        """Catalog edits apply to existing tokens without touching them."""
        _, secret = await mint(setup.runtime, "Reader")
        reader = setup.data["permissions"].pop("Reader")
        setup.write()
        assert setup.reloader.reload("test")
        assert await setup.auth_status(secret) == (403, "permission_denied")
        setup.data["permissions"]["Reader"] = {
            **reader,
            "endpoints": [*reader["endpoints"], "GET /api/v1/extra"],
        }
        setup.write()
        assert setup.reloader.reload("test")
        extra = {"X-Original-URI": "/api/v1/extra"}
        assert await setup.auth_status(secret, **extra) == (200, "ok")

    async def test_removed_filter_denies(self, setup: Setup) -> None:
        """A token whose filter disappears from the file is denied everywhere."""
        _, secret = await mint(setup.runtime, "Reader", ip_filter="localhost")
        assert await setup.auth_status(secret) == (200, "ok")
        del setup.data["ip_filters"]["localhost"]
        setup.write()
        assert setup.reloader.reload("test")
        assert await setup.auth_status(secret) == (403, "ip_not_allowed")


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data)


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name != key}


# Each makes the text of a bad file from the good file's data.
BAD_EDITS = [
    pytest.param(lambda data: "permissions: [unclosed\n", id="invalid-yaml"),
    pytest.param(lambda data: "", id="empty-file"),
    pytest.param(
        lambda data: _dump(data)[: _dump(data).index("security_policy:")], id="half-written"
    ),
    pytest.param(lambda data: _dump({**data, "surprise": 1}), id="unknown-key"),
    pytest.param(lambda data: "!!python/object/apply:os.system ['true']\n", id="python-tag"),
    pytest.param(
        lambda data: _dump({**data, "ip_filters": {"f": "allow 10.0.0.1/8"}}),
        id="filter-does-not-compile",
    ),
    pytest.param(
        lambda data: _dump(
            {**data, "security_policy": {**data["security_policy"], "tokens_enabled": "maybe"}}
        ),
        id="policy-typo",
    ),
    pytest.param(lambda data: _dump(_without(data, "admin_trusted_proxies")), id="key-missing"),
    pytest.param(
        lambda data: _dump(
            {**data, "security_policy": _without(data["security_policy"], "max_lifetime")}
        ),
        id="policy-key-missing",
    ),
]


class TestAllOrNothing:
    @pytest.mark.parametrize("bad", BAD_EDITS)
    async def test_bad_edit_changes_nothing(
        self, setup: Setup, bad: Callable[[dict[str, Any]], str]
    ) -> None:
        """The last good configuration keeps serving; /readyz and /metrics tell."""
        _, secret = await mint(setup.runtime, "Reader")
        before = setup.runtime.live.current
        setup.write(bad(setup.data))
        assert not setup.reloader.reload("test")
        assert setup.runtime.live.current is before
        assert await setup.auth_status(secret) == (200, "ok")
        ready = await setup.admin.get("/readyz")
        assert ready.status == 200
        assert "reload failed" in await ready.text()
        metrics = await (await setup.admin.get("/metrics")).text()
        assert "authsvc_config_last_reload_successful 0.0" in metrics

    async def test_good_edit_recovers(self, setup: Setup) -> None:
        """After a failed reload, the next valid file is applied and the gauge is 1."""
        setup.write("not: [valid")
        assert not setup.reloader.reload("test")
        assert setup.edit_policy(max_lifetime="30d")
        assert setup.runtime.live.current.policy.max_lifetime == 30 * DAY
        assert setup.runtime.live.last_error is None
        metrics = await (await setup.admin.get("/metrics")).text()
        assert "authsvc_config_last_reload_successful 1.0" in metrics
        assert "reload failed" not in await (await setup.admin.get("/readyz")).text()

    async def test_restart_keys_are_reported_not_applied(
        self, setup: Setup, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A changed store or listen address is logged as needing a restart and ignored."""
        old = setup.runtime.live.current
        setup.data["store"] = "sqlite:////elsewhere/other.db"
        setup.data["listen"] = {"auth": "127.0.0.1:19090", "admin": "127.0.0.1:19091"}
        setup.data["security_policy"]["max_lifetime"] = "2d"
        setup.write()
        assert setup.reloader.reload("test")
        new = setup.runtime.live.current
        assert new.store == old.store
        assert new.listen == old.listen
        assert new.policy.max_lifetime == 2 * DAY
        assert "'store' changed: it takes effect after a restart" in caplog.text
        assert "'listen' changed" in caplog.text


class TestLiveKeys:
    async def test_proxy_lists_and_lookup_budget_apply_without_restart(self, setup: Setup) -> None:
        """trusted_proxies, admin_trusted_proxies and cache.unknown_lookups_per_second are
        put in force by a reload, and the audit record names them."""
        setup.data["trusted_proxies"] = ["10.0.0.5/32"]
        setup.data["admin_trusted_proxies"] = ["10.0.0.6/32"]
        setup.data["cache"] = {"unknown_lookups_per_second": 7}
        setup.write()
        assert setup.reloader.reload("SIGHUP")
        current = setup.runtime.live.current
        assert current.trusted_proxies.texts == ("10.0.0.5/32",)
        assert current.admin_trusted_proxies.texts == ("10.0.0.6/32",)
        assert current.cache.unknown_lookups_per_second == 7
        details = audit_entries(setup.runtime)[-1]["details"]
        assert details["admin_trusted_proxies"] == {
            "from": ["127.0.0.1/32", "::1/128"],
            "to": ["10.0.0.6/32"],
        }
        assert details["cache"] == {"unknown_lookups_per_second": {"from": 50, "to": 7}}
        assert "needs_restart" not in details


class TestAudit:
    async def test_reload_writes_what_changed(self, setup: Setup) -> None:
        """The audit record names policy fields and catalog entries that changed."""
        setup.data["permissions"]["Auditor"] = {"endpoints": ["GET /api/v1/audit"]}
        del setup.data["ip_filters"]["office"]
        setup.data["security_policy"]["max_lifetime"] = "90d"
        setup.write()
        assert setup.reloader.reload("SIGHUP")
        record = audit_entries(setup.runtime)[-1]
        assert record["action"] == "config.reload"
        details = record["details"]
        assert details["trigger"] == "SIGHUP"
        assert details["policy"]["max_lifetime_text"] == {"from": None, "to": "90d"}
        assert details["permissions"] == {"added": ["Auditor"]}
        assert details["ip_filters"] == {"removed": ["office"]}

    async def test_failed_reload_is_audited_without_applying(self, setup: Setup) -> None:
        """A failed reload leaves a record with the errors."""
        setup.write("permissions: {}\n")
        assert not setup.reloader.reload("file change")
        record = audit_entries(setup.runtime)[-1]
        assert record["action"] == "config.reload_failed"
        assert record["details"]["errors"]
