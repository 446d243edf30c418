"""The token bucket of ``rate_limits.scope: instance`` (SPEC §12): a burst of ``count``,
refill at ``count`` per unit, whole-second headers rounded up, a changed limit adapting
the bucket, and memory bounded by the tokens in recent use. Time is a frozen clock."""

from __future__ import annotations

import pytest

from authsvc.config import RateLimitSettings
from authsvc.rules.ratelimit import parse_rate_limit
from authsvc.service.metrics import Metrics
from authsvc.service.ratelimit import InstanceRateLimiter, Verdict, build_rate_limiter
from tests.factories import FrozenClock

FIVE_PER_SECOND = parse_rate_limit("5/s")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def limiter(clock: FrozenClock) -> InstanceRateLimiter:
    return InstanceRateLimiter(clock)


def take_all(limiter: InstanceRateLimiter, token_id: str, text: str, times: int) -> list[Verdict]:
    limit = parse_rate_limit(text)
    return [limiter.try_take(token_id, limit) for _ in range(times)]


class TestBucket:
    def test_a_burst_of_count_then_refused(self, limiter: InstanceRateLimiter) -> None:
        """A fresh bucket is full: 5 allowed with 4..0 remaining, then refused for the
        0.2 s one request takes to refill, rounded up to 1 s."""
        verdicts = take_all(limiter, "t1", "5/s", 7)
        assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
        assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0, 0]
        assert {v.limit for v in verdicts} == {5}
        assert [v.retry_after for v in verdicts] == [0] * 5 + [1, 1]
        assert verdicts[0].reset == 1  # 0.2 s to full again, rounded up
        assert verdicts[4].reset == 1  # 1.0 s exactly: not rounded up to 2

    def test_refill_at_count_per_unit(
        self, limiter: InstanceRateLimiter, clock: FrozenClock
    ) -> None:
        """An empty "5/s" bucket gets one request back every 0.2 s, not a new burst."""
        take_all(limiter, "t1", "5/s", 5)
        clock.advance(0.1)
        assert not limiter.try_take("t1", FIVE_PER_SECOND).allowed
        clock.advance(0.1)
        assert [v.allowed for v in take_all(limiter, "t1", "5/s", 2)] == [True, False]
        clock.advance(0.4)
        assert [v.allowed for v in take_all(limiter, "t1", "5/s", 3)] == [True, True, False]

    def test_never_more_than_count_after_a_long_idle(
        self, limiter: InstanceRateLimiter, clock: FrozenClock
    ) -> None:
        """Idle time fills the bucket to its capacity, no further (not a fixed window)."""
        take_all(limiter, "t1", "5/s", 5)
        clock.advance(3600)
        assert sum(v.allowed for v in take_all(limiter, "t1", "5/s", 20)) == 5

    def test_retry_after_and_reset_round_up_to_whole_seconds(
        self, limiter: InstanceRateLimiter, clock: FrozenClock
    ) -> None:
        """ "2/m": one request per 30 s. Refused 10.5 s after emptying: 19.5 s to wait → 20;
        the bucket is full 49.5 s later → 50."""
        take_all(limiter, "t1", "2/m", 2)
        clock.advance(10.5)
        (refused,) = take_all(limiter, "t1", "2/m", 1)
        assert (refused.allowed, refused.retry_after, refused.reset) == (False, 20, 50)
        assert refused.remaining == 0

    def test_retry_after_is_at_least_one_second(self, limiter: InstanceRateLimiter) -> None:
        """ "1000/s" refills in a millisecond; Retry-After still says 1."""
        verdicts = take_all(limiter, "t1", "1000/s", 1001)
        assert sum(v.allowed for v in verdicts) == 1000
        assert (verdicts[-1].retry_after, verdicts[-1].reset) == (1, 1)

    def test_tokens_have_buckets_of_their_own(self, limiter: InstanceRateLimiter) -> None:
        take_all(limiter, "t1", "1/h", 1)
        assert not limiter.try_take("t1", parse_rate_limit("1/h")).allowed
        assert limiter.try_take("t2", parse_rate_limit("1/h")).allowed


class TestLimitChange:
    def test_a_lower_limit_caps_the_level(self, limiter: InstanceRateLimiter) -> None:
        """7 of "10/h" left; under "5/h" the bucket holds 5 of 5 at most."""
        take_all(limiter, "t1", "10/h", 3)
        verdicts = take_all(limiter, "t1", "5/h", 6)
        assert [v.allowed for v in verdicts] == [True] * 5 + [False]
        assert (verdicts[0].limit, verdicts[0].remaining) == (5, 4)

    def test_a_higher_limit_grants_no_extra_burst(
        self, limiter: InstanceRateLimiter, clock: FrozenClock
    ) -> None:
        """An empty bucket stays empty when the limit rises; it refills at the new rate."""
        take_all(limiter, "t1", "5/h", 5)
        (refused,) = take_all(limiter, "t1", "100/s", 1)
        assert (refused.allowed, refused.limit) == (False, 100)
        clock.advance(0.05)
        assert sum(v.allowed for v in take_all(limiter, "t1", "100/s", 10)) == 5

    def test_same_rate_written_otherwise_changes_the_capacity(
        self, limiter: InstanceRateLimiter
    ) -> None:
        """ "60/m" and "1/s" refill alike, but their capacities are 60 and 1."""
        take_all(limiter, "t1", "60/m", 1)
        verdicts = take_all(limiter, "t1", "1/s", 2)
        assert [(v.allowed, v.limit) for v in verdicts] == [(True, 1), (False, 1)]


class TestMemory:
    async def test_full_buckets_are_pruned(
        self, limiter: InstanceRateLimiter, clock: FrozenClock
    ) -> None:
        """Buckets that refilled to full are dropped; one still refilling is kept."""
        for number in range(3000):  # more than one prune chunk
            limiter.try_take(f"t{number}", FIVE_PER_SECOND)
        take_all(limiter, "slow", "2/h", 1)
        assert len(limiter) == 3001
        clock.advance(0.1)
        assert await limiter.prune() == 0  # 0.1 s in, none of them is full yet
        clock.advance(0.2)
        assert await limiter.prune() == 3000
        assert len(limiter) == 1
        (verdict,) = take_all(limiter, "slow", "2/h", 1)
        assert (verdict.allowed, verdict.remaining) == (True, 0)

    async def test_a_pruned_token_comes_back_full(
        self, limiter: InstanceRateLimiter, clock: FrozenClock
    ) -> None:
        take_all(limiter, "t1", "5/s", 5)
        clock.advance(1.0)
        await limiter.prune()
        assert len(limiter) == 0
        assert sum(v.allowed for v in take_all(limiter, "t1", "5/s", 6)) == 5


class TestInterface:
    async def test_instance_scope_never_awaits_nor_falls_back(self, clock: FrozenClock) -> None:
        """The factory's instance limiter decides in try_take; take agrees; no fallback."""
        metrics = Metrics(environ={})
        limiter = build_rate_limiter(RateLimitSettings(), metrics, clock=clock)
        assert isinstance(limiter, InstanceRateLimiter)
        limiter.start()
        try:
            first = limiter.try_take("t1", parse_rate_limit("2/h"))
            second = await limiter.take("t1", parse_rate_limit("2/h"))
            assert (first, second) == (Verdict(True, 2, 1, 1800, 0), Verdict(True, 2, 0, 3600, 0))
            assert limiter.fallback is False
            assert metrics.registry.get_sample_value("authsvc_ratelimit_fallback") == 0
        finally:
            await limiter.stop()
