"""Changes made elsewhere (the CLI, other instances) reach this instance's cache.

PostgreSQL pushes them (LISTEN/NOTIFY; after a reconnect the whole cache is dropped,
since notifications are not durable); while the listening connection is down, its change
log is polled like SQLite's, so changes made elsewhere right after an outage are not left
waiting for the listener's next reconnect. SQLite is polled: one indexed query on the
change log every 0.25 s. Either way a revoked token stops being served within about a second;
``cache.ttl`` stays the backstop. The delay from a change's commit to its invalidation
here is observed in ``authsvc_propagation_delay_seconds`` (writer and reader clocks must
agree: same host, or NTP).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from authsvc.service.background import Background
from authsvc.service.cache import RecordCache
from authsvc.service.lookups import KnownDigests
from authsvc.service.metrics import Metrics
from authsvc.store import ChangesPruned, StoreError, TokenStore

log = logging.getLogger("authsvc.propagation")

POLL_INTERVAL = 0.25


class ChangeFeed:
    """Invalidates cache entries for changes committed by anyone sharing the store, and
    keeps the set of existing tokens current (every insert and rotation is a change too)."""

    def __init__(
        self,
        store: TokenStore,
        cache: RecordCache,
        known: KnownDigests,
        metrics: Metrics,
        clock: Callable[[], float],
        *,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._store = store
        self._cache = cache
        self._known = known
        # set when the set of known tokens must be read whole: at start, and after changes
        # may have been missed; the poll loop's next tick reads it, so start-up does not wait
        # (until the first read every token counts as known: see service.lookups)
        self._known_stale = True
        self._metrics = metrics
        self._clock = clock
        self._interval = poll_interval
        self._loop = Background("authsvc-change-poll", self._poll)
        self._seq = 0

    @property
    def position(self) -> int:
        """The change-log mark up to which changes have been applied here."""
        return self._seq

    async def start(self) -> None:
        """Begin following changes (before the cache fills)."""
        self._seq = await self._store.latest_change()
        # the set of known tokens is read after the mark and the listener (by the poll loop's
        # first tick): a token created meanwhile is in the set or in a change after the mark
        await self._store.listen(self.changed)
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def changed(self, digest: bytes | None, changed_at: float | None) -> None:
        """One change (``digest``), or None: anything may have changed, drop everything."""
        if digest is None:
            self._cache.clear()
            self._metrics.cache_drops.inc()
            self._known_stale = True
            return
        self._cache.invalidate(digest=digest)
        self._known.add(digest)  # maybe a new token; a deleted one is forgotten on its lookup
        self._metrics.known_tokens.set(len(self._known))
        if changed_at is not None:
            delay = max(0.0, self._clock() - changed_at)
            self._metrics.propagation_delay.observe(delay)

    async def _poll(self) -> None:
        store = self._store
        while True:
            await asyncio.sleep(self._interval)
            if self._known_stale:
                await self._load_known()
            try:
                if store.listening:
                    # Notifications cover this; only keep the mark current, so that if the
                    # listener drops, polling resumes exactly where the pushes stopped.
                    self._seq = await store.latest_change()
                    continue
                high, changes = await store.changes_since(self._seq)
            except ChangesPruned:
                log.warning("missed part of the change log: dropping the whole cache")
                self.changed(None, None)
                with suppress(StoreError):
                    self._seq = await store.latest_change()
                continue
            except StoreError as error:
                # The store is away; the cache TTL still bounds what is served meanwhile.
                log.debug("change poll failed: %s", error)
                continue
            for digest, changed_at in changes:
                self.changed(digest, changed_at)
            self._seq = high

    async def _load_known(self) -> None:
        """Read the whole set of existing tokens again; on failure, try at the next tick
        (meanwhile the old set, or before the first load none, stays in force)."""
        try:
            self._known.replace(await self._store.digest_prefixes())
        except Exception as error:  # whatever it is, the change feed itself must go on
            log.warning("could not read the set of existing tokens: %s", error)
            return
        self._known_stale = False
        self._metrics.known_tokens.set(len(self._known))
