"""Store outages, for real (SECURITY 19 and 24; SPEC §3, §4, §6, §7).

Instance A runs as ``serve`` builds it (both listeners, a change feed) on a PostgreSQL store
reached through a :class:`~tests.pg.TcpProxy`: ``cut()`` is a dead server, ``freeze()`` a
silent network. Instance B shares the database directly, as another instance or the CLI
would. A's cache runs on a timer the tests move, so "until the entry expires" is exact.

What an operator relies on: a token cached before the outage keeps working for at most
``cache.ttl`` after it was read, everything else fails closed (503 → nginx 500), admin writes
answer 503 and leave nothing behind, ``/readyz`` says why, and when the server is back the
same process serves again, drops its whole cache once its notifications are back (they are
not durable), and honours changes made elsewhere within a second.

SQLite: a store file made unreadable while ``serve`` runs cannot be staged — the store's one
connection keeps its file descriptors (WAL), and WAL readers are never blocked by a lock. What
can happen is another process holding the write lock; that case is tested below.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientResponse

from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from authsvc.store.postgres.store import PostgresStore
from authsvc.store.sqlite.store import SQLiteStore
from tests.admin_helpers import GRANTING  # admin tokens hold what they hand on
from tests.auth_client import admin_client, auth_client
from tests.factories import FrozenClock, make_config
from tests.pg import PgSchema, TcpProxy, with_address
from tests.stores import hold_write_lock
from tests.waiting import within
from tests.webapp import (
    ENVIRON,
    READ_ITEMS,
    Client,
    ClientMaker,
    assert_error,
    audit_entries,
    bearer,
    mint,
)

PASSWORD = "outage-pw-0x5eed"  # trust auth ignores it; it must never be shown
TTL = 2.0  # cache.ttl of instance A
TIMEOUT = 1.0  # A's connect and command timeouts
HANG = 10.0  # longer than this is a hang, not an outage answered in time
BOUND = 1.0  # SPEC §6: changes made elsewhere, honoured within a second


async def create(admin_api: Client, secret: str, name: str) -> ClientResponse:
    """POST /admin/v1/tokens of a ``Reader`` token called ``name``."""
    body = {"name": name, "permissions": ["Reader"]}
    response: ClientResponse = await admin_api.post(
        "/admin/v1/tokens", headers=bearer(secret), json=body
    )
    return response


@dataclass(slots=True)
class Rig:
    """Instance A behind the proxy, instance B direct, and A's cache timer."""

    proxy: TcpProxy
    a: Runtime
    b: Runtime
    auth: Client
    admin: Client
    timer: FrozenClock
    schema: PgSchema

    async def ask(self, secret: str) -> tuple[int, str]:
        """(status, X-Auth-Reason) of A's /auth for a request ``Reader`` grants."""
        response = await self.auth.get("/auth", headers={**bearer(secret), **READ_ITEMS})
        return response.status, response.headers["X-Auth-Reason"]

    async def mint(self, name: str, *permissions: str) -> tuple[TokenRecord, str]:
        """A token made through B (the CLI path), so A has never seen it."""
        return await mint(self.b, *(permissions or ("Reader",)), name=name)

    async def cached(self, name: str) -> tuple[TokenRecord, str]:
        """A token that A has just read from the store (so it is in A's cache)."""
        record, secret = await self.mint(name)
        assert await self.ask(secret) == (200, "ok")
        return record, secret

    def metric(self, name: str, **labels: str) -> float:
        return self.a.metrics.registry.get_sample_value(name, labels) or 0.0

    async def rows(self, sql: str, *args: object) -> object:
        """One value, read behind both instances' backs."""
        return await self.schema.admin.fetchval(sql, *args)


