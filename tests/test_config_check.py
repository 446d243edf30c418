"""``config check``: validate a file and list existing tokens its policy would refuse."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from authsvc.config.check import refusals
from authsvc.rules.tokens import TokenRecord, new_token_id
from authsvc.store.sqlite.store import SQLiteStore
from tests.factories import BASE, full_policy, make_config, make_record
from tests.test_cli import Cli, write_config

DAY = 86_400
NOW = 1_000_000.0 + 100 * DAY


def catalog_without(name: str) -> dict[str, Any]:
    return {k: v for k, v in BASE["permissions"].items() if k != name}


class TestRefusals:
    @pytest.mark.parametrize(
        ("record", "overrides", "expected"),
        [
            pytest.param({}, {}, [], id="accepted"),
            pytest.param(
                {"expires_at": NOW}, {}, ["expired at 1970-04-22T13:46:40Z"], id="expiry-edge"
            ),
            pytest.param({"expires_at": NOW + 1}, {}, [], id="not-yet-expired"),
            pytest.param(
                {"created_at": NOW - 30 * DAY},
                {"security_policy": {"max_lifetime": "30d"}},
                ["expired by max_lifetime 30d (created 1970-03-23T13:46:40Z)"],
                id="max-lifetime-edge",
            ),
            pytest.param(
                {"created_at": NOW - 30 * DAY + 1},
                {"security_policy": {"max_lifetime": "30d"}},
                [],
                id="within-max-lifetime",
            ),
            pytest.param(
                {},
                {"security_policy": {"tokens_enabled": False}},
                ["tokens are switched off (tokens_enabled: false)"],
                id="tokens-disabled",
            ),
            pytest.param(
                {"ip_filter": "lab"},
                {},
                ["IP filter 'lab' is missing: every address is denied"],
                id="filter-removed",
            ),
            pytest.param(
                {"ip_filter": "lab"},
                {"security_policy": {"enforce_ip_filter": "office"}},
                [],
                id="enforced-filter-overrides-missing-one",
            ),
            pytest.param(
                {"permissions": frozenset({"Reader", "Writer"})},
                {"permissions": catalog_without("Writer")},
                ["unknown permission(s) Writer"],
                id="one-permission-removed",
            ),
            pytest.param(
                {"permissions": frozenset({"Writer"})},
                {"permissions": catalog_without("Writer")},
                ["unknown permission(s) Writer: the token grants nothing"],
                id="every-permission-removed",
            ),
            pytest.param(
                {"permissions": frozenset({"ManageOrganizationTokens"})},
                {},
                [],
                id="reserved-permission-always-exists",
            ),
        ],
    )
    def test_reasons(
        self, record: dict[str, Any], overrides: dict[str, Any], expected: list[str]
    ) -> None:
        """One sentence per rule of SPEC §2 the token fails under the configuration."""
        assert refusals(make_record(**record), make_config(**overrides), NOW) == expected

    def test_every_reason_is_listed(self) -> None:
        """A token failing several rules gets every reason, not only the first."""
        record = make_record(ip_filter="lab", expires_at=NOW - 1, permissions=frozenset({"Gone"}))
        config = make_config(security_policy={"tokens_enabled": False})
        assert len(refusals(record, config, NOW)) == 4


def insert(folder: Path, record: TokenRecord) -> None:
    """Put a record straight into the store (the CLI cannot backdate ``created_at``)."""

    async def run() -> None:
        store = SQLiteStore(str(folder / "authsvc.db"))
        await store.open()
        try:
            await store.insert(record, record.id.encode().ljust(32, b"-"))
        finally:
            await store.close()

    asyncio.run(run())


def refused_lines(stdout: str) -> dict[str, str]:
    """``refused: <id> (<name>): <reasons>`` lines keyed by token name."""
    lines = {}
    for line in stdout.splitlines():
        if line.startswith("refused: "):
            name = line.split("(", 1)[1].split(")", 1)[0]
            lines[name] = line
    return lines


class TestCheckCommand:
    def test_valid_without_store(self, tmp_path: Path) -> None:
        """A valid file passes; checking creates neither the store nor the key."""
        cli = Cli(tmp_path, write_config(tmp_path))
        result = cli.ok("config", "check")
        assert result.stdout.startswith(f"{cli.config}: configuration is valid")
        assert "no tokens" in result.stdout
        assert sorted(p.name for p in tmp_path.iterdir()) == ["authsvc.yaml"]

    def test_all_tokens_accepted(self, tmp_path: Path) -> None:
        """With a store, the check counts the tokens that pass."""
        cli = Cli(tmp_path, write_config(tmp_path))
        cli.create("one")
        cli.create("two", "--expires-in", "1d")
        result = cli.ok("config", "check")
        assert "all 2 existing token(s) are accepted" in result.stdout
        assert "refused" not in result.stdout

    def test_invalid_file(self, tmp_path: Path) -> None:
        """Exit 2 with every error naming the file, the key and the line."""
        path = tmp_path / "authsvc.yaml"
        path.write_text(
            "trusted_proxies: []\n"
            "admin_trusted_proxies: []\n"
            "permissions:\n"
            "  Reader:\n"
            "    endpoints: [GET /a]\n"
            "ip_filters: {}\n"
            "security_policy:\n"
            "  tokens_enabled: true\n"
            "  max_lifetime: 5s\n"
            "  enforce_ip_filter: nowhere\n"
            "  allow_permission_updates: true\n"
            "  max_rate_limit: null\n"
        )
        result = Cli(tmp_path, path).run("config", "check")
        assert result.status == 2
        assert "Traceback" not in result.stderr
        assert "configuration is valid" not in result.stdout
        errors = result.stderr.strip().splitlines()
        assert len(errors) == 2
        assert errors[0].startswith(f"{path}: security_policy.max_lifetime (line 9): ")
        assert errors[1].startswith(f"{path}: security_policy.enforce_ip_filter (line 10): ")

    def test_lists_tokens_a_stricter_policy_refuses(self, tmp_path: Path) -> None:
        """Tokens made under a permissive file, checked against a strict one sharing the
        store: each refused token is listed with its reason; good ones are not."""
        cli = Cli(tmp_path, write_config(tmp_path))
        good = cli.create("good")
        filtered = cli.create("filtered", "--ip-filter", "office")
        writer = cli.create("writer", "--permission", "Reader", "--permission", "Writer")
        old = make_record(
            id=new_token_id(), name="old", created_at=time.time() - 60 * DAY, created_by="cli"
        )
        insert(tmp_path, old)
        strict = write_config(
            tmp_path,
            "strict.yaml",
            permissions=catalog_without("Writer"),
            ip_filters={"localhost": BASE["ip_filters"]["localhost"]},
            security_policy=full_policy(max_lifetime="30d"),
        )
        result = cli.ok("config", "check", config=strict)
        assert result.stdout.startswith(f"{strict}: configuration is valid")
        lines = refused_lines(result.stdout)
        assert set(lines) == {"filtered", "writer", "old"}
        assert filtered["id"] in lines["filtered"]
        assert "IP filter 'office' is missing" in lines["filtered"]
        assert writer["id"] in lines["writer"]
        assert "unknown permission(s) Writer" in lines["writer"]
        assert "grants nothing" not in lines["writer"]
        assert old.id in lines["old"]
        assert "expired by max_lifetime 30d" in lines["old"]
        assert good["id"] not in result.stdout
        # the permissive file still accepts every one of them
        assert "all 4 existing token(s) are accepted" in cli.ok("config", "check").stdout

    def test_tokens_disabled_refuses_every_token(self, tmp_path: Path) -> None:
        """``tokens_enabled: false`` lists every token as refused."""
        cli = Cli(tmp_path, write_config(tmp_path))
        for name in ("a", "b"):
            cli.create(name)
        off = write_config(tmp_path, "off.yaml", security_policy=full_policy(tokens_enabled=False))
        lines = refused_lines(cli.ok("config", "check", config=off).stdout)
        assert set(lines) == {"a", "b"}
        assert all("tokens_enabled: false" in line for line in lines.values())

    def test_own_expiry_is_reported(self, tmp_path: Path) -> None:
        """A token past its own ``expires_at`` is listed too."""
        cli = Cli(tmp_path, write_config(tmp_path))
        cli.create("fresh")
        stale = make_record(
            id=new_token_id(),
            name="stale",
            created_at=time.time() - 2 * DAY,
            expires_at=time.time() - DAY,
        )
        insert(tmp_path, stale)
        lines = refused_lines(cli.ok("config", "check").stdout)
        assert set(lines) == {"stale"}
        assert "expired at" in lines["stale"]
