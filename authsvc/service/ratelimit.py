"""Per-token rate limits (SPEC §12): the interface /auth calls, and the ``instance`` scope.

Every limit is a token bucket: capacity ``count``, refilled continuously at ``count`` per
unit, one request taking one whole token. A fresh bucket is full, so a token may spend its
whole ``count`` in a burst, then gets one more request every ``per / count`` seconds.

The hot path asks :meth:`RateLimiter.try_take`, which decides without I/O whenever it can
and answers None only when the caller must ``await take(...)`` (the cluster scope, when
this instance has no share of the token's bucket at hand):
``verdict = limiter.try_take(id, limit) or await limiter.take(id, limit)``.

:class:`InstanceRateLimiter` keeps one bucket per token in this process; ``try_take`` always
decides. A token whose limit changes keeps its bucket: the capacity and refill follow the
new limit at once, the level is capped at the new capacity (a raise grants no extra burst).
A bucket that has refilled to full holds nothing a new one would not, so a background
prune drops those: memory is bounded by the tokens used within their refill time (at most
an hour, for a ``count/h`` limit) plus :data:`PRUNE_INTERVAL`.

The ``cluster`` scope, counted through Redis, is :mod:`authsvc.service.ratelimit_cluster`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from authsvc.service.background import Background

if TYPE_CHECKING:
    from authsvc.config import RateLimitSettings
    from authsvc.rules.ratelimit import RateLimit
    from authsvc.service.metrics import Metrics

#: Seconds between two prunes of the buckets that have refilled to full.
PRUNE_INTERVAL = 10.0
#: Buckets examined between two yields to the event loop while pruning (~1 ms of work).
_PRUNE_CHUNK = 2000
#: Float slack: a level of 0.9999999999 after many refills is the whole token it stands for.
EPSILON = 1e-9


class Verdict(NamedTuple):
    """One request's outcome, with what the ``X-RateLimit-*`` headers say. A named tuple:
    immutable, and built in a fraction of what a frozen dataclass costs on the hot path."""

    allowed: bool
    limit: int  # the bucket's capacity (X-RateLimit-Limit)
    remaining: int  # whole requests left after this one (X-RateLimit-Remaining)
    reset: int  # whole seconds until the bucket is full again (X-RateLimit-Reset)
    retry_after: int  # denied: whole seconds, rounded up, >= 1, until one request fits; else 0


class RateLimiter(Protocol):
    """What /auth and the server need of a limiter, whatever its scope."""

    def try_take(self, token_id: str, limit: RateLimit) -> Verdict | None:
        """Take one request from ``token_id``'s bucket without I/O; None: ``await take``."""

    async def take(self, token_id: str, limit: RateLimit) -> Verdict:
        """Take one request from ``token_id``'s bucket, asking the shared count if needed."""

    async def peek(self, token_id: str, limit: RateLimit) -> Verdict:
        """What the next request would get, taking nothing (explain): ``allowed`` when one
        fits now, ``remaining`` the whole requests that fit now."""

    def start(self) -> None:
        """Start the background work (pruning; for the cluster: sync and Redis probe)."""

    async def stop(self) -> None:
        """Stop the background work and let go of connections."""

    @property
    def fallback(self) -> bool:
        """True while the cluster scope counts alone because Redis is unreachable."""


def verdict(limit: RateLimit, level: float, allowed: bool) -> Verdict:
    """The verdict for a bucket of ``limit`` holding ``level`` tokens (after the take, when
    ``allowed``)."""
    count = limit.count
    seconds_per_token = limit.per / count
    if level > count:
        level = float(count)
    elif level < 0.0:
        level = 0.0
    reset = math.ceil((count - level) * seconds_per_token - EPSILON)
    if allowed:
        return Verdict(True, count, int(level + EPSILON), reset, 0)
    retry_after = max(1, math.ceil((1.0 - level) * seconds_per_token - EPSILON))
    return Verdict(False, count, 0, reset, retry_after)


