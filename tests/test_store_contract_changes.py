"""TokenStore contract, changes between store objects: the change log (latest_change,
changes_since, ChangesPruned), listen/listening, and two store objects writing one database at
once (as two processes would). ``new_store`` (tests/stores.py) runs each test on each
STORE_KINDS."""

from __future__ import annotations

import asyncio
import time

import pytest

from authsvc.store import ChangesPruned, ListQuery, NameTaken, TokenStore, Usage
from tests.factories import new_record
from tests.stores import Backend, Heard, StoreFactory, add, digest_for, names
from tests.waiting import within

HANG = 10.0  # longer than this is a hang, not a slow push


async def opened(new_store: StoreFactory, count: int = 2) -> list[TokenStore]:
    """``count`` store objects on one database, opened at once."""
    stores = [new_store() for _ in range(count)]
    await asyncio.gather(*(s.open() for s in stores))
    return stores


class TestChangeLog:
    """The change sequence other processes poll to invalidate their caches."""

    async def test_changes_are_logged_with_digests(self, new_store: StoreFactory) -> None:
        """insert logs the new digest (other instances learn the token exists); update,
        rotate and delete log the digest a cache may hold, rotate the new one as well."""
        writer, poller = await opened(new_store)
        start = await poller.latest_change()
        one, two = await add(writer, "one"), await add(writer, "two")
        created, changes = await poller.changes_since(start)
        assert [digest for digest, _ in changes] == [digest_for("one"), digest_for("two")]
        await writer.update_permissions(one.id, frozenset({"New"}))
        await writer.replace_digest(two.id, digest_for("two rotated"))
        await writer.delete(two.id)
        await writer.delete(two.id)  # no such token any more: nothing to log
        high, changes = await poller.changes_since(created)
        assert [digest for digest, _ in changes] == [
            digest_for("one"),
            digest_for("two"),
            digest_for("two rotated"),
        ]
        assert all(abs(changed_at - time.time()) < 60 for _, changed_at in changes)
        # one entry each: two inserts, the update, the rotation's two digests, the delete
        assert high == await poller.latest_change() == start + 6
        assert await poller.changes_since(high) == (high, [])
        await asyncio.gather(writer.close(), poller.close())

    async def test_pruned_changes_force_a_full_drop(self, new_store: StoreFactory) -> None:
        """A poller behind the retention window is told so; an up-to-date one carries on."""
        now = [1000.0]
        store = new_store(change_retention=60, clock=lambda: now[0])
        await store.open()
        token = await add(store, "churn")
        await store.update_permissions(token.id, frozenset({"A"}))
        stale = 0
        current = await store.latest_change()
        now[0] += 61
        await store.update_permissions(token.id, frozenset({"B"}))  # prunes the first entry
        with pytest.raises(ChangesPruned, match="no longer available"):
            await store.changes_since(stale)
        assert await store.changes_since(current) == (current + 1, [(digest_for("churn"), now[0])])
        with pytest.raises(ChangesPruned):
            await store.changes_since(current + 5)  # ahead of the log: the data was replaced
        await store.close()


class TestListen:
    """listen pushes committed changes where the backend can; listening says whether."""

    async def test_not_listening_unless_asked(self, new_store: StoreFactory) -> None:
        """A store is not listening before listen is called, nor after close."""
        store = new_store()
        assert not store.listening
        await store.open()
        assert not store.listening
        await store.close()
        assert not store.listening

    async def test_changes_elsewhere_are_pushed_or_logged(
        self, new_store: StoreFactory, backend: Backend
    ) -> None:
        """Changes made through another store are pushed in order where listening, and logged."""
        # PostgreSQL pushes (LISTEN/NOTIFY); SQLite cannot, so its listener hears nothing
        listener, other = await opened(new_store)
        start = await listener.latest_change()
        heard = Heard()
        await listener.listen(heard)
        assert listener.listening is backend.pushes
        token = await add(other, "watched")
        await other.record_usage([Usage(token.id, 5.0, "::1")])  # neither of these is a change
        await other.update_permissions(token.id, frozenset({"More"}))
        await other.replace_digest(token.id, digest_for("rotated"))
        await other.delete(token.id)
        watched, rotated = digest_for("watched"), digest_for("rotated")
        # insert, update, rotation (old and new digest), delete
        expected = [watched, watched, watched, rotated, rotated]
        if backend.pushes:
            await within(HANG, lambda: len(heard.calls) >= 5, "five notifications")
        else:
            await asyncio.sleep(0.2)  # time enough for a push that must not come
        assert heard.calls == (expected if backend.pushes else [])
        assert all(t is not None and abs(t - time.time()) < 60 for t in heard.times)
        _, logged = await listener.changes_since(start)
        assert [digest for digest, _ in logged] == [watched, rotated]
        await asyncio.gather(listener.close(), other.close())

    async def test_close_stops_listening(self, store: TokenStore) -> None:
        """After close, a store that listened is listening no more."""
        await store.listen(Heard())
        await store.close()
        assert not store.listening


class TestConcurrency:
    """Two store objects (as two processes would) writing the same data."""

    async def test_concurrent_inserts_all_succeed(self, new_store: StoreFactory) -> None:
        """2 x 50 simultaneous inserts from two stores all land."""
        first, second = await opened(new_store)
        await asyncio.gather(
            *(add(first, f"first-{i}") for i in range(50)),
            *(add(second, f"second-{i}") for i in range(50)),
        )
        total, _ = await first.list_tokens(ListQuery())
        assert total == 100
        await asyncio.gather(first.close(), second.close())

    async def test_concurrent_rotations_lose_no_update(self, new_store: StoreFactory) -> None:
        """Interleaved rotations from two stores each see a distinct previous digest."""
        first, second = await opened(new_store)
        token = await add(first, "hot")
        new_digests = [digest_for(f"rotation {i}") for i in range(40)]
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).replace_digest(token.id, d)
                for i, d in enumerate(new_digests)
            )
        )
        olds = [result[0] for result in results if result is not None]
        every = [digest_for("hot"), *new_digests]
        live = [d for d in every if await first.get_by_digest(d) is not None]
        assert len(set(olds)) == 40
        assert len(live) == 1  # exactly one digest finds the token: the last rotation's
        assert {*olds, *live} == set(every)
        await asyncio.gather(first.close(), second.close())

    async def test_concurrent_inserts_of_one_name(self, new_store: StoreFactory) -> None:
        """Of 10 simultaneous inserts of one name from two stores, exactly one wins."""
        first, second = await opened(new_store)
        tries = [new_record("contested") for _ in range(10)]
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).insert(r, digest_for(f"try {i}"))
                for i, r in enumerate(tries)
            ),
            return_exceptions=True,
        )
        assert sum(result is None for result in results) == 1
        assert all(isinstance(r, NameTaken) for r in results if r is not None)
        assert names(await first.all_tokens()) == ["contested"]
        await asyncio.gather(first.close(), second.close())
