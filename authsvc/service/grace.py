"""The end of a rotation's grace by the first use of the new secret.

After a rotation with a grace both secrets work, until the grace ends or until the new
secret is first used successfully on ``/auth`` (the client has switched), whichever comes
first. That first use must end the previous secret at once everywhere, without making the
request wait for a store write:

- on this instance at once: the previous secret's cached record is dropped, and the grace
  is remembered as ended, so a store read that still sees the previous secret (the write
  has not committed yet) is not believed (:meth:`GraceEnder.ended`);
- in the store right away: the write is started on the spot, off the request path (and
  retried while the store is away and the grace lasts); its change-log entries, one per
  digest, make every other instance drop both records within the propagation bound;
- in the audit trail: ``token.grace_ended``, once, by the instance whose write ended it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

from authsvc.rules.tokens import TokenRecord
from authsvc.service.audit import AuditLog
from authsvc.service.cache import RecordCache
from authsvc.store import StoreError, StoreUnavailable, TokenStore

log = logging.getLogger("authsvc.grace")

#: Graces remembered as ended here; the store has the last word long before this many more
#: graces end, so forgetting the oldest is safe.
MAX_REMEMBERED = 10_000
FIRST_RETRY = 0.05
MAX_RETRY = 2.0
#: How long shutting down waits for writes still retrying against an unreachable store.
CLOSE_WAIT = 2.0


class GraceEnder:
    """Ends graces on the first use of the new secret; remembers which ones it ended."""

    def __init__(
        self,
        store: TokenStore,
        cache: RecordCache,
        audit: AuditLog,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._cache = cache
        self._audit = audit
        self._clock = clock
        # token id → the end of the grace ended here (a grace is the rotation that set it)
        self._ended: OrderedDict[str, float | None] = OrderedDict()
        self._writes: set[asyncio.Task[None]] = set()

    def ended(self, record: TokenRecord) -> bool:
        """Whether ``record`` (found by a previous secret) belongs to a grace ended here."""
        return record.id in self._ended and self._ended[record.id] == record.grace_ends_at

    def first_use(self, record: TokenRecord, digest: bytes, client: str | None) -> None:
        """The new secret (``digest``) of ``record`` was just used successfully during its
        grace: end the previous secret here now, and in the store right away."""
        if self.ended(record):
            return  # this instance ended it already; the store write is under way or done
        self._ended[record.id] = record.grace_ends_at
        if len(self._ended) > MAX_REMEMBERED:
            self._ended.popitem(last=False)
        self._cache.invalidate_previous(record.id)
        task = asyncio.get_running_loop().create_task(self._write(record, digest, client))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def rotated(self, token_id: str) -> None:
        """A rotation made here starts a new grace (whose end may even be the same
        instant under a frozen test clock): forget the one ended before."""
        self._ended.pop(token_id, None)

    async def close(self) -> None:
        """Let the writes under way finish; give up on those still retrying after a
        moment (the grace then ends by time elsewhere)."""
        if not self._writes:
            return
        _, pending = await asyncio.wait(set(self._writes), timeout=CLOSE_WAIT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _write(self, record: TokenRecord, digest: bytes, client: str | None) -> None:
        delay = FIRST_RETRY
        while True:
            try:
                ended = await self._store.end_grace(record.id, digest)
                break
            except StoreUnavailable as error:
                # The previous secret is already refused here; elsewhere it lasts at most
                # until its grace ends, and then there is nothing left to write.
                if record.grace_ends_at is None or self._clock() >= record.grace_ends_at:
                    log.warning("could not end the grace of %s early: %s", record.id, error)
                    return
                log.warning("ending the grace of %s: %s; retrying", record.id, error)
            except StoreError as error:  # not a passing outage: retrying cannot help
                log.error("could not end the grace of %s early: %s", record.id, error)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY)
        if ended is None:
            return  # another instance ended it first, or the token changed meanwhile
        self._audit.write(
            "token.grace_ended",
            actor=record.id,
            target=record.id,
            client=client,
            details={"ended_by": "first use of the new secret"},
        )
