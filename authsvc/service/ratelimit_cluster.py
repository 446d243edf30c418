"""``rate_limits.scope: cluster``: one token bucket per token, shared through Redis.

**The scheme.** Each token's bucket lives in Redis (``authsvc:ratelimit:<token id>``, a
hash with a TTL: it vanishes once it would be full again, and a missing key *is* a full
bucket). One Lua script refills it using Redis' own ``TIME``, so the clocks of the hosts
never matter, and grants *leases*: an instance takes a share of the bucket —
``max(1, count // 10)`` tokens, never more than the bucket holds — and allows requests
from it locally, with no round trip. When its lease is spent the instance asks again: one
awaited round trip, shared by every request of that token waiting on this instance at the
time. A lease lives :data:`LEASE_SECONDS`. What a lease left unused goes back to the
bucket: expired leases through a background sync every :data:`SYNC_INTERVAL` (pipelined,
one round trip for all of them), the rest of a lease replaced early (a limit change) with
the request for the new one, and every share still held when the limiter stops. When the
script grants nothing, the instance remembers the denial until one token will have
refilled (at least :data:`MIN_DENIAL_SECONDS`, so that every request that waited on that
round trip still sees it when it wakes; at most :data:`LEASE_SECONDS`), so a client
hammering a spent token costs no round trip per request. A request that outlasts
``_MAX_ROUNDS`` round trips in a crowd of its token's requests is refused, never counted
alone.

**Accuracy.** Every request allowed anywhere spent a token of the one shared bucket, so
the total over all instances **never exceeds the limit** (the spec allows exceeding it by
what the instances allow within one sync interval; this scheme needs none of that
allowance). It is stricter in three ways, all short: a request may be refused while up to
``(instances - 1) × lease`` tokens sit unused in other instances' leases, for at most
:data:`LEASE_SECONDS` plus one sync interval (0.15 s); a remembered denial may outlive a
give-back elsewhere by up to :data:`LEASE_SECONDS`; and it may outlast the next refill by
up to :data:`MIN_DENIAL_SECONDS`. A lease lost rather than given back (an outage, a crash)
only makes the limit stricter until the bucket refills. Cost: a token used slowly costs
one round trip per request, plus one shared give-back; a busy one, one round trip per
lease.

**Redis down.** Every call has a short timeout (:data:`REDIS_TIMEOUT`) and is never
retried: the first failure switches the instance to *fallback*, where it counts alone
(the instance scope, in memory; each token's bucket starts where the shared one stood at
this instance's last lease, not full; with N instances up to N times the rest of the
limit in total), says so in the log (at most once a minute), sets the gauge
``authsvc_ratelimit_fallback`` to 1 and names it in ``/readyz``. Requests are never
refused because Redis is down, and only those already waiting on Redis at the failure
waited for it (at most :data:`REDIS_TIMEOUT`). A probe every :data:`PROBE_INTERVAL` runs
the bucket script itself on a key of its own (a Redis that answers PING but refuses
scripts, for an ACL, out of memory or as a read-only replica, is still down here); once it
works, the shared count resumes from the shared buckets as they were. The probe runs
between :meth:`ClusterRateLimiter.start` and ``stop``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from authsvc.config.rate_limits import display_redis_url
from authsvc.service.background import Background
from authsvc.service.ratelimit import EPSILON, InstanceRateLimiter, Verdict, verdict
from authsvc.service.ratelimit_lease import BUCKET_SCRIPT, Lease, lease_size

if TYPE_CHECKING:
    from authsvc.rules.ratelimit import RateLimit
    from authsvc.service.metrics import Metrics

log = logging.getLogger("authsvc.ratelimit")

KEY_PREFIX = "authsvc:ratelimit:"
#: The key the probe runs the script on (no token id has this shape).
PROBE_KEY = KEY_PREFIX + "-probe-"
#: How long an instance may hold a share of a bucket before giving back what is unused.
LEASE_SECONDS = 0.1
#: How often expired leases are given back (and, in fallback, how often to check on Redis).
SYNC_INTERVAL = 0.05
#: Seconds between two pings of an unreachable Redis.
PROBE_INTERVAL = 0.5
#: Seconds any one Redis call may take before the instance counts alone.
REDIS_TIMEOUT = 0.25
#: The shortest a remembered denial lasts, however fast the bucket refills: every request
#: waiting on the round trip that found the bucket empty must still see it when it wakes
#: (stricter by at most this long, as the spec allows).
MIN_DENIAL_SECONDS = 0.05
#: Seconds between two log lines about Redis going away or coming back.
LOG_EVERY = 60.0
#: Lease rounds one request may wait through (each one grants someone a token or decides
#: a denial, so this is only reached if the token's limit flips back and forth meanwhile).
_MAX_ROUNDS = 50
_FAILURES = (RedisError, OSError, TimeoutError)


class ClusterRateLimiter:
    """Token buckets shared by every instance through Redis (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = REDIS_TIMEOUT,
    ) -> None:
        self._display = display_redis_url(url)
        self._metrics = metrics
        self._clock = clock
        self._timeout = timeout
        self._client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a retry is a request kept waiting: count alone
        )
        self._script = self._client.register_script(BUCKET_SCRIPT)
        self._alone = InstanceRateLimiter(clock)
        self._leases: dict[str, Lease] = {}
        self._expiring: deque[tuple[str, Lease]] = deque()  # leases in order of expiry
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._fallback = False
        self._next_probe = 0.0
        self._quiet_until = 0.0  # see _say
        self._loop = Background("authsvc-ratelimit-sync", self._sync_forever)

    @property
    def fallback(self) -> bool:
        return self._fallback

    def try_take(self, token_id: str, limit: RateLimit) -> Verdict | None:
        if self._fallback:
            return self._alone.try_take(token_id, limit)
        lease = self._leases.get(token_id)
        if lease is None:
            return None
        now = self._clock()
        if now >= lease.expires_at or (lease.limit is not limit and lease.limit != limit):
            return None
        if lease.left > 0:
            lease.left -= 1
            return verdict(limit, lease.shared_level_at(now) + lease.left, True)
        if lease.denied:
            return verdict(limit, lease.shared_level_at(now), False)
        return None  # spent: ask for another lease

    async def take(self, token_id: str, limit: RateLimit) -> Verdict:
        for _ in range(_MAX_ROUNDS):
            found = self.try_take(token_id, limit)
            if found is not None:
                return found
            task = self._pending.get(token_id)
            if task is None:
                task = asyncio.create_task(self._acquire(token_id, limit))
                self._pending[token_id] = task
            # Shielded: a request that goes away must not cancel the others' round trip.
            await asyncio.shield(task)
        # A crowd of requests for one token outlasted _MAX_ROUNDS round trips (or its limit
        # kept changing): refuse, the strict side, rather than count alone from a full
        # bucket. Contention, not a fault: debug, so a flood cannot flood the log.
        log.debug(
            "rate limit of token %s: no lease after %d rounds; refused", token_id, _MAX_ROUNDS
        )
        return verdict(limit, 0.0, False)

    async def peek(self, token_id: str, limit: RateLimit) -> Verdict:
        """The shared bucket as it stands, taking nothing: this instance's lease when it
        holds a live one, else the script asked for nothing (counting alone if Redis fails)."""
        if self._fallback:
            return self._alone.level_verdict(token_id, limit)
        now = self._clock()
        lease = self._leases.get(token_id)
        if lease is not None and now < lease.expires_at and lease.limit == limit:
            level = lease.shared_level_at(now) + lease.left
            return verdict(limit, level, level + EPSILON >= 1.0)
        try:
            async with asyncio.timeout(self._timeout):
                _, shared = await self._script(
                    keys=[KEY_PREFIX + token_id], args=[limit.count, limit.per, 0, 0]
                )
        except _FAILURES as error:
            self._failed(error)
            return self._alone.level_verdict(token_id, limit)
        level = float(shared)
        return verdict(limit, level, level + EPSILON >= 1.0)

    async def _acquire(self, token_id: str, limit: RateLimit) -> None:
        """Ask Redis for a lease on ``token_id``'s bucket, handing back the old one's rest."""
        try:
            old = self._leases.pop(token_id, None)
            returned = old.left if old is not None else 0
            try:
                async with asyncio.timeout(self._timeout):
                    granted, level = await self._script(
                        keys=[KEY_PREFIX + token_id],
                        args=[limit.count, limit.per, lease_size(limit), returned],
                    )
            except _FAILURES as error:
                self._failed(error)
                return
            now = self._clock()
            granted, shared_level = int(granted), float(level)
            # where the shared bucket stands: the level to count alone from in an outage
            self._alone.seed(token_id, limit, shared_level)
            if granted > 0:
                lease = Lease(limit, granted, shared_level, now, now + LEASE_SECONDS, False)
            else:
                until_one = (1.0 - shared_level) * limit.per / limit.count
                lasts = min(LEASE_SECONDS, max(until_one, MIN_DENIAL_SECONDS))
                lease = Lease(limit, 0, shared_level, now, now + lasts, True)
            self._leases[token_id] = lease
            self._expiring.append((token_id, lease))
        finally:
            self._pending.pop(token_id, None)

    async def give_back_expired(self) -> None:
        """Give back to Redis what the expired leases left unused (one pipelined trip)."""
        now = self._clock()
        expiring = self._expiring
        returns: list[tuple[str, Lease]] = []
        # Grants all live LEASE_SECONDS, so the queue is in order of expiry; a shorter-lived
        # denial behind one leaves the queue a little late, which changes nothing.
        while expiring and expiring[0][1].expires_at <= now:
            token_id, lease = expiring.popleft()
            if self._leases.get(token_id) is lease:
                del self._leases[token_id]
                if lease.left > 0:
                    returns.append((token_id, lease))
        await self._give_back(returns)

    async def _give_back(self, returns: list[tuple[str, Lease]]) -> None:
        if not returns:
            return
        pipe = self._client.pipeline(transaction=False)
        for token_id, lease in returns:
            limit = lease.limit
            await self._script(
                keys=[KEY_PREFIX + token_id],
                args=[limit.count, limit.per, 0, lease.left],
                client=pipe,
            )
        try:
            async with asyncio.timeout(self._timeout):
                await pipe.execute()
        except _FAILURES as error:
            self._failed(error)  # the tokens are lost: stricter until the buckets refill

    def _failed(self, error: BaseException) -> None:
        self._metrics.ratelimit_redis_errors.inc()
        if self._fallback:
            return
        self._fallback = True
        self._next_probe = self._clock() + PROBE_INTERVAL
        self._metrics.ratelimit_fallback.set(1)
        self._say(
            logging.WARNING,
            "rate limits: Redis at %s is unreachable (%s: %s); each instance counts alone "
            "until it answers again",
            self._display,
            type(error).__name__,
            error,
        )

    def _say(self, level: int, message: str, *args: object) -> None:
        """Log, at most once per LOG_EVERY seconds: a Redis that comes and goes every
        probe must not flood the log (the gauge and the error counter keep the count)."""
        now = self._clock()
        if now < self._quiet_until:
            return
        self._quiet_until = now + LOG_EVERY
        log.log(level, message, *args)

    async def probe(self) -> bool:
        """Run the bucket script on a key of its own (a PING would pass on a Redis that
        refuses scripts: an ACL, OOM, a read-only replica); back to the shared count when
        it works. Whether it worked. The buckets counted alone are kept: they follow the
        shared ones at every lease, so the next outage starts where the count stood."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._script(keys=[PROBE_KEY], args=[1, 1, 0, 0])
        except _FAILURES:
            self._metrics.ratelimit_redis_errors.inc()
            return False
        if self._fallback:
            self._fallback = False
            self._metrics.ratelimit_fallback.set(0)
            log.info("rate limits: Redis at %s answers again; counting shared", self._display)
        return True

    def start(self) -> None:
        self._alone.start()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._alone.stop()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        if not self._fallback:  # hand back every share still held, so other instances get it
            held = [(token_id, lease) for token_id, lease in self._leases.items() if lease.left]
            await self._give_back(held)
        self._leases.clear()
        self._expiring.clear()
        await self._client.aclose()

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            try:
                if not self._fallback:
                    await self.give_back_expired()
                elif self._clock() >= self._next_probe:
                    self._next_probe = self._clock() + PROBE_INTERVAL
                    await self.probe()
            except Exception:  # a bug here must not end the sync: log it and go on
                log.exception("unexpected error in the rate limit sync")
