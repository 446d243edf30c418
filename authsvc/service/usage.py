"""Usage bookkeeping, batched off the request path: each token's last use, and its
requests per hour by outcome (SPEC §12, Usage).

The hot path only overwrites one dict entry (last use) or adds one to a counter (per
hour); a background task hands both batches to the store every few seconds, prunes
counts older than :data:`KEEP_SECONDS` about hourly, and ``stop()`` flushes what is left.

Memory stays bounded. Last use is keyed by token id, so its size is bounded by the tokens
in use. Hourly counts the store refuses are kept and retried with the next batch; while
the store stays down they pile up by hour, so past :data:`MAX_HELD` (token, hour) entries
the oldest hours are dropped (logged once per outage): their counts are lost, newer ones
are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from authsvc.rules.durations import rfc3339
from authsvc.rules.ipfilter import IPAddress
from authsvc.service.background import Background
from authsvc.store import (
    HOUR,
    USAGE_ALLOWED,
    USAGE_DENIALS,
    USAGE_OUTCOMES,
    HourlyCount,
    StoreError,
    TokenStore,
    Usage,
)

log = logging.getLogger("authsvc.usage")

#: Hourly counts are kept this long (SPEC §12), then pruned.
KEEP_SECONDS = 90 * 86400
#: How often the prune runs (and once when the loop starts).
PRUNE_EVERY = HOUR
#: The most (token, hour) entries held in memory while the store refuses them: about 10 MB
#: of counters, a day of 4,000 busy tokens.
MAX_HELD = 100_000

#: The outcome of a request that was let through; every other outcome is a denial reason.

_YIELD_EVERY = 500
#: outcome → its slot in a token's counters (one list per token and hour)
_SLOTS = {outcome: slot for slot, outcome in enumerate(USAGE_OUTCOMES)}

#: hour (epoch seconds) → token id → a counter per outcome, in USAGE_OUTCOMES order
HourCounts = dict[int, dict[str, list[int]]]


def hour_of(moment: float) -> int:
    """The start of the hour (epoch seconds, UTC) that ``moment`` falls in."""
    return int(moment // HOUR) * HOUR


class UsageRecorder:
    """Collects last use and hourly counts per token and flushes them to the store."""

    def __init__(
        self,
        store: TokenStore,
        interval: float = 5.0,
        *,
        clock: Callable[[], float] = time.time,
        max_held: int = MAX_HELD,
    ) -> None:
        self._store = store
        self._interval = interval
        self._clock = clock
        self._max_held = max_held
        # token id → (time, address): a plain tuple, the cheapest thing to store per request
        self._pending: dict[str, tuple[float, IPAddress]] = {}
        self._hours: HourCounts = {}
        # The hour count() last saw, [start, end), and its entry of _hours: most requests
        # fall in the same hour as the one before, so they skip computing and finding it.
        self._hour_start = self._hour_end = -1.0  # empty: the next count() looks it up
        self._current: dict[str, list[int]] = {}
        self._failing = False  # the store refused counts; logged once until it takes them
        self._dropped = False  # counts were dropped in this outage; logged once
        self._next_prune = 0.0
        # stop() asks the loop to end rather than cancelling it: a flush takes its batch
        # out of memory before the store write, so a write cut off by a cancellation would
        # lose the batch (or, SQLite finishing it on its thread anyway, leave it unknown).
        self._stopping = asyncio.Event()
        self._loop = Background("authsvc-usage-flush", self._run)

    def note(self, token_id: str, used_at: float, ip: IPAddress) -> None:
        self._pending[token_id] = (used_at, ip)

    def count(self, token_id: str, outcome: str, now: float) -> None:
        """One request of an identified token at ``now`` had ``outcome`` (one of
        USAGE_OUTCOMES; anything else is a bug and raises KeyError). Allocates only for the
        first request of a token in an hour."""
        if not self._hour_start <= now < self._hour_end:
            hour = hour_of(now)
            self._current = self._hours.setdefault(hour, {})
            self._hour_start, self._hour_end = hour, hour + HOUR
        counters = self._current.get(token_id)
        if counters is None:
            counters = self._current[token_id] = [0] * len(_SLOTS)
        counters[_SLOTS[outcome]] += 1

    @property
    def held(self) -> int:
        """How many (token, hour) entries wait for the store."""
        return sum(len(tokens) for tokens in self._hours.values())

    async def flush(self) -> None:
        await self._flush_last_use()
        await self._flush_counts()

    async def _flush_last_use(self) -> None:
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

    async def _flush_counts(self) -> None:
        if not self._hours:
            return
        batch, self._hours = self._hours, {}
        self._forget_hour()  # the next count() finds its hour in the new dict
        rows = []
        for number, row in enumerate(_rows(batch), 1):
            rows.append(row)
            if number % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # as above: let requests in between
        try:
            await self._store.add_usage(rows)
        except StoreError as error:
            self._keep(batch)
            if not self._failing:
                log.warning(
                    "could not record hourly usage counts (%s); keeping them and retrying "
                    "every %g s (not logged again until it works)",
                    error,
                    self._interval,
                )
                self._failing = True
            return
        if self._failing:
            log.info("hourly usage counts are recorded again")
        self._failing = self._dropped = False

    def _keep(self, batch: HourCounts) -> None:
        """Put refused counts back, summed with those counted meanwhile, within the bound."""
        for hour, tokens in batch.items():
            into = self._hours.setdefault(hour, {})
            for token_id, counters in tokens.items():
                mine = into.get(token_id)
                if mine is None:
                    into[token_id] = counters
                else:
                    for slot, number in enumerate(counters):
                        mine[slot] += number
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest hours until at most ``max_held`` entries are held; the newest
        hour is always kept whole (it is bounded by the number of tokens)."""
        held = self.held
        if held <= self._max_held:
            return
        dropped_entries = dropped_requests = last_dropped = 0
        newest = max(self._hours)
        for hour in sorted(self._hours):
            if held <= self._max_held or hour == newest:
                break
            tokens = self._hours.pop(hour)
            held -= len(tokens)
            dropped_entries += len(tokens)
            dropped_requests += sum(sum(counters) for counters in tokens.values())
            last_dropped = hour
        if int(self._hour_start) not in self._hours:
            self._forget_hour()
        if dropped_entries and not self._dropped:
            log.warning(
                "the store has refused usage counts for a while: dropped %d requests "
                "(%d token-hours) of the oldest hours, up to the one starting %s, to hold "
                "at most %d token-hours in memory; further drops in this outage are not "
                "logged",
                dropped_requests,
                dropped_entries,
                time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(last_dropped)),
                self._max_held,
            )
            self._dropped = True

    def _forget_hour(self) -> None:
        self._hour_start = self._hour_end = -1.0

    async def prune(self) -> None:
        """Delete counts older than KEEP_SECONDS; a store error is logged and the prune
        waits for its next turn (it is housekeeping: nothing depends on it being on time)."""
        before = hour_of(self._clock()) - KEEP_SECONDS
        try:
            removed = await self._store.prune_usage(before)
        except StoreError as error:
            log.warning("could not prune old usage counts: %s", error)
            return
        if removed:
            log.info("pruned %d usage counts older than %d days", removed, KEEP_SECONDS // 86400)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Let a flush under way finish, end the loop, and flush what is left."""
        self._stopping.set()
        await self._loop.join()
        await self.flush()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY
                await self.prune()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if not self._stopping.is_set():
                await self.flush()


def _rows(batch: HourCounts) -> Iterator[HourlyCount]:
    """The batch as the store takes it: one row per token, hour and outcome counted."""
    for hour, tokens in batch.items():
        for token_id, counters in tokens.items():
            for slot, number in enumerate(counters):
                if number:
                    yield HourlyCount(token_id, hour, USAGE_OUTCOMES[slot], number)


def usage_hours(counts: Iterable[HourlyCount]) -> list[dict[str, Any]]:
    """The ``hours`` of ``GET /admin/v1/tokens/{id}/usage`` (and ``token usage --json``):
    one object per hour that had requests, ordered by hour, with ``allowed`` and, in
    ``denied``, only the reasons that were counted (in USAGE_OUTCOMES order)."""
    by_hour: dict[int, list[int]] = {}
    for count in counts:
        counters = by_hour.setdefault(count.hour, [0] * len(_SLOTS))
        counters[_SLOTS[count.outcome]] += count.count
    return [
        {
            "hour": rfc3339(hour),
            "allowed": counters[_SLOTS[USAGE_ALLOWED]],
            "denied": {
                outcome: counters[_SLOTS[outcome]]
                for outcome in USAGE_DENIALS
                if counters[_SLOTS[outcome]]
            },
        }
        for hour, counters in sorted(by_hour.items())
        if any(counters)
    ]
