"""TokenStore contract, hourly usage counts (schema version 3, SPEC §12 Usage): add_usage sums
batches into what is stored, drops counts of tokens that do not exist, and writes a batch
whole or not at all; usage reads one token's hours in a range, in order; prune_usage and
delete remove counts. ``store`` (tests/stores.py) runs each test on each STORE_KINDS; the
race between a batch and a delete is staged on PostgreSQL alone."""

from __future__ import annotations

import asyncio

import pytest

from authsvc.store import HOUR, USAGE_OUTCOMES, HourlyCount, TokenStore
from authsvc.store.postgres.store import PostgresStore
from authsvc.store.queries import usage_rows
from tests.pg import PgSchema
from tests.stores import add
from tests.waiting import within

T0 = 1_700_000_000 // HOUR * HOUR  # the start of an hour
EVER = (0, 2**40)  # a range holding every hour


def count(token_id: str, hours: int, outcome: str, n: int) -> HourlyCount:
    """``n`` requests of ``token_id`` with ``outcome``, ``hours`` hours after T0."""
    return HourlyCount(token_id, T0 + hours * HOUR, outcome, n)


async def every_count(store: TokenStore, token_id: str) -> list[HourlyCount]:
    """All of the token's stored counts."""
    return await store.usage(token_id, *EVER)


class TestAddUsage:
    """Batches add to what is stored."""

    async def test_counts_are_summed_with_what_is_stored(self, store: TokenStore) -> None:
        """A batch adds to the stored counts; repeats within one batch add up too."""
        token = await add(store, "busy")
        await store.add_usage([count(token.id, 0, "allowed", 3), count(token.id, 0, "expired", 1)])
        await store.add_usage(
            [
                count(token.id, 0, "allowed", 4),
                count(token.id, 0, "allowed", 5),
                count(token.id, 1, "allowed", 1),
            ]
        )
        assert await every_count(store, token.id) == [
            count(token.id, 0, "allowed", 12),
            count(token.id, 0, "expired", 1),
            count(token.id, 1, "allowed", 1),
        ]

    async def test_every_outcome_is_kept_apart(self, store: TokenStore) -> None:
        """Each outcome of SPEC §12 has a count of its own, read back ordered by name."""
        token = await add(store, "all kinds")
        await store.add_usage([count(token.id, 0, o, i + 1) for i, o in enumerate(USAGE_OUTCOMES)])
        got = await every_count(store, token.id)
        assert got == sorted(
            (count(token.id, 0, o, i + 1) for i, o in enumerate(USAGE_OUTCOMES)),
            key=lambda c: c.outcome,
        )

    async def test_counts_of_unknown_tokens_are_dropped(self, store: TokenStore) -> None:
        """A count of a token that never existed or was deleted is dropped; the rest of the
        batch is kept."""
        kept, gone = await add(store, "kept"), await add(store, "gone")
        await store.delete(gone.id)
        await store.add_usage(
            [
                count("tok_0000000000000000", 0, "allowed", 9),
                count(gone.id, 0, "allowed", 9),
                count(kept.id, 0, "allowed", 2),
            ]
        )
        assert await every_count(store, kept.id) == [count(kept.id, 0, "allowed", 2)]
        assert await every_count(store, gone.id) == []
        assert await every_count(store, "tok_0000000000000000") == []

    async def test_a_large_batch_is_added_whole(self, store: TokenStore) -> None:
        """Thousands of rows in one batch (an instance's ten seconds under load)."""
        tokens = [await add(store, f"t{i}") for i in range(20)]
        batch = [count(t.id, h, o, 1) for t in tokens for h in range(30) for o in USAGE_OUTCOMES]
        await store.add_usage(batch)
        await store.add_usage(batch)
        for token in tokens:
            got = await every_count(store, token.id)
            assert len(got) == 30 * len(USAGE_OUTCOMES)
            assert {c.count for c in got} == {2}

    @pytest.mark.parametrize(
        "bad",
        [
            pytest.param(HourlyCount("x", T0, "denied", 1), id="unknown-outcome"),
            pytest.param(HourlyCount("x", T0 + 1, "allowed", 1), id="not-on-the-hour"),
            pytest.param(HourlyCount("x", T0, "allowed", -1), id="negative"),
        ],
    )
    async def test_a_bad_count_refuses_the_whole_batch(
        self, store: TokenStore, bad: HourlyCount
    ) -> None:
        """A count nobody could read back is a caller's bug: ValueError, nothing written."""
        token = await add(store, "t")
        bad = HourlyCount(token.id, bad.hour, bad.outcome, bad.count)
        with pytest.raises(ValueError, match="usage"):
            await store.add_usage([count(token.id, 0, "allowed", 1), bad])
        assert await every_count(store, token.id) == []

    async def test_zero_counts_and_empty_batches_store_nothing(self, store: TokenStore) -> None:
        """Hours without requests have no rows."""
        token = await add(store, "idle")
        await store.add_usage([])
        await store.add_usage([count(token.id, 0, "allowed", 0)])
        assert await every_count(store, token.id) == []


