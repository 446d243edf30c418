"""An in-memory TTL cache of token records keyed by secret digest.

cachetools' ``@cached`` cannot wrap coroutines (it would cache the coroutine object), so
this is a small class around a ``TTLCache`` with an injectable timer. Only records are
cached, never decisions, and never the absence of a record: a token created by another
process must work at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache

from authsvc.tokens import TokenRecord


class RecordCache:
    """digest → TokenRecord, each entry served for at most ``ttl`` seconds."""

    def __init__(
        self, max_entries: int, ttl: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._timer = timer
        self._entries: TTLCache[bytes, TokenRecord] = TTLCache(max_entries, ttl, timer)
        self._digest_by_id: dict[str, bytes] = {}
        #: Bumped by every invalidation: a store read that straddles one must not be
        #: cached, or it could put back a record that was just revoked.
        self.generation = 0

    @property
    def ttl(self) -> float:
        return float(self._entries.ttl)

    @property
    def max_entries(self) -> int:
        return int(self._entries.maxsize)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> TokenRecord | None:
        """The cached record, or None on a miss or an expired entry (never awaits)."""
        return self._entries.get(digest)

    def put(self, digest: bytes, record: TokenRecord) -> None:
        stale = self._digest_by_id.get(record.id)
        if stale is not None and stale != digest:
            self._entries.pop(stale, None)
        self._entries[digest] = record
        self._digest_by_id[record.id] = digest
        if len(self._digest_by_id) > 2 * self._entries.maxsize:
            self._prune_index()

    def invalidate(self, digest: bytes | None = None, token_id: str | None = None) -> None:
        """Forget a token by digest and/or id (after delete, rotate or update)."""
        self.generation += 1
        if token_id is not None:
            known = self._digest_by_id.pop(token_id, None)
            if known is not None:
                self._entries.pop(known, None)
        if digest is not None:
            record = self._entries.pop(digest, None)
            if record is not None:
                self._digest_by_id.pop(record.id, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._digest_by_id.clear()

    def resize(self, max_entries: int, ttl: float) -> None:
        """Apply new limits (a configuration reload): start empty, which is always safe."""
        if max_entries != self.max_entries or ttl != self.ttl:
            self.generation += 1
            self._entries = TTLCache(max_entries, ttl, self._timer)
            self._digest_by_id.clear()

    def _prune_index(self) -> None:
        # Evicted entries leave ids behind; drop those whose digest is gone.
        live = self._entries
        self._digest_by_id = {tid: d for tid, d in self._digest_by_id.items() if d in live}
