"""Seeing expiry coming (SPEC §11): ``GET /admin/v1/tokens?status=&expires_within=``, and the
store filters and counts behind it, which must agree with the token object's ``status`` on
every backend, to the boundary instant, under every policy."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from authsvc.config import SecurityPolicy
from authsvc.rules.decision import effective_expiry, token_status
from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from authsvc.store import ListQuery, StatusBasis, TokenStatus, TokenStore
from tests.admin_helpers import (
    DAY,
    TOKENS,
    Reply,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    send,
)
from tests.factories import FrozenClock
from tests.stores import add, names
from tests.webapp import NOW, Client, mint, use_config

HOUR = 3600
STATUSES: tuple[TokenStatus, ...] = ("active", "expired", "blocked")

#: Policies a store must judge exactly as ``token_status`` does.
POLICIES = [
    pytest.param(SecurityPolicy(), id="no-max-lifetime"),
    pytest.param(SecurityPolicy(max_lifetime=10 * DAY), id="max-lifetime-10d"),
    pytest.param(SecurityPolicy(tokens_enabled=False), id="tokens-disabled"),
    pytest.param(SecurityPolicy(tokens_enabled=False, max_lifetime=DAY), id="disabled-and-max"),
]
WINDOWS = [0.0, 1.0, HOUR, DAY, 7 * DAY, 30 * DAY]


def grid() -> list[TokenRecord]:
    """Tokens around every boundary NOW can meet: expiry (own or by a 10-day
    max_lifetime) long past, just past, exactly now, just ahead, at each window's edge and
    beyond it, or never."""
    offsets = [-100 * DAY, -1.0, 0.0, 0.5, 1.0, HOUR, DAY, DAY + 1, 7 * DAY, 30 * DAY, 90 * DAY]
    expiries: list[float | None] = [None, *(NOW + offset for offset in offsets)]
    # created so that created_at + 10 days lands on the same boundaries
    created = [NOW - 10 * DAY + offset for offset in offsets if offset <= 0] + [NOW - DAY]
    return [
        TokenRecord(
            id=f"tok_{index:016x}",
            name=f"t{index:03d}",
            permissions=frozenset({"Reader"}),
            ip_filter=None,
            created_at=created_at,
            expires_at=expires_at,
            created_by="cli",
        )
        for index, (created_at, expires_at) in enumerate(itertools.product(created, expiries))
        # a token cannot expire before it was created
        if expires_at is None or expires_at >= created_at
    ]


def expected_expiring(record: TokenRecord, policy: SecurityPolicy, window: float) -> bool:
    """The contract, from the token object's side: active, with an effective expiry at
    most ``window`` from NOW."""
    expiry = effective_expiry(record, policy)
    active = token_status(record, policy, NOW) == "active"
    return active and expiry is not None and expiry <= NOW + window


@pytest.fixture
async def gridded(store: TokenStore) -> list[TokenRecord]:
    records = grid()
    for record in records:
        await store.insert(record, record.id.encode().ljust(32, b"\0"))
    return records


class TestStoreAgreesWithTokenStatus:
    """list_tokens and count_tokens filter in SQL exactly as token_status judges a record."""

    @pytest.mark.parametrize("policy", POLICIES)
    async def test_status_filter(
        self, store: TokenStore, gridded: list[TokenRecord], policy: SecurityPolicy
    ) -> None:
        """Each status lists exactly the tokens whose object shows that status; totals and
        the one-pass counts agree."""
        basis = StatusBasis.of(policy, NOW)
        queries = [ListQuery(status=status, basis=basis, limit=500) for status in STATUSES]
        counts = await store.count_tokens(queries)
        for query, count in zip(queries, counts, strict=True):
            expected = sorted(
                r.name for r in gridded if token_status(r, policy, NOW) == query.status
            )
            total, page = await store.list_tokens(query)
            assert (total, names(page), count) == (len(expected), expected, len(expected)), (
                query.status
            )
        assert sum(counts) == len(gridded)

    @pytest.mark.parametrize("policy", POLICIES)
    async def test_expires_within(
        self, store: TokenStore, gridded: list[TokenRecord], policy: SecurityPolicy
    ) -> None:
        """Active tokens whose effective expiry is at most the window away; never-expiring,
        expired and blocked tokens never."""
        basis = StatusBasis.of(policy, NOW)
        queries = [ListQuery(expires_within=w, basis=basis, limit=500) for w in WINDOWS]
        counts = await store.count_tokens(queries)
        for query, count in zip(queries, counts, strict=True):
            window = query.expires_within or 0.0
            expected = sorted(r.name for r in gridded if expected_expiring(r, policy, window))
            total, page = await store.list_tokens(query)
            assert (total, names(page), count) == (len(expected), expected, len(expected)), window

    async def test_policy_cap_counts_from_creation(self, store: TokenStore) -> None:
        """A token without an expiry of its own expires by max_lifetime from its creation."""
        await add(store, "old", created_at=NOW - 40 * DAY)
        await add(store, "young", created_at=NOW - 25 * DAY)
        await add(store, "short", created_at=NOW - DAY, expires_at=NOW + HOUR)
        basis = StatusBasis.of(SecurityPolicy(max_lifetime=30 * DAY), NOW)
        _, expired = await store.list_tokens(ListQuery(status="expired", basis=basis))
        _, soon = await store.list_tokens(ListQuery(expires_within=7 * DAY, basis=basis))
        _, today = await store.list_tokens(ListQuery(expires_within=DAY, basis=basis))
        assert (names(expired), names(soon), names(today)) == (
            ["old"],
            ["short", "young"],
            ["short"],
        )

    async def test_filters_combine_with_name_order_and_paging(self, store: TokenStore) -> None:
        """status, expires_within, name, sort and paging all apply; total counts the
        filtered set before paging."""
        for index in range(5):
            await add(
                store, f"ci-{index}", created_at=NOW - DAY, expires_at=NOW + (index + 1) * DAY
            )
            await add(
                store, f"ops-{index}", created_at=NOW - DAY, expires_at=NOW + (index + 1) * DAY
            )
        await add(store, "ci-gone", created_at=NOW - 9 * DAY, expires_at=NOW - DAY)
        basis = StatusBasis.of(SecurityPolicy(), NOW)
        query = ListQuery(
            name_contains="CI-",
            expires_within=3 * DAY,
            basis=basis,
            sort="expires_at",
            order="desc",
            limit=2,
            offset=1,
        )
        total, page = await store.list_tokens(query)
        assert (total, names(page)) == (3, ["ci-1", "ci-0"])
        both = ListQuery(name_contains="ci", status="expired", expires_within=DAY, basis=basis)
        assert await store.list_tokens(both) == (0, [])  # expiring means still active
        counted = await store.count_tokens([query, ListQuery(name_contains="ci-g")])
        assert counted == [3, 1]

    async def test_count_of_an_impossible_name_is_zero(self, store: TokenStore) -> None:
        """A name no store can hold counts 0 rather than failing the whole count."""
        await add(store, "ci")
        assert await store.count_tokens([ListQuery(name_contains="c\x00"), ListQuery()]) == [0, 1]

    @pytest.mark.parametrize(
        "fields",
        [
            pytest.param({"status": "active"}, id="status"),
            pytest.param({"expires_within": DAY}, id="expires-within"),
        ],
    )
    def test_filters_need_a_basis(self, fields: dict[str, object]) -> None:
        """A status or expiry filter without a moment and a policy is refused at once."""
        with pytest.raises(ValueError, match="StatusBasis"):
            ListQuery(**fields)  # type: ignore[arg-type]  # deliberately incomplete

    @pytest.mark.parametrize(
        "fields",
        [
            pytest.param({"status": "revoked"}, id="unknown-status"),
            pytest.param({"expires_within": -1.0}, id="negative-window"),
            pytest.param({"expires_within": float("nan")}, id="nan-window"),
        ],
    )
    def test_bad_filters_are_refused(self, fields: dict[str, object]) -> None:
        """Values outside the contract never reach SQL."""
        with pytest.raises(ValueError, match=r"status|expires_within"):
            ListQuery(basis=StatusBasis(NOW), **fields)  # type: ignore[arg-type]  # deliberately invalid


def listed_names(reply: Reply) -> list[str]:
    assert reply.status == 200, reply.body
    return [token["name"] for token in reply.body["tokens"]]


@pytest.fixture
async def lifecycle(runtime: Runtime, clock: FrozenClock, admin: tuple[TokenRecord, str]) -> str:
    """Tokens made 20 days before NOW: 'month' (30d: 10 days left), 'day-left' (21d: it
    expires at NOW + 1 day exactly), 'week' (7d: expired) and 'forever' (no expiry); then
    'fresh' (2h), made at NOW like the admin token, which never expires. The admin
    secret."""
    clock.now = NOW - 20 * DAY
    for name, expires_in in [
        ("month", "30d"),
        ("day-left", "21d"),
        ("week", "7d"),
        ("forever", None),
    ]:
        await mint(runtime, "Reader", name=name, expires_in=expires_in)
    clock.now = NOW
    await mint(runtime, "Reader", name="fresh", expires_in="2h")
    return admin[1]


class TestListFilters:
    """GET /admin/v1/tokens with status and expires_within."""

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            pytest.param(
                "status=active", ["admin", "day-left", "forever", "fresh", "month"], id="active"
            ),
            pytest.param("status=expired", ["week"], id="expired"),
            pytest.param("status=blocked", [], id="blocked-none-while-enabled"),
            pytest.param("expires_within=3h", ["fresh"], id="within-3h"),
            pytest.param("expires_within=1d", ["day-left", "fresh"], id="within-1d-edge"),
            pytest.param("expires_within=7d", ["day-left", "fresh"], id="within-7d"),
            pytest.param("expires_within=30d", ["day-left", "fresh", "month"], id="within-30d"),
            pytest.param("expires_within=1439m", ["fresh"], id="within-a-minute-short"),
            pytest.param("status=active&expires_within=1d", ["day-left", "fresh"], id="combined"),
            pytest.param("status=expired&expires_within=30d", [], id="expired-never-expiring"),
            pytest.param(
                "status=&expires_within=",
                ["admin", "day-left", "forever", "fresh", "month", "week"],
                id="empty-means-no-filter",
            ),
        ],
    )
    async def test_filter(
        self, admin_client: Client, lifecycle: str, query: str, expected: list[str]
    ) -> None:
        """Each filter lists exactly its tokens (by name), and total counts them."""
        reply = await send(admin_client, "GET", f"{TOKENS}?{query}", lifecycle)
        assert listed_names(reply) == expected
        assert reply.body["total"] == len(expected)

    async def test_listed_status_matches_the_objects(
        self, admin_client: Client, lifecycle: str
    ) -> None:
        """Every token listed under a status shows that status in its object."""
        for status in STATUSES:
            reply = await send(admin_client, "GET", f"{TOKENS}?status={status}", lifecycle)
            assert {token["status"] for token in reply.body["tokens"]} <= {status}

    async def test_total_counts_the_filtered_set_before_paging(
        self, admin_client: Client, lifecycle: str
    ) -> None:
        """limit and offset page the filtered set; total is all of it."""
        reply = await send(
            admin_client, "GET", f"{TOKENS}?expires_within=30d&limit=1&offset=1", lifecycle
        )
        assert (listed_names(reply), reply.body["total"]) == (["fresh"], 3)

    async def test_follows_the_clock(
        self, admin_client: Client, lifecycle: str, clock: FrozenClock
    ) -> None:
        """At the effective expiry a token moves from active to expired, that instant."""
        clock.now = NOW + DAY - 1  # 'day-left' expires at NOW + 1 day exactly
        before = await send(admin_client, "GET", f"{TOKENS}?status=expired", lifecycle)
        clock.now = NOW + DAY
        after = await send(admin_client, "GET", f"{TOKENS}?status=expired", lifecycle)
        assert listed_names(before) == ["fresh", "week"]
        assert listed_names(after) == ["day-left", "fresh", "week"]

    async def test_follows_the_policy_in_force(
        self, admin_client: Client, lifecycle: str, runtime: Runtime, tmp_path: Path
    ) -> None:
        """A max_lifetime put in force by a reload expires older tokens and brings their
        effective expiry closer, without touching them."""
        use_config(runtime, tmp_path, security_policy={"max_lifetime": "21d"})
        expired = await send(admin_client, "GET", f"{TOKENS}?status=expired", lifecycle)
        soon = await send(admin_client, "GET", f"{TOKENS}?expires_within=1d", lifecycle)
        assert listed_names(expired) == ["week"]
        # 'month' and 'forever' (made 20 days ago) now stop within a day, like 'day-left'
        assert listed_names(soon) == ["day-left", "forever", "fresh", "month"]
        use_config(runtime, tmp_path, security_policy={"max_lifetime": "20d"})
        expired = await send(admin_client, "GET", f"{TOKENS}?status=expired", lifecycle)
        # the admin token itself was made at NOW and stays active
        assert listed_names(expired) == ["day-left", "forever", "month", "week"]


class TestBadFilters:
    """Bad values are 400 invalid_query naming the parameter, and list nothing."""

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            pytest.param("status=revoked", "status", id="unknown-status"),
            pytest.param("status=Active", "status", id="status-case"),
            pytest.param("status=active,expired", "status", id="status-list"),
            pytest.param("expires_within=7", "expires_within", id="no-unit"),
            pytest.param("expires_within=7x", "expires_within", id="unknown-unit"),
            pytest.param("expires_within=30s", "expires_within", id="seconds-not-allowed"),
            pytest.param("expires_within=0d", "expires_within", id="zero"),
            pytest.param("expires_within=-1d", "expires_within", id="negative"),
            pytest.param("expires_within=07d", "expires_within", id="leading-zero"),
            pytest.param("expires_within=1.5d", "expires_within", id="fraction"),
            pytest.param("expires_within=99999999999d", "expires_within", id="huge"),
            pytest.param("expires_within=%EF%BC%97d", "expires_within", id="fullwidth-digit"),
            pytest.param("status=active&status=expired", "status", id="repeated-status"),
            pytest.param("expires_within=1d&expires_within=7d", "expires_within", id="repeated"),
        ],
    )
    async def test_refused(
        self, admin_client: Client, lifecycle: str, query: str, field: str
    ) -> None:
        """400 invalid_query with ``field``."""
        reply = await send(admin_client, "GET", f"{TOKENS}?{query}", lifecycle)
        error_of(reply, "invalid_query", 400, field=field)

    async def test_a_secret_in_the_value_is_not_echoed(
        self, admin_client: Client, lifecycle: str
    ) -> None:
        """A token pasted into expires_within is redacted from the error message."""
        reply = await send(admin_client, "GET", f"{TOKENS}?expires_within={lifecycle}", lifecycle)
        error_of(reply, "invalid_query", 400, field="expires_within")
        assert lifecycle[:20] not in reply.text


async def test_blocked_is_refused_to_the_api_while_tokens_are_off(
    admin_client: Client, lifecycle: str, runtime: Runtime, tmp_path: Path
) -> None:
    """While tokens are switched off every admin call is 403 tokens_disabled, this one
    included: status=blocked is for the CLI then (docs/admin-api.md)."""
    use_config(runtime, tmp_path, security_policy={"tokens_enabled": False})
    reply = await send(admin_client, "GET", f"{TOKENS}?status=blocked", lifecycle)
    error_of(reply, "tokens_disabled", 403)