class TestBatchRows:
    """What both backends write for a batch (authsvc.store.queries.usage_rows)."""

    def test_rows_are_summed_and_in_key_order(self) -> None:
        """One row per (token, hour, outcome), sorted: instances adding at once then lock
        rows in the same order and cannot deadlock each other."""
        batch = [
            count("b", 1, "allowed", 1),
            count("a", 2, "expired", 1),
            count("b", 0, "rate_limited", 2),
            count("a", 2, "allowed", 3),
            count("b", 1, "allowed", 4),
        ]
        assert usage_rows(batch) == [
            ("a", T0 + 2 * HOUR, "allowed", 3),
            ("a", T0 + 2 * HOUR, "expired", 1),
            ("b", T0, "rate_limited", 2),
            ("b", T0 + HOUR, "allowed", 5),
        ]


class TestReadUsage:
    """usage reads one token, one range of hours."""

    async def test_range_is_half_open_and_ordered(self, store: TokenStore) -> None:
        """``start <= hour < end``, by hour then outcome, whatever order they were added in;
        other tokens' counts are not in it."""
        token, other = await add(store, "mine"), await add(store, "other")
        await store.add_usage(
            [
                count(token.id, 3, "allowed", 1),
                count(token.id, 1, "rate_limited", 2),
                count(token.id, 1, "allowed", 3),
                count(token.id, 0, "allowed", 4),
                count(token.id, 2, "permission_denied", 5),
                count(other.id, 1, "allowed", 6),
            ]
        )
        assert await store.usage(token.id, T0 + HOUR, T0 + 3 * HOUR) == [
            count(token.id, 1, "allowed", 3),
            count(token.id, 1, "rate_limited", 2),
            count(token.id, 2, "permission_denied", 5),
        ]
        assert await store.usage(token.id, T0 + 4 * HOUR, T0 + 9 * HOUR) == []
        assert await store.usage("tok_0000000000000000", *EVER) == []


class TestRemoval:
    """prune_usage and delete remove counts."""

    async def test_prune_deletes_older_hours(self, store: TokenStore) -> None:
        """Counts of hours before the bound go (for every token); the rest stay."""
        one, two = await add(store, "one"), await add(store, "two")
        await store.add_usage(
            [
                count(one.id, 0, "allowed", 1),
                count(one.id, 0, "expired", 1),
                count(two.id, 1, "allowed", 1),
                count(one.id, 2, "allowed", 1),
            ]
        )
        assert await store.prune_usage(T0 + 2 * HOUR) == 3
        assert await every_count(store, one.id) == [count(one.id, 2, "allowed", 1)]
        assert await every_count(store, two.id) == []
        assert await store.prune_usage(T0 + 2 * HOUR) == 0

    async def test_delete_removes_the_tokens_counts(self, store: TokenStore) -> None:
        """A deleted token's counts are gone with it; other tokens' stay."""
        doomed, kept = await add(store, "doomed"), await add(store, "kept")
        await store.add_usage([count(doomed.id, 0, "allowed", 5), count(kept.id, 0, "allowed", 1)])
        await store.delete(doomed.id)
        assert await every_count(store, doomed.id) == []
        assert await every_count(store, kept.id) == [count(kept.id, 0, "allowed", 1)]

    async def test_a_refused_delete_keeps_the_counts(self, store: TokenStore) -> None:
        """A delete that does not happen (the secret changed meanwhile) removes nothing."""
        token = await add(store, "rotated")
        await store.add_usage([count(token.id, 0, "allowed", 5)])
        assert await store.delete(token.id, digest=b"\x01" * 32) is None
        assert await every_count(store, token.id) == [count(token.id, 0, "allowed", 5)]


class TestBatchRacingADelete:
    """A batch adding to a token that is being deleted leaves no counts behind (staged on
    PostgreSQL: SQLite writers take turns under one file lock, so they cannot overlap)."""

    async def test_batch_waits_for_the_delete_and_drops_its_counts(
        self, pg_schema: PgSchema
    ) -> None:
        """The delete has removed the token and its counts but not committed yet; a batch
        arriving then must wait for it and drop the count (adding it would leave a count
        of a deleted token for ever)."""
        store = PostgresStore(pg_schema.url)
        await store.open()
        try:
            token = await add(store, "racing")
            admin = pg_schema.admin
            async with admin.transaction():
                # what store.delete does in its transaction, in its order
                await admin.execute("DELETE FROM tokens WHERE id = $1", token.id)
                await admin.execute("DELETE FROM token_usage WHERE token_id = $1", token.id)
                batch = asyncio.create_task(store.add_usage([count(token.id, 0, "allowed", 1)]))

                async def waiting_or_done() -> bool:
                    waiting = await admin.fetchval(
                        "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = $1"
                        " AND wait_event_type = 'Lock'",
                        pg_schema.name,
                    )
                    return batch.done() or waiting is True

                await within(10, waiting_or_done, "the batch to wait for the delete, or end")
            await batch
            assert await admin.fetchval("SELECT count(*) FROM token_usage") == 0
        finally:
            await store.close()
