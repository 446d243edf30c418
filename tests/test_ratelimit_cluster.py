"""``rate_limits.scope: cluster`` (SPEC §12) on a real Redis: two limiters, each with a
connection of its own, stand for two instances sharing every token's bucket.

Buckets refill on Redis' clock, which tests cannot stop, so exact counts use limits per
hour (a refill of one takes minutes); the "5/s" burst allows for what refills while it
runs. The limiters' own clock (lease lifetimes) is a frozen one where a test moves it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from authsvc.config import RateLimitSettings
from authsvc.rules.ratelimit import RateLimit, parse_rate_limit
from authsvc.service.metrics import Metrics
from authsvc.service.ratelimit import Verdict, build_rate_limiter
from authsvc.service.ratelimit_cluster import LEASE_SECONDS, ClusterRateLimiter
from tests.factories import FrozenClock
from tests.ratelimit_redis import bucket_key, fresh_token_id
from tests.waiting import within

pytest_plugins = ("tests.ratelimit_redis",)

Factory = Callable[..., ClusterRateLimiter]


@pytest.fixture
async def new_limiter(redis_url: str) -> AsyncIterator[Factory]:
    """Started cluster limiters on the test server (keywords go to the constructor),
    each stopped at teardown."""
    made: list[ClusterRateLimiter] = []

    def make(**options: Any) -> ClusterRateLimiter:
        limiter = ClusterRateLimiter(redis_url, Metrics(environ={}), **options)
        limiter.start()
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.stop()


async def decide(limiter: ClusterRateLimiter, token_id: str, limit: RateLimit) -> Verdict:
    """What /auth does."""
    return limiter.try_take(token_id, limit) or await limiter.take(token_id, limit)


async def allowed(limiter: ClusterRateLimiter, token_id: str, text: str, times: int) -> int:
    limit = parse_rate_limit(text)
    return sum([(await decide(limiter, token_id, limit)).allowed for _ in range(times)])


class TestShared:
    async def test_two_instances_share_one_bucket(self, new_limiter: Factory) -> None:
        """40 requests alternating between two instances: exactly 10 of "10/h" pass."""
        first, second = new_limiter(), new_limiter()
        token_id, limit = fresh_token_id(), parse_rate_limit("10/h")
        verdicts = [await decide((first, second)[n % 2], token_id, limit) for n in range(40)]
        assert sum(v.allowed for v in verdicts) == 10
        assert {v.allowed for v in verdicts[:10]} == {True}  # no refusal while tokens remain
        refused = verdicts[-1]
        assert (refused.limit, refused.remaining, refused.retry_after) == (10, 0, 360)

    async def test_a_concurrent_burst_of_five_per_second(self, new_limiter: Factory) -> None:
        """A concurrent burst on both instances passes 5 of "5/s", plus at most what
        refilled while it ran; one second later the bucket has refilled."""
        first, second = new_limiter(), new_limiter()
        token_id, limit = fresh_token_id(), parse_rate_limit("5/s")
        started = time.monotonic()
        verdicts = await asyncio.gather(
            *(decide((first, second)[n % 2], token_id, limit) for n in range(60))
        )
        refill = int((time.monotonic() - started) * 5)
        passed = sum(v.allowed for v in verdicts)
        assert 5 <= passed <= 5 + refill
        denied = [v for v in verdicts if not v.allowed]
        assert denied
        assert {v.retry_after for v in denied} == {1}
        await asyncio.sleep(1.0 + 2 * LEASE_SECONDS)  # a refill, and the leases given back
        assert (
            await allowed(first, token_id, "5/s", 3) + await allowed(second, token_id, "5/s", 2)
            == 5
        )

    async def test_a_busy_token_is_decided_from_the_lease(self, new_limiter: Factory) -> None:
        """One round trip leases 10 of "100/h" (a tenth): the next 9 requests are decided
        in try_take, with no I/O; the eleventh needs another round trip."""
        limiter = new_limiter()
        token_id, limit = fresh_token_id(), parse_rate_limit("100/h")
        assert limiter.try_take(token_id, limit) is None
        assert (await limiter.take(token_id, limit)).allowed
        leased = [limiter.try_take(token_id, limit) for _ in range(9)]
        assert [v.allowed if v else None for v in leased] == [True] * 9
        assert limiter.try_take(token_id, limit) is None

    async def test_concurrent_requests_share_one_round_trip(
        self, new_limiter: Factory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ten requests waiting for the same token's lease: one script call serves all."""
        limiter = new_limiter()
        token_id, limit = fresh_token_id(), parse_rate_limit("100/h")
        calls = 0
        script = limiter._script  # the round trips, counted behind its back

        async def counted(**kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await script(**kwargs)

        monkeypatch.setattr(limiter, "_script", counted)
        verdicts = await asyncio.gather(*(limiter.take(token_id, limit) for _ in range(10)))
        assert [v.allowed for v in verdicts] == [True] * 10
        assert calls == 1

    async def test_unused_lease_is_given_back(self, new_limiter: Factory) -> None:
        """The instance that used 1 of its 10 leased tokens gives the 9 back once the lease
        expires; until then the others get only the 90 left in Redis."""
        clock = FrozenClock()
        holder, other, third = new_limiter(clock=clock), new_limiter(), new_limiter()
        token_id = fresh_token_id()
        assert await allowed(holder, token_id, "100/h", 1) == 1
        assert await allowed(other, token_id, "100/h", 100) == 90  # 9 are leased to holder
        clock.advance(LEASE_SECONDS)
        await holder.give_back_expired()
        assert await allowed(third, token_id, "100/h", 20) == 9

    async def test_the_sync_gives_back_expired_leases(
        self, new_limiter: Factory, redis_client: Redis
    ) -> None:
        """Left alone, a started limiter hands an expired lease's 9 unused tokens back."""
        limiter = new_limiter()
        token_id = fresh_token_id()
        assert await allowed(limiter, token_id, "100/h", 1) == 1
        assert await shared_level(redis_client, token_id) < 91  # 10 taken, 9 of them leased
        await within(2, lambda: _level_at_least(redis_client, token_id, 99), "the give-back")

    async def test_stop_gives_back_what_it_holds(
        self, new_limiter: Factory, redis_client: Redis
    ) -> None:
        limiter = new_limiter(clock=FrozenClock())  # its lease never expires by itself
        token_id = fresh_token_id()
        assert await allowed(limiter, token_id, "100/h", 1) == 1
        await limiter.stop()
        assert await shared_level(redis_client, token_id) >= 99

    async def test_a_spent_token_is_refused_without_a_round_trip(
        self, new_limiter: Factory
    ) -> None:
        """The refusal Redis answered is remembered: hammering costs no I/O meanwhile."""
        limiter = new_limiter(clock=FrozenClock())
        token_id, limit = fresh_token_id(), parse_rate_limit("1/h")
        assert await allowed(limiter, token_id, "1/h", 2) == 1
        hammered = [limiter.try_take(token_id, limit) for _ in range(50)]
        assert {(v.allowed, v.retry_after) if v else None for v in hammered} == {(False, 3600)}

    async def test_a_limit_change_caps_the_shared_bucket(self, new_limiter: Factory) -> None:
        """7 of "10/h" left; under "5/h" the shared bucket holds 5 at most."""
        first, second = new_limiter(), new_limiter()
        token_id = fresh_token_id()
        assert await allowed(first, token_id, "10/h", 3) == 3
        assert await allowed(second, token_id, "5/h", 10) == 5


class TestRedisKeys:
    async def test_bucket_key_has_a_ttl(self, new_limiter: Factory, redis_client: Redis) -> None:
        """Under the authsvc:ratelimit: prefix, expiring once it would be full again (2 of
        "10/h" taken: 720 s, plus a second's margin)."""
        limiter = new_limiter()
        token_id = fresh_token_id()
        assert await allowed(limiter, token_id, "10/h", 2) == 2
        ttl = await redis_client.pttl(bucket_key(token_id))
        assert 0 < ttl <= 721_000


class TestFactory:
    async def test_cluster_settings_build_a_cluster_limiter(self, redis_url: str) -> None:
        metrics = Metrics(environ={})
        limiter = build_rate_limiter(RateLimitSettings("cluster", redis_url), metrics)
        try:
            assert isinstance(limiter, ClusterRateLimiter)
            token_id, limit = fresh_token_id(), parse_rate_limit("3/h")
            verdict = limiter.try_take(token_id, limit) or await limiter.take(token_id, limit)
            assert (verdict.allowed, verdict.limit, limiter.fallback) == (True, 3, False)
        finally:
            await limiter.stop()


async def test_a_spent_bucket_refills_on_redis_time(new_limiter: Factory) -> None:
    """ "2/s" spent: refused, then allowed again once Redis' clock has refilled a token."""
    limiter = new_limiter()
    token_id, limit = fresh_token_id(), parse_rate_limit("2/s")
    assert await allowed(limiter, token_id, "2/s", 3) == 2
    await within(3, lambda: _allows(limiter, token_id, limit), "a refill of 2/s")


async def shared_level(client: Redis, token_id: str) -> float:
    """The level of the token's bucket in Redis (a missing key is a full bucket: inf)."""
    level = await client.hget(bucket_key(token_id), "level")
    return float("inf") if level is None else float(level)


async def _level_at_least(client: Redis, token_id: str, level: float) -> bool:
    return await shared_level(client, token_id) >= level


async def _allows(limiter: ClusterRateLimiter, token_id: str, limit: RateLimit) -> bool:
    return (await decide(limiter, token_id, limit)).allowed


class TestUnderLoad:
    async def test_a_thousand_waiting_requests_stay_within_the_limit(
        self, new_limiter: Factory, caplog: pytest.LogCaptureFixture
    ) -> None:
        """1,000 requests of one "100/s" token at once on one instance: no more pass than
        the bucket plus its refill meanwhile (a waiter that outlasts its rounds is refused,
        never counted alone from a full bucket), and nothing is logged per request."""
        limiter = new_limiter()
        token_id, limit = fresh_token_id(), parse_rate_limit("100/s")
        started = time.monotonic()
        verdicts = await asyncio.gather(*(decide(limiter, token_id, limit) for _ in range(1000)))
        elapsed = time.monotonic() - started
        passed = sum(v.allowed for v in verdicts)
        assert 100 <= passed <= 100 + int(elapsed * 100) + 1, (passed, elapsed)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    async def test_a_redis_that_refuses_scripts_is_not_taken_back(
        self, new_limiter: Factory, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The probe runs the bucket script itself: a Redis that answers PING but refuses
        scripts (an ACL, out of memory, a read-only replica) keeps the instance counting
        alone instead of flipping back every probe."""
        limiter = new_limiter()
        token_id, limit = fresh_token_id(), parse_rate_limit("10/h")
        assert (await decide(limiter, token_id, limit)).allowed

        async def refuse(*_: object, **__: object) -> object:
            raise ResponseError("NOSCRIPT scripts are refused here")

        monkeypatch.setattr(limiter, "_script", refuse)
        assert await redis_client.ping()
        assert not await limiter.probe()
        await limiter.take(fresh_token_id(), limit)  # meets the refusal: counts alone
        assert limiter.fallback
        assert not await limiter.probe()
        assert limiter.fallback
