"""``GET /admin/v1/tokens/{id}/usage?from=&to=`` (SPEC §12, Usage) on each store kind: the
hours with requests, allowed and denied by reason; the default and explicit ranges; bad
ranges as 422 ``invalid_range`` naming the parameter; unknown and deleted tokens as 404.

Who may call it (View or Manage, nothing else; 503 without a store) is covered with the
other reads by tests/admin_helpers.py's READS table."""

from __future__ import annotations

from typing import Any

import pytest

from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from authsvc.store import HOUR, HourlyCount
from tests.admin_helpers import TOKENS, UNKNOWN_ID, Reply, error_of, send
from tests.webapp import NOW, READ_ITEMS, Client, bearer, mint

DAY = 86400
#: 2025-06-15T15:00:00Z, the hour that holds NOW (the frozen clock of tests.webapp).
THIS_HOUR = 1_749_999_600
WRITE_ITEMS = {"X-Original-Method": "POST", "X-Original-URI": "/api/v1/items"}


@pytest.fixture
async def reader(runtime: Runtime) -> TokenRecord:
    return (await mint(runtime, "Reader", name="reader"))[0]


async def usage(client: Client, secret: str, token_id: str, query: str = "") -> Reply:
    return await send(client, "GET", f"{TOKENS}/{token_id}/usage{query}", secret)


async def hours(client: Client, secret: str, token_id: str, query: str = "") -> list[Any]:
    reply = await usage(client, secret, token_id, query)
    assert reply.status == 200, reply.body
    assert reply.headers["Cache-Control"] == "no-store"
    assert set(reply.body) == {"hours"}
    found: list[Any] = reply.body["hours"]
    return found


class TestAnswer:
    async def test_requests_on_auth_are_counted_by_hour_and_reason(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        admin_secret: str,
    ) -> None:
        """Allowed and permission-denied requests of a token on /auth, once flushed."""
        record, secret = await mint(runtime, "Reader", name="used")
        for headers in (READ_ITEMS, READ_ITEMS, WRITE_ITEMS):
            await auth_client.get("/auth", headers={**bearer(secret), **headers})
        await runtime.usage.flush()
        assert await hours(admin_client, admin_secret, record.id) == [
            {"hour": rfc3339(THIS_HOUR), "allowed": 2, "denied": {"permission_denied": 1}}
        ]

    async def test_counts_lag_until_flushed(
        self, runtime: Runtime, admin_client: Client, admin_secret: str, reader: TokenRecord
    ) -> None:
        """What this instance counted but has not written yet is not in the answer
        (documented: usage lags by up to the flush interval)."""
        runtime.usage.count(reader.id, "allowed", NOW)
        assert await hours(admin_client, admin_secret, reader.id) == []
        await runtime.usage.flush()
        assert len(await hours(admin_client, admin_secret, reader.id)) == 1

    async def test_default_is_the_last_7_days_by_hour_without_empty_hours(
        self, runtime: Runtime, admin_client: Client, admin_secret: str, reader: TokenRecord
    ) -> None:
        """Oldest first; the hour that holds now−7d is in, the one before it is not; hours
        without requests are absent; denied lists only the reasons counted."""
        in_first_hour = THIS_HOUR - 7 * DAY  # holds NOW − 7 days
        await runtime.store.add_usage(
            [
                HourlyCount(reader.id, THIS_HOUR, "allowed", 5),
                HourlyCount(reader.id, THIS_HOUR, "rate_limited", 2),
                HourlyCount(reader.id, THIS_HOUR - 3 * HOUR, "ip_not_allowed", 1),
                HourlyCount(reader.id, in_first_hour, "allowed", 1),
                HourlyCount(reader.id, in_first_hour - HOUR, "allowed", 9),
            ]
        )
        assert await hours(admin_client, admin_secret, reader.id) == [
            {"hour": rfc3339(in_first_hour), "allowed": 1, "denied": {}},
            {"hour": rfc3339(THIS_HOUR - 3 * HOUR), "allowed": 0, "denied": {"ip_not_allowed": 1}},
            {"hour": rfc3339(THIS_HOUR), "allowed": 5, "denied": {"rate_limited": 2}},
        ]

    @pytest.mark.parametrize(
        ("query", "expected_hours"),
        [
            pytest.param(
                "?from=2025-06-15T12:30:00Z&to=2025-06-15T14:00:00Z", [12, 13], id="partial-hours"
            ),
            pytest.param(
                "?from=2025-06-15T14:00:00%2B02:00&to=2025-06-15t15:00:00.5z",
                [12, 13, 14, 15],
                id="offset-lowercase-fraction",
            ),
            pytest.param("?from=2025-06-15T13:59:60Z", [14, 15], id="leap-second"),
            pytest.param("?to=2025-06-15T13:00:00Z", [12], id="to-only"),
            pytest.param("?from=&to=", [12, 13, 14, 15], id="empty-means-default"),
        ],
    )
    async def test_explicit_ranges_take_the_hours_that_overlap_them(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        reader: TokenRecord,
        query: str,
        expected_hours: list[int],
    ) -> None:
        """[from, to): the hour holding ``from`` counts, hours starting at ``to`` or later
        do not. Times with an offset, a fraction, lower-case t/z or a leap second are
        RFC 3339 too."""
        await runtime.store.add_usage(
            [HourlyCount(reader.id, THIS_HOUR - back * HOUR, "allowed", 1) for back in range(4)]
        )
        found = await hours(admin_client, admin_secret, reader.id, query)
        assert [entry["hour"][11:13] for entry in found] == [f"{h:02d}" for h in expected_hours]


