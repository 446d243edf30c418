"""Redis down under ``rate_limits.scope: cluster`` (SPEC §12), staged for real.

Instance A's limiter reaches Redis through a :class:`~tests.pg.TcpProxy` (``cut()`` is a dead
server, ``freeze()`` a silent network) and sits in a runtime, so ``/readyz`` and
``/metrics`` show what an operator sees. Instance B reaches Redis directly. What must hold:
requests are never refused because Redis is down and are decided without waiting on it
(once the first failure is seen), A counts alone meanwhile, says so in the gauge and in
``/readyz`` (still 200), and shares the count again once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from authsvc.rules.ratelimit import RateLimit, parse_rate_limit
from authsvc.service.metrics import Metrics
from authsvc.service.ratelimit import Verdict
from authsvc.service.ratelimit_cluster import PROBE_INTERVAL, ClusterRateLimiter
from authsvc.service.runtime import Runtime
from tests.pg import TcpProxy
from tests.ratelimit_redis import fresh_token_id
from tests.waiting import within
from tests.webapp import Client

pytest_plugins = ("tests.ratelimit_redis",)

FOUR_PER_HOUR = parse_rate_limit("4/h")  # no refill within a test: every count is exact
#: Bound on any one decision here: far above the limiter's own timeout, so a hang fails
#: the test instead of stalling the run.
DECISION_BOUND = 5.0


@dataclass
class Setup:
    proxy: TcpProxy
    a: ClusterRateLimiter  # through the proxy, in the runtime
    b: ClusterRateLimiter  # straight to Redis
    runtime: Runtime
    admin: Client


@pytest.fixture
async def setup(redis_url: str, runtime: Runtime, admin_client: Client) -> AsyncIterator[Setup]:
    parts = urlsplit(redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    port = await proxy.start()
    await runtime.limiter.stop()
    a = ClusterRateLimiter(f"redis://127.0.0.1:{port}{parts.path}", runtime.metrics)
    runtime.limiter = a  # the runtime fixture's close() stops it
    a.start()
    b = ClusterRateLimiter(redis_url, Metrics(environ={}))
    b.start()
    yield Setup(proxy, a, b, runtime, admin_client)
    await b.stop()
    await proxy.cut()


async def decide(limiter: ClusterRateLimiter, token_id: str, limit: RateLimit) -> Verdict:
    """What /auth does, bounded."""
    async with asyncio.timeout(DECISION_BOUND):
        return limiter.try_take(token_id, limit) or await limiter.take(token_id, limit)


async def shown(setup: Setup) -> tuple[float | None, float | None, str]:
    """The fallback gauge, the Redis error count and /readyz's body (which must be 200)."""
    response = await setup.admin.get("/readyz")
    assert response.status == 200
    metrics = setup.runtime.metrics.registry
    return (
        metrics.get_sample_value("authsvc_ratelimit_fallback"),
        metrics.get_sample_value("authsvc_ratelimit_redis_errors_total"),
        await response.text(),
    )


async def test_dead_redis_counts_alone_then_shares_again(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authsvc.ratelimit")
    token_id = fresh_token_id()
    assert (await decide(setup.a, token_id, FOUR_PER_HOUR)).allowed  # shared: 3 left
    assert await shown(setup) == (0.0, 0.0, "ready\n")

    await setup.proxy.cut()
    first = await decide(setup.a, token_id, FOUR_PER_HOUR)  # meets the dead server
    assert first.allowed  # never refused because Redis is down
    assert setup.a.fallback
    # From now on every request is decided in try_take: no request waits on Redis. The
    # instance counts alone from where the shared bucket stood (3 left after the first
    # request; `first` took one more), not from a fresh, full bucket: 4 in all, not 5.
    alone = [setup.a.try_take(token_id, FOUR_PER_HOUR) for _ in range(4)]
    assert [v.allowed if v else None for v in alone] == [True, True, False, False]
    gauge, errors, body = await shown(setup)
    assert gauge == 1.0
    assert (errors or 0) >= 1  # the probe may have failed once more by now
    assert "rate limits: fallback: Redis is unreachable" in body
    assert body.startswith("ready\n")
    other = fresh_token_id()  # another token is counted alone too, logged no more
    assert (await decide(setup.a, other, FOUR_PER_HOUR)).allowed
    said = [r.getMessage() for r in caplog.records if r.name == "authsvc.ratelimit"]
    assert len(said) == 1
    assert f"Redis at redis://127.0.0.1:{setup.proxy.port}/0 is unreachable" in said[0]

    await setup.proxy.start()
    await within(PROBE_INTERVAL * 4, lambda: not setup.a.fallback, "the probe finding Redis")
    gauge, _, body = await shown(setup)
    assert (gauge, body) == (0.0, "ready\n")
    assert "answers again" in caplog.records[-1].getMessage()
    # Shared again: 3 left in Redis from before the outage, wherever they are spent.
    assert (await decide(setup.a, token_id, FOUR_PER_HOUR)).allowed
    verdicts = [await decide(setup.b, token_id, FOUR_PER_HOUR) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]


async def test_silent_redis_times_out_into_fallback(setup: Setup) -> None:
    """A network that swallows everything costs the request that meets it one short
    timeout; it is allowed, and the requests after it are decided at once."""
    token_id = fresh_token_id()
    assert (await decide(setup.a, token_id, FOUR_PER_HOUR)).allowed
    setup.proxy.freeze()
    other = fresh_token_id()  # no lease at hand: this one must ask Redis
    assert (await decide(setup.a, other, FOUR_PER_HOUR)).allowed
    assert setup.a.fallback
    assert setup.a.try_take(other, FOUR_PER_HOUR) is not None
    setup.proxy.thaw()
    await within(PROBE_INTERVAL * 4, lambda: not setup.a.fallback, "the probe finding Redis")
    assert not setup.a.fallback
