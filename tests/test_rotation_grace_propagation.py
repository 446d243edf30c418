"""A grace ended on one instance ends on the others within the propagation bound (SPEC §6,
§11), on both stores: the first use of the new secret, a revoked previous secret, and
rotations or deletes during a grace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authsvc.service.propagation import ChangeFeed
from authsvc.service.runtime import Runtime
from tests.auth_client import auth_client
from tests.factories import make_config
from tests.waiting import within
from tests.webapp import ENVIRON, Client, ClientMaker, auth_status, mint

BOUND = 1.0  # SPEC §6: the goal for changes made elsewhere


class Pair:
    """Instance A with its change feed, instance B; both answer /auth."""

    a: Runtime
    b: Runtime
    feed: ChangeFeed
    client_a: Client
    client_b: Client

    async def until_a(self, secret: str, status: int) -> float:
        """Seconds until A answers ``status`` for ``secret`` (fails past the bound)."""

        async def answered() -> bool:
            return await auth_status(self.client_a, secret) == status

        return await within(BOUND, answered, f"instance A to answer {status}")

    async def rotated(self, grace: str = "1h") -> tuple[str, str, str]:
        """A Reader token made and rotated with a grace through B, both secrets cached
        by A (TTL 60 s): (id, old secret, new secret)."""
        record, old = await mint(self.b, "Reader")
        _, new = await self.b.service.rotate(
            actor="cli", client=None, token_id=record.id, grace=grace
        )
        # A has applied the rotation's own changes, so only a later change can drop what
        # it caches now
        latest = await self.b.store.latest_change()
        await within(BOUND, lambda: self.feed.position >= latest, "A to follow the rotation")
        assert await auth_status(self.client_a, old) == 200
        assert self.a.cache.get(self.a.service.digest(old)) is not None
        return record.id, old, new


@pytest.fixture
async def pair(store_url: str, tmp_path: Path, aiohttp_client: ClientMaker) -> AsyncIterator[Pair]:
    config = make_config(tmp_path, store=store_url, cache={"ttl": "60s"})
    p = Pair()
    p.a = await Runtime.open(config, environ=ENVIRON)
    p.b = await Runtime.open(config, environ=ENVIRON)
    p.feed = p.a.change_feed(poll_interval=0.25)
    await p.feed.start()
    p.client_a = await auth_client(aiohttp_client, p.a)
    p.client_b = await auth_client(aiohttp_client, p.b)
    yield p
    await p.feed.stop()
    await p.a.close()
    await p.b.close()


class TestGraceEndsElsewhere:
    async def test_first_use_on_one_instance_ends_the_previous_secret_on_another(
        self, pair: Pair
    ) -> None:
        """The new secret's first 200 on B: A (which cached the old secret for 60 s)
        refuses the old secret within a second."""
        _, old, new = await pair.rotated()
        assert await auth_status(pair.client_a, old) == 200
        assert await auth_status(pair.client_b, new) == 200
        await pair.until_a(old, 401)
        assert await auth_status(pair.client_a, new) == 200

    async def test_a_revoked_previous_secret_stops_everywhere(self, pair: Pair) -> None:
        """A leaked previous secret revoked through B stops on A within a second."""
        _, old, new = await pair.rotated()
        await pair.b.service.revoke_leaked(actor="cli", client=None, secret=old)
        await pair.until_a(old, 401)
        assert await auth_status(pair.client_a, new) == 200

    async def test_a_rotation_during_the_grace_ends_the_older_secret_elsewhere(
        self, pair: Pair
    ) -> None:
        """Rotated again through B: A stops the oldest secret within a second."""
        token_id, old, middle = await pair.rotated()
        await pair.b.service.rotate(actor="cli", client=None, token_id=token_id, grace="1h")
        await pair.until_a(old, 401)
        assert await auth_status(pair.client_a, middle) == 200

    async def test_delete_during_the_grace_stops_both_secrets_elsewhere(self, pair: Pair) -> None:
        """Deleted through B: A refuses both secrets within a second (the old one was
        cached: its digest is a change of the delete too)."""
        token_id, old, new = await pair.rotated()
        await pair.b.service.delete(actor="cli", client=None, token_id=token_id)
        await pair.until_a(old, 401)
        await pair.until_a(new, 401)

    async def test_narrowed_permissions_reach_the_previous_secret_elsewhere(
        self, pair: Pair
    ) -> None:
        """Permissions changed through B apply within a second to the old secret that A
        cached (its digest is a change of the update too)."""
        token_id, old, _ = await pair.rotated()
        await pair.b.service.update_permissions(
            actor="cli", client=None, token_id=token_id, permissions=["Writer"]
        )
        await pair.until_a(old, 403)