@pytest.fixture
async def rig(
    pg_schema: PgSchema, tmp_path: Path, aiohttp_client: ClientMaker
) -> AsyncIterator[Rig]:
    """A (store through the proxy, short timeouts, change feed) and B, both opened."""
    proxy = TcpProxy.to(pg_schema.url)
    await proxy.start()
    url = with_address(pg_schema.url, "127.0.0.1", proxy.port, password=PASSWORD)
    timer = FrozenClock(1000.0)
    store = PostgresStore(url, connect_timeout=TIMEOUT, command_timeout=TIMEOUT)
    a = await Runtime.open(
        make_config(tmp_path / "a", store=url, cache={"ttl": "2s"}),
        cache_timer=timer,
        environ=ENVIRON,
        store=store,
    )
    feed = a.change_feed()
    await feed.start()  # as serve does, before the cache fills
    b = await Runtime.open(make_config(tmp_path / "b", store=pg_schema.url), environ=ENVIRON)
    rig = Rig(
        proxy,
        a,
        b,
        await auth_client(aiohttp_client, a),
        await admin_client(aiohttp_client, a),
        timer,
        pg_schema,
    )
    yield rig
    proxy.thaw()
    await feed.stop()
    await a.close()
    await b.close()
    await proxy.cut()


class TestServerGone:
    """proxy.cut(): the server refuses and drops every connection."""

    async def test_cached_token_works_until_its_entry_expires(self, rig: Rig) -> None:
        """A token read before the outage answers 200 for cache.ttl, then 503 store_unavailable."""
        _, secret = await rig.cached("cached before")
        await rig.proxy.cut()
        assert await rig.ask(secret) == (200, "ok")
        rig.timer.advance(TTL - 0.5)
        assert await rig.ask(secret) == (200, "ok")
        rig.timer.advance(1.0)  # the entry is now older than cache.ttl
        assert await rig.ask(secret) == (503, "store_unavailable")

    async def test_uncached_token_is_503_at_once(self, rig: Rig) -> None:
        """A valid token A never read, and an unknown one, both fail closed: 503."""
        _, never_read = await rig.mint("never read")
        gone, unknown = await rig.mint("deleted before use")
        await rig.b.service.delete(actor="cli", client=None, token_id=gone.id)
        await rig.proxy.cut()
        started = time.monotonic()
        assert await rig.ask(never_read) == (503, "store_unavailable")
        assert await rig.ask(unknown) == (503, "store_unavailable")
        assert time.monotonic() - started < HANG
        assert rig.metric("authsvc_store_errors_total", operation="lookup") == 2
        assert rig.metric("authsvc_decisions_total", reason="store_unavailable") == 2


class TestAdminDuringOutage:
    """Admin writes answer 503 in the error shape and leave no trace; reads need the store."""

    async def test_writes_are_503_and_nothing_is_half_written(self, rig: Rig) -> None:
        """create, PATCH, rotate, DELETE: 503 store_unavailable; after recovery all is as before."""
        _, admin = await rig.mint("admin", *GRANTING)
        target, old_secret = await rig.mint("target")
        headers = bearer(admin)
        assert (await rig.admin.get("/admin/v1/policy", headers=headers)).status == 200  # cached
        audit_before = audit_entries(rig.a)
        changes_before = await rig.rows("SELECT last FROM change_counter")
        await rig.proxy.cut()
        path = f"/admin/v1/tokens/{target.id}"
        calls = [
            create(rig.admin, admin, "during outage"),
            rig.admin.patch(path, headers=headers, json={"permissions": ["Writer"]}),
            rig.admin.post(f"{path}/rotate", headers=headers),
            rig.admin.delete(path, headers=headers),
        ]
        for call in calls:
            response = await call
            assert_error(response.status, await response.json(), "store_unavailable", 503)
            assert response.headers["Cache-Control"] == "no-store"
        await rig.proxy.start()
        assert await rig.rows("SELECT count(*) FROM tokens WHERE name = 'during outage'") == 0
        assert await rig.b.store.get(target.id) == target  # permissions unchanged
        assert await rig.rows("SELECT last FROM change_counter") == changes_before
        assert audit_entries(rig.a) == audit_before
        rig.timer.advance(TTL + 0.5)  # whatever A cached is gone: this asks the store
        assert await rig.ask(old_secret) == (200, "ok")  # the failed rotate changed nothing

    async def test_reads_that_need_the_store_are_503(self, rig: Rig) -> None:
        """List/show: 503; policy: 200 while the admin token is cached, then 503 (not 401)."""
        target, _ = await rig.mint("shown")
        _, admin = await rig.mint("viewer", "ViewOrganizationTokens")
        headers = bearer(admin)
        assert (await rig.admin.get("/admin/v1/policy", headers=headers)).status == 200
        await rig.proxy.cut()
        for path in ("/admin/v1/tokens", f"/admin/v1/tokens/{target.id}"):
            response = await rig.admin.get(path, headers=headers)
            assert_error(response.status, await response.json(), "store_unavailable", 503)
        assert (await rig.admin.get("/admin/v1/policy", headers=headers)).status == 200
        rig.timer.advance(TTL + 0.5)
        response = await rig.admin.get("/admin/v1/policy", headers=headers)
        assert_error(response.status, await response.json(), "store_unavailable", 503)


