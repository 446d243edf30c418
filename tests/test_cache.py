"""The record cache: TTL, invalidation by digest and by id."""

from __future__ import annotations

from authsvc.service.cache import RecordCache
from tests.factories import FrozenClock, make_record


class TestRecordCache:
    def test_entry_expires_after_ttl(self) -> None:
        """A record is served until the TTL has passed, then it is a miss."""
        clock = FrozenClock(1000.0)
        cache = RecordCache(10, 5.0, clock)
        cache.put(b"d", make_record())
        clock.now += 4.9
        assert cache.get(b"d") == make_record()
        clock.now += 0.2
        assert cache.get(b"d") is None

    def test_invalidate_by_id_drops_the_digest_entry(self) -> None:
        """After update or delete, invalidating by id removes the cached record."""
        cache = RecordCache(10, 5.0)
        cache.put(b"d", make_record())
        cache.invalidate(token_id=make_record().id)
        assert cache.get(b"d") is None

    def test_invalidate_by_digest(self) -> None:
        """After a rotation, the old digest is gone."""
        cache = RecordCache(10, 5.0)
        cache.put(b"old", make_record())
        cache.invalidate(digest=b"old")
        assert cache.get(b"old") is None
        assert len(cache) == 0

    def test_a_new_digest_for_an_id_replaces_the_old_one(self) -> None:
        """One id is cached under at most one digest."""
        cache = RecordCache(10, 5.0)
        cache.put(b"old", make_record())
        cache.put(b"new", make_record())
        assert cache.get(b"old") is None
        assert cache.get(b"new") == make_record()

    def test_size_is_bounded(self) -> None:
        """max_entries bounds memory whatever the number of distinct tokens."""
        cache = RecordCache(3, 60.0)
        for index in range(10):
            cache.put(bytes([index]), make_record(id=f"tok_{index:016x}"))
        assert len(cache) == 3

    def test_resize_starts_empty_with_new_ttl(self) -> None:
        """A reload that changes cache settings drops everything (always safe)."""
        cache = RecordCache(10, 5.0)
        cache.put(b"d", make_record())
        cache.resize(10, 1.0)
        assert cache.get(b"d") is None
        assert cache.ttl == 1.0


class TestMemory:
    def test_expired_entries_are_dropped_when_storing(self) -> None:
        """Expired records do not linger: a put clears them from the old end."""
        clock = FrozenClock(1000.0)
        cache = RecordCache(100, 5.0, clock)
        for index in range(10):
            cache.put(bytes([index]), make_record(id=f"tok_{index:016x}"))
        clock.now += 6
        cache.put(b"fresh", make_record(id="tok_00000000000000ff"))
        assert len(cache) == 1

    def test_the_oldest_entry_is_evicted_first(self) -> None:
        """Full: the entry closest to expiry makes room."""
        cache = RecordCache(2, 60.0)
        cache.put(b"a", make_record(id="tok_000000000000000a"))
        cache.put(b"b", make_record(id="tok_000000000000000b"))
        cache.put(b"c", make_record(id="tok_000000000000000c"))
        assert cache.get(b"a") is None
        assert cache.get(b"b") is not None
        assert cache.get(b"c") is not None


class TestSharedPermissions:
    def test_equal_sets_are_one_object(self) -> None:
        """Records with the same permissions share one frozenset."""
        from authsvc.rules.tokens import shared_permissions  # noqa: PLC0415 - the unit under test

        first = shared_permissions(["Reader", "Writer"])
        second = shared_permissions(["Writer", "Reader"])
        assert first == frozenset({"Reader", "Writer"})
        assert first is second
