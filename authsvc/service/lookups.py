"""Store lookups on a cache miss, with a bounded cost for tokens that do not exist.

The checksum of a secret is public, so anyone can send distinct well-formed tokens; each
one not in the cache would cost a store lookup, and a flood of them would crowd out the
lookups of real tokens (a small PostgreSQL pool, a 2 s deadline: 503s, which nginx turns
into 500s). Two things bound that cost:

- :class:`KnownDigests`: the set of tokens that exist, kept in memory as the first 8 bytes
  of each digest (8 MB for a million tokens), loaded at start and kept current by the change
  feed (every insert and rotation is logged with its digest). A lookup for a known digest is
  never refused: real tokens keep working during a flood, cached or not.
- :class:`LookupBudget`: a token bucket of ``cache.unknown_lookups_per_second`` lookups for
  digests that are not known, refunded when the token turns out to exist (one created
  elsewhere whose change has not arrived yet). Once it is spent, an unknown digest is
  answered as unknown without asking the store.

An attacker cannot aim at the known set: the digest is an HMAC under the instance's key.
A previous secret still kept after a rotation with a grace counts as existing: the store
lists its digest with the others, and the rotation logs it as a change.
"""

from __future__ import annotations

import math
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable
from enum import Enum
from typing import Literal

from authsvc.rules.tokens import TokenRecord, secret_ended
from authsvc.service.metrics import Metrics
from authsvc.service.token_service import TokenService

PREFIX_BYTES = 8


class _Spent(Enum):
    SPENT = "the budget for unknown digests is spent"


class BudgetSpent(Exception):  # an answer, not a failure
    """The budget for unknown digests is spent: the caller should try again after
    ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many unknown secrets: try again in {retry_after} s")
        self.retry_after = retry_after


def _prefix(digest: bytes) -> int:
    return int.from_bytes(digest[:PREFIX_BYTES].ljust(PREFIX_BYTES, b"\0"), "big")


class KnownDigests:
    """Which digests the store holds, by their first 8 bytes.

    A sorted array from the store plus two small sets of later news: what was added (and
    is not in the array), and what of the array the store said is gone. So the count is
    exact: a change feed that re-adds what the array already holds counts it once, and it
    is what ``authsvc_known_tokens`` shows. A digest the store no longer has may linger in
    the array until its first lookup finds nothing (then it is forgotten), so a known
    deleted secret costs at most one lookup without budget.
    """

    def __init__(self, prefixes: bytes | None = None) -> None:
        self._sorted = array("Q")
        self._added: set[int] = set()
        self._gone: set[int] = set()
        #: False until the first load: nothing can be called unknown before it.
        self.loaded = False
        if prefixes is not None:
            self.replace(prefixes)

    def replace(self, prefixes: bytes) -> None:
        """Start again from the store's :meth:`~authsvc.store.TokenStore.digest_prefixes`."""
        fresh = array("Q")
        fresh.frombytes(prefixes)
        if sys.byteorder == "little":
            fresh.byteswap()  # the store's bytes are big-endian: keep their (sorted) order
        self._sorted, self._added, self._gone = fresh, set(), set()
        self.loaded = True

    def __len__(self) -> int:
        return len(self._sorted) + len(self._added) - len(self._gone)

    def __contains__(self, digest: bytes) -> bool:
        key = _prefix(digest)
        if key in self._added:
            return True
        return key not in self._gone and self._in_array(key)

    def add(self, digest: bytes) -> None:
        key = _prefix(digest)
        if key in self._gone:
            self._gone.discard(key)  # back in the array's count
        elif not self._in_array(key):
            self._added.add(key)

    def forget(self, digest: bytes) -> None:
        key = _prefix(digest)
        if key in self._added:
            self._added.discard(key)
        elif self._in_array(key):
            self._gone.add(key)

    def _in_array(self, key: int) -> bool:
        index = bisect_left(self._sorted, key)
        return index < len(self._sorted) and self._sorted[index] == key


class LookupBudget:
    """A token bucket: ``per_second`` lookups a second, at most one second's worth saved."""

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rate = float(per_second)
        self._level = float(per_second)
        self._at = clock()

    def resize(self, per_second: int) -> None:
        """Take a reloaded ``cache.unknown_lookups_per_second``."""
        self._refill()
        self._rate = float(per_second)
        self._level = min(self._level, self._rate)

    def take(self) -> bool:
        """Spend one lookup if the budget allows it."""
        self._refill()
        if self._level < 1.0:
            return False
        self._level -= 1.0
        return True

    def refund(self) -> None:
        """Give back a lookup that found a token."""
        self._level = min(self._rate, self._level + 1.0)

    def retry_after(self) -> int:
        """Whole seconds (at least 1) until the budget allows a lookup again."""
        self._refill()
        missing = 1.0 - self._level
        return max(1, math.ceil(missing / self._rate)) if self._rate > 0 else 1

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self._rate, self._level + (now - self._at) * self._rate)
        self._at = now


class TokenLookups:
    """The record for a digest that missed the cache, at a bounded cost when unknown."""

    def __init__(
        self,
        service: TokenService,
        known: KnownDigests,
        budget: LookupBudget,
        metrics: Metrics,
    ) -> None:
        self.known = known
        self.budget = budget
        self._service = service
        self._metrics = metrics
        # bound once: labels() takes a lock and a dict lookup on every call
        self._found = metrics.store_lookups.labels(result="found")
        self._not_found = metrics.store_lookups.labels(result="not_found")

    async def find(self, token_digest: bytes) -> TokenRecord | None:
        """The record, or None when no such token exists or the budget for unknown digests
        is spent. Raises StoreUnavailable like the store."""
        found = await self._find(token_digest)
        return None if found is _Spent.SPENT else found

    async def resolve(self, token_digest: bytes, now: float) -> TokenRecord | None:
        """The record from the cache, else :meth:`find`; None also for a previous secret
        whose grace is over (for callers off the hot path: the admin API)."""
        record = self._service.cached(token_digest) or await self.find(token_digest)
        return None if record is None or secret_ended(record, now) else record

    async def find_within_budget(self, token_digest: bytes) -> TokenRecord | None:
        """The record, or None when no such token exists; :class:`BudgetSpent` instead of
        a lookup when the digest is not known to exist and the budget is spent."""
        found = await self._find(token_digest)
        if found is _Spent.SPENT:
            raise BudgetSpent(self.budget.retry_after())
        return found

    async def _find(self, token_digest: bytes) -> TokenRecord | Literal[_Spent.SPENT] | None:
        # Until the set is loaded (the first second or so after start) every token counts
        # as known: refusing real tokens would be worse than an unbounded start-up.
        known = not self.known.loaded or token_digest in self.known
        if not known and not self.budget.take():
            self._metrics.unknown_lookups_skipped.inc()
            return _Spent.SPENT
        record = await self._service.lookup(token_digest)
        if record is None:
            self._not_found.inc()
            if known:
                self.known.forget(token_digest)  # once: its next lookup spends budget
            return None
        self._found.inc()
        if not known:
            self.budget.refund()
            self.known.add(token_digest)
        return record