class TestRefusals:
    @pytest.mark.parametrize(
        ("query", "field"),
        [
            pytest.param("?from=yesterday", "from", id="not-a-time"),
            pytest.param("?to=2025-06-15", "to", id="date-only"),
            pytest.param("?to=2025-06-15T15:00:00", "to", id="no-offset"),
            pytest.param("?to=2025-06-15 15:00:00Z", "to", id="space"),
            pytest.param("?from=2025-13-01T00:00:00Z", "from", id="month-13"),
            pytest.param("?from=2025-06-15T10:00:00%2B24:00", "from", id="offset-24h"),
            pytest.param("?from=0000-01-01T00:00:00Z", "from", id="year-0"),
            pytest.param("?from=0001-01-01T00:00:00%2B23:59", "from", id="before-year-1"),
            pytest.param("?from=2025-06-16T00:00:00Z", "from", id="from-after-now"),
            pytest.param("?from=2025-03-16T15:00:00Z", "from", id="over-90-days"),
            pytest.param("?from=2025-06-15T14:00:00Z&to=2025-06-15T14:00:00Z", None, id="empty"),
            pytest.param(
                "?from=2025-01-01T00:00:00Z&to=2025-06-01T00:00:00Z", None, id="both-too-long"
            ),
        ],
    )
    async def test_bad_ranges_are_422_naming_the_parameter(
        self,
        *,
        admin_client: Client,
        admin_secret: str,
        reader: TokenRecord,
        query: str,
        field: str | None,
    ) -> None:
        """The one parameter at fault is named; a range bad as a whole (both given) names
        none."""
        reply = await usage(admin_client, admin_secret, reader.id, query)
        error_of(reply, "invalid_range", 422, field=field)

    async def test_exactly_90_days_is_allowed(
        self, admin_client: Client, admin_secret: str, reader: TokenRecord
    ) -> None:
        query = "?from=2025-03-01T00:00:00Z&to=2025-05-30T00:00:00Z"
        assert await hours(admin_client, admin_secret, reader.id, query) == []

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            pytest.param("?since=2025-06-15T00:00:00Z", "since", id="unknown"),
            pytest.param("?to=2025-06-15T00:00:00Z&to=2025-06-14T00:00:00Z", "to", id="repeated"),
        ],
    )
    async def test_unknown_or_repeated_parameters_are_400(
        self,
        *,
        admin_client: Client,
        admin_secret: str,
        reader: TokenRecord,
        query: str,
        field: str,
    ) -> None:
        """As on the list call: 400 invalid_query naming the parameter."""
        reply = await usage(admin_client, admin_secret, reader.id, query)
        error_of(reply, "invalid_query", 400, field=field)

    @pytest.mark.parametrize(
        "token_id", [UNKNOWN_ID, "not-an-id"], ids=["unknown", "not-shaped-like-an-id"]
    )
    async def test_unknown_token_is_404(
        self, admin_client: Client, admin_secret: str, token_id: str
    ) -> None:
        error_of(await usage(admin_client, admin_secret, token_id), "not_found", 404)

    async def test_a_deleted_tokens_usage_is_no_longer_readable(
        self, runtime: Runtime, admin_client: Client, admin_secret: str, reader: TokenRecord
    ) -> None:
        """404 once deleted, and its counts are gone from the store."""
        await runtime.store.add_usage([HourlyCount(reader.id, THIS_HOUR, "allowed", 3)])
        assert len(await hours(admin_client, admin_secret, reader.id)) == 1
        reply = await send(admin_client, "DELETE", f"{TOKENS}/{reader.id}", admin_secret)
        assert reply.status == 204
        error_of(await usage(admin_client, admin_secret, reader.id), "not_found", 404)
        assert await runtime.store.usage(reader.id, 0, 2**40) == []
