"""Redis for the cluster rate limiter's tests: the server at ``$AUTHSVC_TEST_REDIS``
(default ``redis://127.0.0.1:6379/0``), shared by every test; each test uses token ids of
its own (:func:`fresh_token_id`), so tests never count against each other's buckets.

Where the server cannot be reached, :func:`tests.required.unavailable` skips the test
(fails it in CI, where ``.ci/run`` starts Redis).

Load it from a test module with ``pytest_plugins = ("tests.ratelimit_redis",)``: fixtures
``redis_url`` and ``redis_client``. Test modules import the helpers before pytest loads this
module as a plugin, too late for assertion rewriting; the marker PYTEST_DONT_REWRITE says
that is expected (no asserts here).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from authsvc.rules.tokens import new_token_id
from authsvc.service.ratelimit_cluster import KEY_PREFIX
from tests.required import unavailable

REDIS_ENV = "AUTHSVC_TEST_REDIS"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def fresh_token_id() -> str:
    """A token id no other test (or earlier run) has counted against."""
    return new_token_id()


def bucket_key(token_id: str) -> str:
    return KEY_PREFIX + token_id


@pytest.fixture
async def redis_url() -> str:
    """The test server's URL, once it answered a PING."""
    url = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        unavailable(f"Redis at {url} does not answer ({error}); start redis-server")
    finally:
        await client.aclose()
    return url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client of the test server, to look behind the limiters' backs."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()
