"""``authsvc token list --status S`` and ``--expiring DURATION`` (SPEC §11), run as the real
program on each store kind: the store filters under the policy in the file, and the table's
EXPIRES column shows when each token really stops working."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.durations import rfc3339
from authsvc.store import open_store
from tests.stores import add
from tests.test_cli import Cli, write_config

DAY = 86400
HOUR = 3600


def seed(store_url: str, tokens: dict[str, dict[str, Any]]) -> None:
    """Insert tokens named by ``tokens``' keys with the given record fields, straight into
    the store (the CLI cannot make a token in the past)."""

    async def insert() -> None:
        store = open_store(store_url)
        await store.open()
        try:
            for name, fields in tokens.items():
                await add(store, name, **fields)
        finally:
            await store.close()

    asyncio.run(insert())


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    """The CLI on a store of each kind holding, besides 'made-by-cli' (no expiry):
    'expired' (ended an hour ago), 'hours' (ends in 3 hours), 'days' (in 5 days), 'month'
    (in 25 days), 'aged' (made 40 days ago, no expiry of its own) and 'young' (made 25
    days ago, no expiry)."""
    config = write_config(tmp_path, store=store_url)
    made = Cli(tmp_path, config)
    made.create("made-by-cli")  # through the CLI first: the store gets the key's way in
    now = time.time()
    seed(
        store_url,
        {
            "expired": {"created_at": now - 10 * DAY, "expires_at": now - HOUR},
            "hours": {"created_at": now - DAY, "expires_at": now + 3 * HOUR},
            "days": {"created_at": now - DAY, "expires_at": now + 5 * DAY},
            "month": {"created_at": now - DAY, "expires_at": now + 25 * DAY},
            "aged": {"created_at": now - 40 * DAY},
            "young": {"created_at": now - 25 * DAY},
        },
    )
    return made


def listed(cli: Cli, *args: str, config: Path | None = None) -> list[dict[str, Any]]:
    """``token list ARGS --json``: the token objects."""
    tokens: list[dict[str, Any]] = cli.ok("token", "list", *args, "--json", config=config).json()
    return tokens


def names(tokens: list[dict[str, Any]]) -> list[str]:
    return [token["name"] for token in tokens]


ALL_ACTIVE = ["aged", "days", "hours", "made-by-cli", "month", "young"]


class TestFilters:
    """Each filter lists exactly its tokens, by name, as the admin API would."""

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            pytest.param(("--status", "active"), ALL_ACTIVE, id="active"),
            pytest.param(("--status", "expired"), ["expired"], id="expired"),
            pytest.param(("--status", "blocked"), [], id="blocked-none-while-enabled"),
            pytest.param(("--expiring", "1d"), ["hours"], id="1d"),
            pytest.param(("--expiring", "7d"), ["days", "hours"], id="7d"),
            pytest.param(("--expiring", "30d"), ["days", "hours", "month"], id="30d"),
            pytest.param(("--expiring", "120m"), [], id="minutes"),
            pytest.param(("--status", "active", "--expiring", "7d"), ["days", "hours"], id="both"),
            pytest.param(("--status", "expired", "--expiring", "30d"), [], id="contradiction"),
        ],
    )
    def test_filter(self, cli: Cli, args: tuple[str, ...], expected: list[str]) -> None:
        """The JSON listing holds exactly these tokens, each showing the status asked for."""
        tokens = listed(cli, *args)
        assert names(tokens) == expected
        if "--status" in args:
            assert {t["status"] for t in tokens} <= {args[args.index("--status") + 1]}

    def test_table(self, cli: Cli) -> None:
        """The table lists the same tokens, ordered by name."""
        table = cli.ok("token", "list", "--expiring", "7d").stdout.splitlines()
        assert table[0].split()[:4] == ["ID", "STATUS", "EXPIRES", "NAME"]
        assert [line.split()[3] for line in table[1:]] == ["days", "hours"]

    def test_nothing_matches(self, cli: Cli) -> None:
        """An empty filtered table says that nothing matched (not how to make a token)."""
        result = cli.ok("token", "list", "--status", "blocked")
        assert result.stdout.splitlines()[1:] == []
        assert "no token matches" in result.stderr
        assert listed(cli, "--status", "blocked") == []

    def test_without_filters_every_token(self, cli: Cli) -> None:
        """Plain ``token list`` is unchanged: every token, expired ones included."""
        assert names(listed(cli)) == sorted([*ALL_ACTIVE, "expired"])


class TestPolicyInTheFile:
    """Statuses and effective expiries follow the policy of the file the CLI reads."""

    def test_max_lifetime(self, cli: Cli, tmp_path: Path, store_url: str) -> None:
        """With max_lifetime 30d, 'aged' (40 days old) is expired and 'young' (25 days old)
        stops within 7 days; the table shows when, not 'never'."""
        strict = write_config(
            tmp_path, "strict.yaml", store=store_url, security_policy={"max_lifetime": "30d"}
        )
        assert names(listed(cli, "--status", "expired", config=strict)) == ["aged", "expired"]
        soon = listed(cli, "--expiring", "7d", config=strict)
        assert names(soon) == ["days", "hours", "young"]
        young = next(t for t in soon if t["name"] == "young")
        assert young["expires_at"] is None
        assert young["effective_expires_at"] is not None
        row = next(
            line
            for line in cli.ok(
                "token", "list", "--expiring", "7d", config=strict
            ).stdout.splitlines()
            if " young " in line
        )
        assert row.split()[2] == young["effective_expires_at"]

    def test_tokens_switched_off(self, cli: Cli, tmp_path: Path, store_url: str) -> None:
        """With tokens_enabled false every token is blocked; none is active or expiring."""
        off = write_config(
            tmp_path, "off.yaml", store=store_url, security_policy={"tokens_enabled": False}
        )
        assert names(listed(cli, "--status", "blocked", config=off)) == sorted(
            [*ALL_ACTIVE, "expired"]
        )
        assert listed(cli, "--status", "active", config=off) == []
        assert listed(cli, "--expiring", "30d", config=off) == []


class TestBadValues:
    """A bad filter is a usage error (exit 2) that says what is wrong; nothing is listed."""

    @pytest.mark.parametrize(
        ("args", "words"),
        [
            pytest.param(("--status", "revoked"), "invalid choice", id="unknown-status"),
            pytest.param(("--expiring", "7"), "not a duration", id="no-unit"),
            pytest.param(("--expiring", "30s"), "not allowed here", id="seconds"),
            pytest.param(("--expiring", "0d"), "not a duration", id="zero"),
            pytest.param(("--expiring", "07d"), "leading zeros", id="leading-zero"),
            pytest.param(("--expiring", "99999999999d"), "too long", id="huge"),
            pytest.param(("--expiring",), "expected one argument", id="missing"),
        ],
    )
    def test_refused(self, cli: Cli, args: tuple[str, ...], words: str) -> None:
        result = cli.run("token", "list", *args)
        assert result.status == 2, result.stderr
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        assert words in result.stderr


def test_expiry_column_is_the_effective_expiry(cli: Cli) -> None:
    """Without a policy maximum, EXPIRES is the token's own expiry, or 'never'."""
    tokens = {t["name"]: t for t in listed(cli)}
    rows = {
        line.split()[3]: line.split()[2] for line in cli.ok("token", "list").stdout.splitlines()[1:]
    }
    assert rows["month"] == tokens["month"]["expires_at"]
    assert rows["aged"] == "never"
    assert rfc3339(0) < rows["month"]
