"""The hourly usage counts of :class:`UsageRecorder` (SPEC §12, Usage): counted on the
request path without growing, handed to a real store in batches, kept and retried while
the store refuses them (within a bound, the oldest hours dropped first and said once),
flushed at stop, and pruned after 90 days."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from pathlib import Path
from typing import cast

import pytest

from authsvc.service.usage import KEEP_SECONDS, UsageRecorder, hour_of, usage_hours
from authsvc.store import HOUR, USAGE_OUTCOMES, HourlyCount, TokenStore
from authsvc.store.sqlite.store import SQLiteStore
from tests.factories import FrozenClock
from tests.stores import add, hold_write_lock
from tests.waiting import within

#: 2025-06-15T15:00:00Z, the start of an hour; NOW is 6 min 40 s into it.
HOUR_START = 1_749_999_600
NOW = HOUR_START + 400.0


def stored(counts: list[HourlyCount]) -> set[tuple[int, str, int]]:
    """(hour, outcome, count) of each stored row."""
    return {(count.hour, count.outcome, count.count) for count in counts}


async def read_all(store: TokenStore, token_id: str) -> set[tuple[int, str, int]]:
    return stored(await store.usage(token_id, 0, 2**40))


@pytest.fixture
async def locked_store(tmp_path: Path) -> SQLiteStore:
    """An SQLite store that gives up on a held write lock after 0.2 s."""
    opened = SQLiteStore(str(tmp_path / "locked.db"), busy_timeout_ms=200)
    await opened.open()
    return opened


class TestCounting:
    async def test_counts_by_hour_and_outcome_across_an_hour_boundary(
        self, store: TokenStore
    ) -> None:
        """Each request lands in the hour it happened in, under its outcome; the rest of
        the hour before and the next hour are separate rows."""
        token = await add(store, "busy")
        recorder = UsageRecorder(store)
        for _ in range(3):
            recorder.count(token.id, "allowed", NOW)
        recorder.count(token.id, "permission_denied", NOW)
        recorder.count(token.id, "allowed", HOUR_START + HOUR - 0.001)  # last instant
        recorder.count(token.id, "allowed", HOUR_START + HOUR)  # next hour's first
        recorder.count(token.id, "rate_limited", HOUR_START + HOUR + 5)
        await recorder.flush()
        assert await read_all(store, token.id) == {
            (HOUR_START, "allowed", 4),
            (HOUR_START, "permission_denied", 1),
            (HOUR_START + HOUR, "allowed", 1),
            (HOUR_START + HOUR, "rate_limited", 1),
        }

    async def test_every_outcome_is_counted_and_others_are_refused(self, store: TokenStore) -> None:
        """Each of USAGE_OUTCOMES has its own count; an unknown outcome is a bug, not a row."""
        token = await add(store, "all outcomes")
        recorder = UsageRecorder(store)
        for number, outcome in enumerate(USAGE_OUTCOMES, 1):
            for _ in range(number):
                recorder.count(token.id, outcome, NOW)
        with pytest.raises(KeyError):
            recorder.count(token.id, "invalid_token", NOW)
        await recorder.flush()
        assert await read_all(store, token.id) == {
            (HOUR_START, outcome, number) for number, outcome in enumerate(USAGE_OUTCOMES, 1)
        }

    async def test_flushes_add_to_what_is_stored(self, store: TokenStore) -> None:
        """A second batch for the same hour sums with the first; an empty flush writes nothing."""
        token = await add(store, "twice")
        recorder = UsageRecorder(store)
        recorder.count(token.id, "allowed", NOW)
        await recorder.flush()
        recorder.count(token.id, "allowed", NOW + 1)
        recorder.count(token.id, "allowed", NOW + 2)
        await recorder.flush()
        await recorder.flush()
        assert await read_all(store, token.id) == {(HOUR_START, "allowed", 3)}
        assert recorder.held == 0

    async def test_stop_flushes(self, store: TokenStore) -> None:
        """Counts taken just before shutdown are not lost."""
        token = await add(store, "last words")
        recorder = UsageRecorder(store, interval=3600)
        recorder.start()
        recorder.count(token.id, "expired", NOW)
        await recorder.stop()
        assert await read_all(store, token.id) == {(HOUR_START, "expired", 1)}

    async def test_the_loop_flushes_within_its_interval(self, store: TokenStore) -> None:
        """Without any flush() call, the background loop writes the counts (≤ 10 s in
        production: every 5 s)."""
        token = await add(store, "looped")
        recorder = UsageRecorder(store, interval=0.05)
        recorder.start()
        try:
            recorder.count(token.id, "allowed", NOW)

            async def written() -> bool:
                return bool(await read_all(store, token.id))

            await within(5.0, written, "the loop's flush")
        finally:
            await recorder.stop()

    async def test_repeated_requests_hold_no_more_memory(self, store: TokenStore) -> None:
        """After a token's first request in an hour, further requests grow nothing: memory
        held is the same after 10 or 20,000 of them."""
        recorder = UsageRecorder(store)
        recorder.count("tok_00000000000000aa", "allowed", NOW)
        tracemalloc.start()
        try:
            for _ in range(10):
                recorder.count("tok_00000000000000aa", "allowed", NOW)
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(20_000):
                recorder.count("tok_00000000000000aa", "allowed", NOW)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert after - before < 1_000  # an int object or two, not one per request
        assert recorder.held == 1


class TestStoreRefusals:
    async def test_refused_counts_are_kept_and_retried(
        self, locked_store: SQLiteStore, tmp_path: Path
    ) -> None:
        """While the store cannot write, counts stay in memory (summed with new ones);
        once it can, the next flush writes them all, once."""
        token = await add(locked_store, "patient")
        recorder = UsageRecorder(locked_store)
        recorder.count(token.id, "allowed", NOW)
        locker = await asyncio.to_thread(hold_write_lock, tmp_path / "locked.db")
        try:
            await recorder.flush()
            recorder.count(token.id, "allowed", NOW + 1)
            recorder.count(token.id, "ip_not_allowed", NOW + HOUR)
            await recorder.flush()
            assert recorder.held == 2  # (token, hour) entries
        finally:
            await asyncio.to_thread(locker.close)
        assert await read_all(locked_store, token.id) == set()
        await recorder.flush()
        assert recorder.held == 0
        assert await read_all(locked_store, token.id) == {
            (HOUR_START, "allowed", 2),
            (HOUR_START + HOUR, "ip_not_allowed", 1),
        }

    async def test_held_counts_are_bounded_oldest_hours_dropped_and_said_once(
        self, locked_store: SQLiteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A long outage: past the bound the oldest hours go (one warning says how many
        requests and up to which hour), the newest are written when the store is back."""
        tokens = [await add(locked_store, f"token {number}") for number in range(3)]
        recorder = UsageRecorder(locked_store, max_held=4)
        caplog.set_level(logging.INFO, logger="authsvc.usage")
        locker = await asyncio.to_thread(hold_write_lock, tmp_path / "locked.db")
        try:
            for hour in range(4):  # 4 hours × 3 tokens = 12 entries, 4 may be held
                for token in tokens:
                    recorder.count(token.id, "allowed", NOW + hour * HOUR)
                await recorder.flush()
                assert recorder.held <= max(4, len(tokens))
        finally:
            await asyncio.to_thread(locker.close)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len([w for w in warnings if "could not record hourly" in w]) == 1
        dropped = [w for w in warnings if "dropped" in w]
        assert len(dropped) == 1, warnings
        assert "up to the one starting 2025-06-15T15:00Z" in dropped[0]  # the first drop
        await recorder.flush()
        rows = await locked_store.usage(tokens[0].id, 0, 2**40)
        assert [row.hour for row in rows] == [HOUR_START + 3 * HOUR]  # only the newest hour
        assert "recorded again" in caplog.records[-1].getMessage()

    async def test_a_deleted_tokens_counts_are_dropped(self, store: TokenStore) -> None:
        """Counts of a token deleted before the flush are not written (and do not stop the
        others of the batch)."""
        kept = await add(store, "kept")
        gone = await add(store, "gone")
        recorder = UsageRecorder(store)
        recorder.count(kept.id, "allowed", NOW)
        recorder.count(gone.id, "allowed", NOW)
        await store.delete(gone.id)
        await recorder.flush()
        assert recorder.held == 0
        assert await read_all(store, kept.id) == {(HOUR_START, "allowed", 1)}
        assert await read_all(store, gone.id) == set()