class Bucket:
    """One token's bucket: ``level`` tokens as of ``updated`` (monotonic seconds)."""

    __slots__ = ("count", "level", "per", "rate", "updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.count = limit.count
        self.per = limit.per
        self.rate = limit.count / limit.per
        self.level = float(limit.count)
        self.updated = now

    def adapt(self, limit: RateLimit, now: float) -> None:
        """Follow a changed ``limit``: refilled so far at the old rate, then capped."""
        self.refill(now)
        self.count, self.per, self.rate = limit.count, limit.per, limit.count / limit.per
        self.level = min(self.level, float(limit.count))

    def refill(self, now: float) -> float:
        """The level now (a clock that went back refills nothing, and takes nothing)."""
        elapsed = now - self.updated
        if elapsed > 0:
            self.level = min(float(self.count), self.level + elapsed * self.rate)
            self.updated = now
        return self.level


class InstanceRateLimiter:
    """``scope: instance``: each process counts alone, in memory, never awaiting."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        self._loop = Background("authsvc-ratelimit-prune", self._prune_forever)

    def _bucket(self, token_id: str, limit: RateLimit, now: float) -> Bucket:
        """The token's bucket, made full on first use, following a changed ``limit``."""
        bucket = self._buckets.get(token_id)
        if bucket is None:
            bucket = self._buckets[token_id] = Bucket(limit, now)
        elif bucket.count != limit.count or bucket.per != limit.per:
            bucket.adapt(limit, now)
        return bucket

    def try_take(self, token_id: str, limit: RateLimit) -> Verdict:
        now = self._clock()
        bucket = self._bucket(token_id, limit, now)
        level = bucket.refill(now)
        if level + EPSILON >= 1.0:
            bucket.level = level = level - 1.0
            return verdict(limit, level, True)
        return verdict(limit, level, False)

    async def take(self, token_id: str, limit: RateLimit) -> Verdict:
        return self.try_take(token_id, limit)

    async def peek(self, token_id: str, limit: RateLimit) -> Verdict:
        return self.level_verdict(token_id, limit)

    def level_verdict(self, token_id: str, limit: RateLimit) -> Verdict:
        """:meth:`peek` without awaiting: the bucket as it would stand, left untouched."""
        bucket = self._buckets.get(token_id)
        if bucket is None:
            level = float(limit.count)
        else:
            refilled = bucket.level + max(0.0, self._clock() - bucket.updated) * bucket.rate
            level = min(float(bucket.count), float(limit.count), refilled)
        return verdict(limit, level, level + EPSILON >= 1.0)

    @property
    def fallback(self) -> bool:
        return False

    def seed(self, token_id: str, limit: RateLimit, level: float) -> None:
        """Set the token's bucket to ``level`` now: the cluster scope keeps its fallback
        buckets where the shared ones last stood, so an outage grants no fresh burst."""
        now = self._clock()
        bucket = self._bucket(token_id, limit, now)
        bucket.level = max(0.0, min(float(limit.count), level))
        bucket.updated = now

    def __len__(self) -> int:
        """Buckets held (tokens used within their refill time)."""
        return len(self._buckets)

    def clear(self) -> None:
        """Forget every bucket (all start full again)."""
        self._buckets.clear()

    async def prune(self) -> int:
        """Drop the buckets that have refilled to full; how many were dropped."""
        dropped = 0
        entries = list(self._buckets.items())
        for start in range(0, len(entries), _PRUNE_CHUNK):
            if start:
                await asyncio.sleep(0)  # let requests in between chunks
            now = self._clock()
            for token_id, bucket in entries[start : start + _PRUNE_CHUNK]:
                full = bucket.refill(now) + EPSILON >= bucket.count
                if full and self._buckets.get(token_id) is bucket:
                    del self._buckets[token_id]
                    dropped += 1
        return dropped

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            await self.prune()


def build_rate_limiter(
    settings: RateLimitSettings,
    metrics: Metrics,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> RateLimiter:
    """The limiter ``settings`` ask for; ``clock`` is monotonic seconds (tests inject one).
    Nothing is connected yet: the cluster limiter reaches Redis on first use."""
    metrics.ratelimit_fallback.set(0)
    if settings.scope != "cluster":
        return InstanceRateLimiter(clock)
    # Imported here so that the instance scope never loads the Redis client.
    from authsvc.service.ratelimit_cluster import ClusterRateLimiter  # noqa: PLC0415

    if settings.redis is None:  # the configuration reader refuses this; never count alone
        raise ValueError("rate_limits.scope is cluster but no rate_limits.redis URL is set")
    return ClusterRateLimiter(settings.redis, metrics, clock=clock)
