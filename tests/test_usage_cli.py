"""``authsvc token usage ID [--days 7] [--json]`` (docs/cli.md), run as a real program on
each store kind: the table (a column per denial reason that occurred, a TOTAL line), the
JSON object (the admin API's answer), ``--days``, and its refusals."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.durations import rfc3339
from authsvc.service.usage import hour_of
from authsvc.store import HOUR, HourlyCount, open_store
from tests.test_cli import Cli, assert_failed, write_config

DAY = 86400


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    return Cli(tmp_path, write_config(tmp_path, store=store_url))


@pytest.fixture
def token(cli: Cli) -> dict[str, Any]:
    return cli.create("counted")


async def add_counts(store_url: str, counts: Sequence[HourlyCount]) -> None:
    store = open_store(store_url)
    await store.open()
    try:
        await store.add_usage(counts)
    finally:
        await store.close()


@pytest.fixture
async def this_hour(store_url: str, token: dict[str, Any]) -> int:
    """Counts of ``token`` in this hour, 2 hours ago and 10 days ago; this hour's start."""
    now_hour = hour_of(time.time())
    await add_counts(
        store_url,
        [
            HourlyCount(token["id"], now_hour, "allowed", 120),
            HourlyCount(token["id"], now_hour, "rate_limited", 7),
            HourlyCount(token["id"], now_hour - 2 * HOUR, "allowed", 3),
            HourlyCount(token["id"], now_hour - 2 * HOUR, "permission_denied", 1),
            HourlyCount(token["id"], now_hour - 2 * HOUR, "rate_limited", 2),
            HourlyCount(token["id"], now_hour - 10 * DAY, "expired", 5),
        ],
    )
    return now_hour


class TestTable:
    def test_table_of_the_last_7_days(
        self, cli: Cli, token: dict[str, Any], this_hour: int
    ) -> None:
        """HOUR, ALLOWED, DENIED (total), one column per reason present, oldest first, and
        the sums; the count of 10 days ago is outside the default 7 days."""
        lines = cli.ok("token", "usage", token["id"]).stdout.splitlines()
        assert [line.split() for line in lines] == [
            ["HOUR", "ALLOWED", "DENIED", "PERMISSION_DENIED", "RATE_LIMITED"],
            [rfc3339(this_hour - 2 * HOUR), "3", "3", "1", "2"],
            [rfc3339(this_hour), "120", "7", "0", "7"],
            ["TOTAL", "123", "10", "1", "9"],
        ]
        # numbers are right-aligned under their headings
        assert len({len(line) for line in lines}) == 1

    def test_days(self, cli: Cli, token: dict[str, Any], this_hour: int) -> None:
        """--days 11 reaches the expired request of 10 days ago: its column appears."""
        lines = cli.ok("token", "usage", token["id"], "--days", "11").stdout.splitlines()
        assert lines[0].split() == [
            "HOUR",
            "ALLOWED",
            "DENIED",
            "EXPIRED",
            "PERMISSION_DENIED",
            "RATE_LIMITED",
        ]
        assert lines[1].split() == [rfc3339(this_hour - 10 * DAY), "0", "5", "5", "0", "0"]
        assert lines[-1].split() == ["TOTAL", "123", "15", "5", "1", "9"]

    def test_json_is_the_admin_apis_answer(
        self, cli: Cli, token: dict[str, Any], this_hour: int
    ) -> None:
        answer = cli.ok("token", "usage", token["id"], "--json").json()
        assert answer == {
            "hours": [
                {
                    "hour": rfc3339(this_hour - 2 * HOUR),
                    "allowed": 3,
                    "denied": {"permission_denied": 1, "rate_limited": 2},
                },
                {"hour": rfc3339(this_hour), "allowed": 120, "denied": {"rate_limited": 7}},
            ]
        }

    def test_no_requests(self, cli: Cli, token: dict[str, Any]) -> None:
        """Nothing on stdout, a sentence on stderr, exit 0; --json prints no hours."""
        result = cli.ok("token", "usage", token["id"])
        assert result.stdout == ""
        assert "no requests" in result.stderr
        assert cli.ok("token", "usage", token["id"], "--json").json() == {"hours": []}


class TestRefusals:
    def test_unknown_id(self, cli: Cli) -> None:
        assert_failed(cli.run("token", "usage", "tok_0123456789abcdef"))

    def test_not_an_id(self, cli: Cli) -> None:
        assert_failed(cli.run("token", "usage", "nonsense"))

    @pytest.mark.parametrize("days", ["0", "91", "-1", "7d", "٣"])
    def test_days_out_of_range_is_a_usage_error(
        self, cli: Cli, token: dict[str, Any], days: str
    ) -> None:
        result = cli.run("token", "usage", token["id"], "--days", days)
        assert result.status == 2
        assert "--days" in result.stderr