class TestPruning:
    async def test_prunes_counts_older_than_90_days_at_start(self, store: TokenStore) -> None:
        """The loop prunes once when it starts: hours before now − 90 days go, the rest stay."""
        token = await add(store, "old")
        oldest_kept = hour_of(NOW) - KEEP_SECONDS
        await store.add_usage(
            [
                HourlyCount(token.id, oldest_kept - HOUR, "allowed", 1),
                HourlyCount(token.id, oldest_kept, "allowed", 2),
                HourlyCount(token.id, HOUR_START, "allowed", 3),
            ]
        )
        recorder = UsageRecorder(store, interval=3600, clock=FrozenClock(NOW))
        recorder.start()
        try:

            async def pruned() -> bool:
                return len(await read_all(store, token.id)) == 2

            await within(5.0, pruned, "the prune at start")
        finally:
            await recorder.stop()
        assert await read_all(store, token.id) == {
            (oldest_kept, "allowed", 2),
            (HOUR_START, "allowed", 3),
        }


class TestUsageHours:
    def test_shape(self) -> None:
        """One object per hour with requests, by hour; denied holds only reasons counted."""
        rows = [
            HourlyCount("tok_00000000000000aa", HOUR_START + HOUR, "allowed", 2),
            HourlyCount("tok_00000000000000aa", HOUR_START, "rate_limited", 4),
            HourlyCount("tok_00000000000000aa", HOUR_START, "expired", 1),
        ]
        assert usage_hours(rows) == [
            {
                "hour": "2025-06-15T15:00:00Z",
                "allowed": 0,
                "denied": {"expired": 1, "rate_limited": 4},
            },
            {"hour": "2025-06-15T16:00:00Z", "allowed": 2, "denied": {}},
        ]


class SlowStore:
    """A store whose ``add_usage`` takes a while: stop() may come in the middle of it."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.writing = asyncio.Event()

    async def add_usage(self, counts: list[HourlyCount]) -> None:
        self.writing.set()
        await asyncio.sleep(0.2)
        await self.store.add_usage(counts)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


async def test_stop_during_a_flush_loses_nothing(store: TokenStore) -> None:
    """The loop's flush has taken its batch out of memory and is writing it when the
    service stops: the write is let finish, not cancelled, so the counts are stored."""
    token = await add(store, "mid-flush")
    slow = SlowStore(store)
    recorder = UsageRecorder(cast(TokenStore, slow), interval=0.01)
    recorder.start()
    for _ in range(10):
        recorder.count(token.id, "allowed", NOW)
    await asyncio.wait_for(slow.writing.wait(), 5)
    await recorder.stop()
    assert await read_all(store, token.id) == {(HOUR_START, "allowed", 10)}
