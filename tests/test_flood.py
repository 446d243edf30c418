"""A flood of unknown well-formed tokens costs the store a bounded number of lookups, and
real tokens keep working through it (SECURITY 27), on both stores.

The budget's clock is frozen here, so "per second" never refills during a test: exactly
``unknown_lookups_per_second`` unknown lookups may reach the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from authsvc.rules.tokens import TokenRecord, new_secret
from authsvc.service.propagation import ChangeFeed
from authsvc.service.runtime import Runtime
from tests.auth_client import auth_client as make_auth_client
from tests.factories import FrozenClock, make_config
from tests.waiting import within
from tests.webapp import ENVIRON, READ_ITEMS, Client, ClientMaker, bearer, mint

BUDGET = 5
FLOOD = 120


class Instance:
    """A runtime with its change feed and an auth client, counting store lookups."""

    def __init__(self, runtime: Runtime, feed: ChangeFeed, client: Client) -> None:
        self.runtime, self.feed, self.client = runtime, feed, client
        self.store_reads: list[bytes] = []

    async def status(self, secret: str) -> int:
        response = await self.client.get("/auth", headers={**bearer(secret), **READ_ITEMS})
        return response.status

    async def flood(self, count: int = FLOOD) -> list[int]:
        """``count`` distinct well-formed unknown tokens at once; their statuses."""
        return list(await asyncio.gather(*(self.status(new_secret()) for _ in range(count))))

    def metric(self, name: str, **labels: str) -> float:
        value = self.runtime.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


OpenInstance = Callable[..., Awaitable[Instance]]


@pytest.fixture
async def open_instance(
    store_url: str,
    tmp_path: Path,
    aiohttp_client: ClientMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[OpenInstance]:
    """Opens instances sharing one store, each with a frozen budget clock."""
    opened: list[Instance] = []

    async def open_one(name: str = "a") -> Instance:
        config = make_config(
            tmp_path / name,
            store=store_url,
            cache={"ttl": "60s", "unknown_lookups_per_second": BUDGET},
        )
        runtime = await Runtime.open(config, environ=ENVIRON, cache_timer=FrozenClock())
        feed = runtime.change_feed(poll_interval=0.05)
        await feed.start()
        await within(2.0, lambda: runtime.lookups.known.loaded, "the set of known tokens")
        instance = Instance(runtime, feed, await make_auth_client(aiohttp_client, runtime))
        real = runtime.store.get_by_digest

        async def counted(digest: bytes) -> TokenRecord | None:
            instance.store_reads.append(digest)
            return await real(digest)

        monkeypatch.setattr(runtime.store, "get_by_digest", counted)
        opened.append(instance)
        return instance

    yield open_one
    for instance in opened:
        await instance.feed.stop()
        await instance.runtime.close()


class TestFlood:
    async def test_unknown_tokens_cost_at_most_the_budget(
        self, open_instance: OpenInstance
    ) -> None:
        """A flood of distinct unknown tokens: all 401, at most BUDGET store reads."""
        instance = await open_instance()
        statuses = await instance.flood()
        assert statuses == [401] * FLOOD
        assert len(instance.store_reads) == BUDGET
        assert instance.metric("authsvc_store_lookups_total", result="not_found") == BUDGET
        assert instance.metric("authsvc_unknown_lookups_skipped_total") == FLOOD - BUDGET

    async def test_real_tokens_keep_working(self, open_instance: OpenInstance) -> None:
        """Cached and uncached existing tokens are allowed while the budget is spent."""
        first = await open_instance()
        _, cached = await mint(first.runtime, "Reader")
        assert await first.status(cached) == 200
        _, uncached = await mint(first.runtime, "Reader")
        instance = await open_instance("b")  # loads the set of existing tokens at start
        assert await instance.status(cached) == 200  # read once, then cached
        await instance.flood()
        assert await instance.status(cached) == 200
        assert await instance.status(uncached) == 200  # known: its lookup is never refused
        assert instance.metric("authsvc_store_lookups_total", result="found") == 2

    async def test_token_created_elsewhere_works_during_a_flood(
        self, open_instance: OpenInstance
    ) -> None:
        """A token created on another instance works here within the propagation bound,
        even with the budget spent (its creation reaches the set of known tokens)."""
        here, elsewhere = await open_instance("a"), await open_instance("b")
        await here.flood()
        _, secret = await mint(elsewhere.runtime, "Reader")

        async def allowed() -> bool:
            return await here.status(secret) == 200

        await within(1.0, allowed, "the new token to be allowed here")

    async def test_token_created_elsewhere_works_at_once_without_a_flood(
        self, open_instance: OpenInstance
    ) -> None:
        """With budget left, a token unknown here is looked up and allowed at once."""
        here, elsewhere = await open_instance("a"), await open_instance("b")
        await here.feed.stop()  # nothing tells ``here`` about the new token
        _, secret = await mint(elsewhere.runtime, "Reader")
        assert await here.status(secret) == 200
        assert here.metric("authsvc_unknown_lookups_skipped_total") == 0

    async def test_a_deleted_token_costs_budget_after_its_first_lookup(
        self, open_instance: OpenInstance
    ) -> None:
        """A known token deleted behind the cache's back is forgotten on its first miss;
        replaying its secret then spends budget like any unknown token."""
        instance = await open_instance()
        record, secret = await mint(instance.runtime, "Reader")
        digest = instance.runtime.service.digest(secret)
        await within(1.0, lambda: digest in instance.runtime.lookups.known, "the creation")
        await instance.feed.stop()  # so that the delete is not reported to it
        await instance.runtime.store.delete(record.id)  # no invalidation: as if elsewhere
        replays = [await instance.status(secret) for _ in range(BUDGET + 3)]
        assert replays == [401] * (BUDGET + 3)
        assert len(instance.store_reads) == 1 + BUDGET
        assert instance.metric("authsvc_unknown_lookups_skipped_total") == 2


class TestBeforeTheFirstLoad:
    async def test_every_token_counts_as_known_until_the_set_is_loaded(
        self, store_url: str, tmp_path: Path, aiohttp_client: ClientMaker
    ) -> None:
        """Without a loaded set nothing is refused unasked: real tokens must not be turned
        away during the second or so after start (the bound applies once it is loaded)."""
        config = make_config(
            tmp_path, store=store_url, cache={"unknown_lookups_per_second": BUDGET}
        )
        runtime = await Runtime.open(config, environ=ENVIRON, cache_timer=FrozenClock())
        try:
            instance = Instance(
                runtime, runtime.change_feed(), await make_auth_client(aiohttp_client, runtime)
            )
            assert not runtime.lookups.known.loaded
            assert await instance.flood(3 * BUDGET) == [401] * (3 * BUDGET)
            assert instance.metric("authsvc_unknown_lookups_skipped_total") == 0
            assert instance.metric("authsvc_store_lookups_total", result="not_found") == 3 * BUDGET
        finally:
            await runtime.close()
