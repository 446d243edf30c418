"""Changes made elsewhere reach this instance's cache within a second (SPEC §6)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authsvc.rules.tokens import TokenRecord
from authsvc.service.propagation import ChangeFeed
from authsvc.service.runtime import Runtime
from tests.auth_client import auth_client
from tests.factories import make_config
from tests.waiting import within
from tests.webapp import ENVIRON, Client, ClientMaker, auth_status, mint

BOUND = 1.0  # SPEC §6: the goal for changes made elsewhere


class Pair:
    """Instance A serving /auth (with its change feed), instance B changing tokens."""

    a: Runtime
    b: Runtime
    feed: ChangeFeed
    client: Client

    async def status(self, secret: str) -> int:
        """A's answer to a ``Reader`` request presenting ``secret``."""
        return await auth_status(self.client, secret)

    async def mint(self, name: str) -> tuple[TokenRecord, str]:
        """A ``Reader`` token made through B."""
        return await mint(self.b, "Reader", name=name)

    async def until(self, secret: str, status: int) -> float:
        """Seconds until A answers ``status`` for ``secret`` (fails past the bound)."""

        async def answered() -> bool:
            return await self.status(secret) == status

        return await within(BOUND, answered, f"instance A to answer {status}")


@pytest.fixture
async def pair(store_url: str, tmp_path: Path, aiohttp_client: ClientMaker) -> AsyncIterator[Pair]:
    config = make_config(tmp_path, store=store_url, cache={"ttl": "60s"})
    p = Pair()
    p.a = await Runtime.open(config, environ=ENVIRON)
    p.b = await Runtime.open(config, environ=ENVIRON)
    p.feed = p.a.change_feed(poll_interval=0.25)
    await p.feed.start()
    p.client = await auth_client(aiohttp_client, p.a)
    yield p
    await p.feed.stop()
    await p.a.close()
    await p.b.close()


class TestChangesFromElsewhere:
    async def test_delete_elsewhere_is_honoured_within_a_second(self, pair: Pair) -> None:
        """A cached token deleted by another instance stops working within 1 s (TTL 60 s)."""
        record, secret = await pair.mint("doomed")
        assert await pair.status(secret) == 200  # now cached in A for 60 s
        await pair.b.service.delete(actor="cli", client=None, token_id=record.id)
        await pair.until(secret, 401)

    async def test_rotate_elsewhere(self, pair: Pair) -> None:
        """The old secret stops, the new one works."""
        record, old = await pair.mint("rotated")
        assert await pair.status(old) == 200
        _, new = await pair.b.service.rotate(actor="cli", client=None, token_id=record.id)
        await pair.until(old, 401)
        assert await pair.status(new) == 200

    async def test_permission_change_elsewhere(self, pair: Pair) -> None:
        """Permissions narrowed by another instance apply within 1 s."""
        record, secret = await pair.mint("narrowed")
        assert await pair.status(secret) == 200
        await pair.b.service.update_permissions(
            actor="cli", client=None, token_id=record.id, permissions=["Writer"]
        )
        await pair.until(secret, 403)

    async def test_delay_is_measured(self, pair: Pair) -> None:
        """authsvc_propagation_delay_seconds counts each change seen from elsewhere."""
        record, secret = await pair.mint("measured")
        await pair.status(secret)
        await pair.b.service.delete(actor="cli", client=None, token_id=record.id)
        await pair.until(secret, 401)
        registry = pair.a.metrics.registry
        count = registry.get_sample_value("authsvc_propagation_delay_seconds_count")
        total = registry.get_sample_value("authsvc_propagation_delay_seconds_sum")
        assert count is not None
        assert count >= 1
        assert total is not None
        assert 0 <= total < BOUND * count


class TestRaces:
    async def test_a_lookup_straddling_an_invalidation_is_not_cached(
        self, pair: Pair, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A record read before a revocation is not put back into the cache after it."""
        record, secret = await pair.mint("racy")
        service = pair.a.service
        digest = service.digest(secret)
        gate = asyncio.Event()
        real = pair.a.store.get_by_digest

        async def slow(d: bytes) -> TokenRecord | None:
            found = await real(d)
            await gate.wait()
            return found

        monkeypatch.setattr(pair.a.store, "get_by_digest", slow)
        lookup = asyncio.create_task(service.lookup(digest))
        await asyncio.sleep(0.05)
        pair.feed.changed(digest, None)  # the revocation arrives mid-read
        gate.set()
        found = await lookup
        assert found is not None
        assert found.id == record.id  # this request still gets its answer...
        assert pair.a.cache.get(digest) is None  # ...but the record is not kept


class TestReconnect:
    async def test_none_drops_the_whole_cache(self, pair: Pair) -> None:
        """A possibly-missed change (reconnect, pruned log) drops every cached record."""
        _, secret = await pair.mint("cached")
        await pair.status(secret)
        assert len(pair.a.cache) == 1
        pair.feed.changed(None, None)
        assert len(pair.a.cache) == 0
        assert pair.a.metrics.registry.get_sample_value("authsvc_cache_drops_total") == 1