class TestHealthDuringOutage:
    """Readiness follows the store; liveness does not."""

    async def test_readyz_follows_the_store_and_healthz_stays_up(self, rig: Rig) -> None:
        """/readyz: 200, then 503 naming the store (never the password), then 200; /healthz 200."""
        assert (await rig.admin.get("/readyz")).status == 200
        await rig.proxy.cut()
        response = await rig.admin.get("/readyz")
        text = await response.text()
        assert response.status == 503
        assert text.startswith("not ready: store unavailable")
        assert f"127.0.0.1:{rig.proxy.port}" in text
        assert PASSWORD not in text
        assert (await rig.admin.get("/healthz")).status == 200
        await rig.proxy.start()
        assert (await rig.admin.get("/healthz")).status == 200

        async def ready() -> bool:
            return (await rig.admin.get("/readyz")).status == 200

        await within(HANG, ready, "/readyz 200 after recovery")


class TestRecovery:
    """The server comes back: the same process serves again, nothing is recreated."""

    async def test_serves_again_and_drops_its_cache(self, rig: Rig) -> None:
        """Lookups and writes work again; the feed is back and drops the whole cache once."""
        _, admin = await rig.mint("admin", *GRANTING)
        assert (await rig.admin.get("/admin/v1/policy", headers=bearer(admin))).status == 200
        revoked, revoked_secret = await rig.cached("revoked during outage")
        await rig.proxy.cut()
        _, newcomer = await rig.mint("made during outage")  # B still reaches the server
        await rig.b.service.delete(actor="cli", client=None, token_id=revoked.id)
        assert await rig.ask(newcomer) == (503, "store_unavailable")
        assert await rig.ask(revoked_secret) == (200, "ok")  # stale, bounded by cache.ttl
        await rig.proxy.start()
        started = time.monotonic()

        async def newcomer_ok() -> bool:
            return await rig.ask(newcomer) == (200, "ok")

        serving = await within(HANG, newcomer_ok, "an uncached lookup after recovery")

        async def dropped() -> bool:
            return rig.metric("authsvc_cache_drops_total") == 1

        await within(15.0, dropped, "the change feed to reconnect and drop the cache")
        reconnected = time.monotonic() - started
        print(
            f"\nrecovery: first uncached 200 after {serving * 1000:.1f} ms, "
            f"change feed back after {reconnected * 1000:.1f} ms"
        )
        assert await rig.ask(revoked_secret) == (401, "invalid_token")  # timer never moved
        assert (await create(rig.admin, admin, "after")).status == 201
        doomed, doomed_secret = await rig.cached("deleted elsewhere after recovery")
        await rig.b.service.delete(actor="cli", client=None, token_id=doomed.id)

        async def refused() -> bool:
            return await rig.ask(doomed_secret) == (401, "invalid_token")

        await within(BOUND, refused, "a delete by B honoured by A")

    async def test_changes_elsewhere_right_after_a_longer_outage(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a 3.5 s outage, a delete elsewhere is honoured within 1 s of the recovery."""
        # No jitter: listener retries at 0.1, 0.3, 0.7, 1.5, 3.5, 5.5 s; the change log is
        # polled meanwhile, so the delete need not wait for the listener.
        monkeypatch.setattr(random, "uniform", lambda _low, high: high)
        doomed, secret = await rig.cached("doomed")
        await rig.proxy.cut()
        await asyncio.sleep(3.5)
        await rig.proxy.start()
        await rig.b.service.delete(actor="cli", client=None, token_id=doomed.id)

        async def refused() -> bool:
            return await rig.ask(secret) == (401, "invalid_token")

        await within(BOUND, refused, "a delete by B honoured by A")


class TestSilentNetwork:
    """proxy.freeze(): connections stay open and nothing arrives (a partition, a hung host)."""

    async def test_uncached_lookup_fails_closed_in_time(self, rig: Rig) -> None:
        """Uncached asks: 503 within the timeouts; after the thaw, never another's reply."""
        _, first = await rig.mint("first")
        _, second = await rig.mint("second")
        rig.proxy.freeze()
        started = time.monotonic()
        answers = await asyncio.gather(*(rig.ask(first) for _ in range(5)), rig.ask(second))
        took = time.monotonic() - started
        print(
            f"\nsilent network: 6 concurrent uncached asks answered 503 in {took:.2f} s "
            f"(connect and command timeouts {TIMEOUT} s)"
        )
        assert answers == [(503, "store_unavailable")] * 6
        assert took < HANG
        rig.proxy.thaw()
        _, third = await rig.mint("third")
        for secret, record_name in ((third, "third"), (second, "second"), (first, "first")):
            response = await rig.auth.get("/auth", headers={**bearer(secret), **READ_ITEMS})
            assert response.status in (200, 503)  # one stale connection may still fail
            if response.status == 200:
                assert response.headers["X-Auth-Token-Name"] == record_name

    async def test_write_into_silence_is_all_or_nothing(self, rig: Rig) -> None:
        """A create whose reply never comes is 503; the token is then absent or whole."""
        actor, admin = await rig.mint("admin", *GRANTING)
        headers = bearer(admin)
        assert (await rig.admin.get("/admin/v1/policy", headers=headers)).status == 200
        rig.proxy.freeze()
        started = time.monotonic()
        response = await create(rig.admin, admin, "in silence")
        assert_error(response.status, await response.json(), "store_unavailable", 503)
        assert time.monotonic() - started < HANG
        rig.proxy.thaw()
        await asyncio.sleep(0.5)  # let held-back bytes reach the server, if they will
        row = await rig.schema.admin.fetchrow(
            "SELECT permissions, digest, created_by FROM tokens WHERE name = 'in silence'"
        )
        if row is not None:
            digest = row["digest"]
            assert isinstance(digest, bytes)
            assert (row["permissions"], row["created_by"]) == (["Reader"], actor.id)
            assert len(digest) == 32


class TestSQLiteLocked:
    """SQLite's outage: another process holds the write lock (a long CLI call, a backup)."""

    async def test_writes_fail_cleanly_and_reads_go_on(
        self, tmp_path: Path, aiohttp_client: ClientMaker
    ) -> None:
        """Lookups go on (WAL); admin writes 503 and write nothing; unlocked, writes work."""
        path = tmp_path / "authsvc.db"
        store = SQLiteStore(str(path), busy_timeout_ms=300)
        runtime = await Runtime.open(
            make_config(tmp_path, store=f"sqlite:///{path}"), environ=ENVIRON, store=store
        )
        feed = runtime.change_feed()
        await feed.start()
        try:
            auth = await auth_client(aiohttp_client, runtime)
            admin_api = await admin_client(aiohttp_client, runtime)
            _, admin = await mint(runtime, *GRANTING, name="admin")
            _, reader = await mint(runtime, "Reader", name="reader")
            headers = bearer(admin)
            assert (await admin_api.get("/admin/v1/policy", headers=headers)).status == 200
            locker = await asyncio.to_thread(hold_write_lock, path)
            try:
                response = await auth.get("/auth", headers={**bearer(reader), **READ_ITEMS})
                assert response.status == 200  # uncached: read from the locked file
                response = await create(admin_api, admin, "blocked")
                assert_error(response.status, await response.json(), "store_unavailable", 503)
                assert (await admin_api.get("/readyz")).status == 200
            finally:
                await asyncio.to_thread(locker.close)
            assert [r.name for r in await runtime.store.all_tokens()] == ["admin", "reader"]
            assert (await create(admin_api, admin, "after")).status == 201
        finally:
            await feed.stop()
            await runtime.close()
