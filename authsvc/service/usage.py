"""Last-used bookkeeping, batched off the request path.

The hot path only overwrites one dict entry per token; a background task hands the
batch to the store every few seconds. The dict is keyed by token id, so its size is
bounded by the number of tokens in use.
"""

from __future__ import annotations

import asyncio
import logging

from authsvc.rules.ipfilter import IPAddress
from authsvc.service.background import Background
from authsvc.store import StoreError, TokenStore, Usage

log = logging.getLogger("authsvc.usage")


_YIELD_EVERY = 500


class UsageRecorder:
    """Collects (token id → last use) and flushes it to the store."""

    def __init__(self, store: TokenStore, interval: float = 5.0) -> None:
        self._store = store
        self._interval = interval
        # token id → (time, address): a plain tuple, the cheapest thing to store per request
        self._pending: dict[str, tuple[float, IPAddress]] = {}
        self._loop = Background("authsvc-usage-flush", self._run)

    def note(self, token_id: str, used_at: float, ip: IPAddress) -> None:
        self._pending[token_id] = (used_at, ip)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        usages = []
        for count, (token_id, (used_at, ip)) in enumerate(batch.items(), 1):
            usages.append(Usage(token_id, used_at, str(ip)))
            if count % _YIELD_EVERY == 0:
                # Tens of thousands of tokens used since the last flush: let requests in
                # between, rather than hold the event loop for milliseconds.
                await asyncio.sleep(0)
        try:
            await self._store.record_usage(usages)
        except StoreError as error:
            # Last-used data is advisory: keep the newest values for the next try.
            for token_id, usage in batch.items():
                self._pending.setdefault(token_id, usage)
            log.warning("could not record token usage: %s", error)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()
