"""An in-memory TTL cache of token records keyed by secret digest.

Only records are cached, never decisions, and never the absence of a record: a token
created by another process must work at once. Every entry lives ``ttl`` seconds from
when it was stored, so insertion order is expiry order: the oldest entry is always the
next to expire and the one to evict when the cache is full. That makes a plain ordered
dict enough — no per-read bookkeeping — which measured ~9x faster per hit than
cachetools' TTLCache (0.10 vs 0.91 µs) and takes less memory per entry, on the path
every request takes.

During a rotation's grace a token may be cached under both of its digests: the record
found by the current secret and the one found by the previous secret (``via_previous``).
Forgetting a token by id forgets both.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from authsvc.rules.tokens import TokenRecord


class RecordCache:
    """digest → TokenRecord, each entry served for at most ``ttl`` seconds."""

    def __init__(
        self, max_entries: int, ttl: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._timer = timer
        self._ttl = ttl
        self._max = max_entries
        # digest → (record, expiry time); oldest first
        self._entries: OrderedDict[bytes, tuple[TokenRecord, float]] = OrderedDict()
        # token id → digest of its cached record: one map for records found by the current
        # secret, one for those found by a previous secret
        self._digest_by_id: dict[str, bytes] = {}
        self._previous_by_id: dict[str, bytes] = {}
        #: Bumped by every invalidation: a store read that straddles one must not be
        #: cached, or it could put back a record that was just revoked.
        self.generation = 0

    @property
    def ttl(self) -> float:
        return self._ttl

    @property
    def max_entries(self) -> int:
        return self._max

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> TokenRecord | None:
        """The cached record, or None on a miss or an expired entry (never awaits)."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[1] > self._timer():
            return entry[0]
        self._drop(digest, entry[0])
        return None

    def put(self, digest: bytes, record: TokenRecord) -> None:
        ids = self._previous_by_id if record.via_previous else self._digest_by_id
        stale = ids.get(record.id)
        if stale is not None and stale != digest:
            self._entries.pop(stale, None)
        self._entries.pop(digest, None)  # a refreshed entry moves to the young end
        now = self._timer()
        entries = self._entries
        # Drop what has expired (all at the old end), then make room if still full.
        while entries and (next(iter(entries.values()))[1] <= now or len(entries) >= self._max):
            old_digest, (old_record, _) = entries.popitem(last=False)
            self._forget_id(old_record, old_digest)
        entries[digest] = (record, now + self._ttl)
        ids[record.id] = digest

    def invalidate(self, digest: bytes | None = None, token_id: str | None = None) -> None:
        """Forget a token by digest and/or id (after delete, rotate or update); by id,
        the records of both its secrets."""
        self.generation += 1
        if token_id is not None:
            for ids in (self._digest_by_id, self._previous_by_id):
                known = ids.pop(token_id, None)
                if known is not None:
                    self._entries.pop(known, None)
        if digest is not None:
            entry = self._entries.pop(digest, None)
            if entry is not None:
                self._forget_id(entry[0], digest)

    def invalidate_previous(self, token_id: str) -> None:
        """Forget the record found by the token's previous secret (its grace has ended)."""
        self.generation += 1
        known = self._previous_by_id.pop(token_id, None)
        if known is not None:
            self._entries.pop(known, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._digest_by_id.clear()
        self._previous_by_id.clear()

    def resize(self, max_entries: int, ttl: float) -> None:
        """Apply new limits (a configuration reload): start empty, which is always safe."""
        if max_entries != self._max or ttl != self._ttl:
            self._max, self._ttl = max_entries, ttl
            self.clear()

    def _drop(self, digest: bytes, record: TokenRecord) -> None:
        self._entries.pop(digest, None)
        self._forget_id(record, digest)

    def _forget_id(self, record: TokenRecord, digest: bytes) -> None:
        ids = self._previous_by_id if record.via_previous else self._digest_by_id
        if ids.get(record.id) == digest:
            del ids[record.id]
