"""The PostgreSQL store beyond the TokenStore contract: the migration lock, text PostgreSQL
cannot hold, outages (unreachable, silent, killed connections) answered in time without a
password in sight, and the LISTEN/NOTIFY listener across lost connections.

The contract itself (tests/test_store_contract_*.py) runs against PostgreSQL as well. Each test
gets a schema of its own (tests/pg.py); without a reachable server it skips (fails in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest

from authsvc.store import ListQuery, NameTaken, StoreUnavailable
from authsvc.store.postgres import migrations
from authsvc.store.postgres.driver import display_name
from authsvc.store.postgres.store import CHANNEL, PostgresStore
from tests.factories import new_record
from tests.pg import PgSchema, TcpProxy, with_address
from tests.processes import free_port
from tests.stores import Heard, PostgresBackend, add, digest_for, names
from tests.waiting import within

PASSWORD = "hunter2-Sup3r-secret"
HANG = 10.0  # longer than this is a hang, not a slow reconnect


def told(exc: BaseException) -> str:
    """Everything a log line with the traceback of ``exc`` would show."""
    return "".join(traceback.format_exception(exc))


@pytest.fixture
async def pg_store(pg_schema: PgSchema) -> AsyncIterator[PostgresStore]:
    """An opened, empty PostgreSQL store."""
    opened = PostgresStore(pg_schema.url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def proxy(pg_schema: PgSchema) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test server, started."""
    started = TcpProxy.to(pg_schema.url)
    await started.start()
    yield started
    await started.cut()


class TestPostgresMigrations:
    """Instances starting at once queue on one advisory lock to migrate."""

    async def test_migration_waits_for_the_lock(self, pg_schema: PgSchema) -> None:
        """A store opening an empty schema migrates only once the migration lock is free."""
        lock = migrations._LOCK_KEY
        await pg_schema.admin.execute("SELECT pg_advisory_lock($1)", lock)
        store = PostgresStore(pg_schema.url, command_timeout=HANG)
        opening = asyncio.create_task(store.open())
        try:
            await asyncio.sleep(0.3)
            assert not opening.done()
            assert await pg_schema.admin.fetchval("SELECT to_regclass('tokens')") is None
        finally:
            await pg_schema.admin.execute("SELECT pg_advisory_unlock($1)", lock)
        await opening
        assert await pg_schema.admin.fetchval("SELECT to_regclass('tokens')") == "tokens"
        await store.close()


class TestPostgresListing:
    """Listing quirks of PostgreSQL text."""

    @pytest.mark.parametrize(
        "needle",
        [
            pytest.param("\x00", id="nul"),
            pytest.param("a\x00", id="nul-after-text"),
            pytest.param("\ud800", id="lone-surrogate"),
        ],
    )
    async def test_unstorable_filter_matches_nothing(
        self, pg_store: PostgresStore, needle: str
    ) -> None:
        """A filter PostgreSQL text cannot hold matches no name, instead of failing."""
        # PostgreSQL only: SQLite stores such text, and today matches "\x00" against every
        # name and fails "\ud800" with a UnicodeEncodeError (not a StoreError)
        await add(pg_store, "abc")
        assert await pg_store.list_tokens(ListQuery(name_contains=needle)) == (0, [])


class TestPostgresUnavailable:
    """Outages answer StoreUnavailable, write nothing half-way, and heal without a reopen."""

    @pytest.mark.parametrize(
        "url",
        [
            "postgresql://authsvc@db.internal?password=hunter2&dbname=tokens",
            "postgresql://authsvc:hunter2@db.internal:5433#frag?password=hunter2",
            "postgresql://db.internal/tokens?password=hunter2#x",
        ],
    )
    def test_display_name_never_holds_the_query(self, url: str) -> None:
        """Without a path the query (which may hold the password) is not the database:
        the name shown in messages, logs and backup manifests drops it."""
        shown = display_name(url)
        assert "hunter2" not in shown
        assert "?" not in shown
        assert shown.startswith("postgresql://db.internal")

    @pytest.mark.parametrize(
        ("template", "password"),
        [
            pytest.param("postgresql://authsvc:{pw}@{addr}/tokens", PASSWORD, id="in-userinfo"),
            pytest.param("postgres://authsvc:{pw}@{addr}/tokens", "p%40ss%2Fw0rd!", id="encoded"),
            pytest.param(
                "postgresql://authsvc@{addr}/tokens?sslmode=disable&password={pw}",
                PASSWORD,
                id="in-query",
            ),
        ],
    )
    async def test_unreachable_server(self, template: str, password: str) -> None:
        """Nothing listening: open is StoreUnavailable naming the server, never the password."""
        address = f"127.0.0.1:{free_port()}"
        store = PostgresStore(template.format(pw=password, addr=address))
        with pytest.raises(StoreUnavailable) as caught:
            await store.open()
        assert f"://{address}/tokens:" in str(caught.value)
        assert store.name.endswith(f"://{address}/tokens")
        for secret in {password, unquote(password)}:
            assert secret not in told(caught.value)
            assert secret not in store.name
        assert "authsvc@" not in str(caught.value)
        with pytest.raises(StoreUnavailable, match="not open"):
            await store.ping()

    async def test_silent_server_times_out(self, proxy: TcpProxy, pg_schema: PgSchema) -> None:
        """A server that accepts but never answers: open gives up with StoreUnavailable."""
        proxy.freeze()
        url = with_address(pg_schema.url, "127.0.0.1", proxy.port)
        with pytest.raises(StoreUnavailable, match="timed out"):
            await PostgresStore(url, connect_timeout=0.3).open()

    async def test_silent_network_mid_run(self, pg_schema: PgSchema, proxy: TcpProxy) -> None:
        """Queries into a network that went silent time out as StoreUnavailable; then recover."""
        url = with_address(pg_schema.url, "127.0.0.1", proxy.port)
        store = PostgresStore(url, connect_timeout=0.3, command_timeout=0.3)
        await store.open()
        token = await add(store, "patient")
        proxy.freeze()
        with pytest.raises(StoreUnavailable, match="timed out"):
            await store.get(token.id)
        with pytest.raises(StoreUnavailable):
            await store.delete(token.id)
        proxy.thaw()
        with contextlib.suppress(StoreUnavailable):  # a connection may still hold stale replies
            await store.get(token.id)
        assert await store.get(token.id) == token
        await store.close()

    async def test_killed_connections_recover(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """After the server kills every connection, one call may fail; the next one works."""
        token = await add(pg_store, "survivor")
        assert await pg_schema.terminate_backends() >= 1
        with contextlib.suppress(StoreUnavailable):
            assert await pg_store.get(token.id) == token
        assert await pg_store.get(token.id) == token
        await add(pg_store, "after")
        assert names(await pg_store.all_tokens()) == ["after", "survivor"]

    async def test_outage_then_recovery(self, pg_schema: PgSchema, proxy: TcpProxy) -> None:
        """Server gone: reads and writes fail unavailable, nothing lands; back: same store works."""
        url = with_address(pg_schema.url, "127.0.0.1", proxy.port, password=PASSWORD)
        store = PostgresStore(url, connect_timeout=1, command_timeout=2)
        await store.open()
        token = await add(store, "steady")
        await proxy.cut()
        lost = new_record("lost")
        failures: list[StoreUnavailable] = []
        for call in (
            lambda: store.get(token.id),
            lambda: store.insert(lost, digest_for("lost")),
            lambda: store.delete(token.id),
            lambda: store.update_permissions(token.id, frozenset({"Other"})),
            store.ping,
        ):
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            failures.append(caught.value)
        assert all(f"127.0.0.1:{proxy.port}" in str(f) for f in failures)
        assert not any(PASSWORD in told(f) for f in failures)
        await proxy.start()
        assert await store.get(token.id) == token
        assert await store.get(lost.id) is None
        assert await store.latest_change() == 1  # the first token's insert, nothing since
        await add(store, "after outage")
        await store.close()

    async def test_connection_lost_mid_write_is_rolled_back(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """A connection lost at the last step of a change is StoreUnavailable; none is kept."""
        token = await add(pg_store, "atomic")
        await PostgresBackend(pg_schema).refuse_change_log(
            "PERFORM pg_terminate_backend(pg_backend_pid())"
        )
        with pytest.raises(StoreUnavailable):
            await pg_store.update_permissions(token.id, frozenset({"Everything"}))
        with pytest.raises(StoreUnavailable):
            await pg_store.delete(token.id)
        await pg_schema.admin.execute("DROP TRIGGER fail ON changes")
        assert await pg_store.get(token.id) == token
        assert await pg_store.latest_change() == 1  # the insert's entry, nothing since

    async def test_name_clash_inside_server_is_name_taken(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """A name taken by a row the store never saw is still NameTaken (the index decides)."""
        # PostgreSQL only: the row is written in its schema (name_fold), and the race this
        # guards (a check, then an insert) is the one the SQLite store's write lock rules out
        await pg_schema.admin.execute(
            "INSERT INTO tokens (id, name, name_fold, digest, permissions, created_at,"
            " created_by) VALUES ('tok_1111111111111111', 'raced', 'raced', '\\x00', '{}', 1,"
            " 'cli')"
        )
        with pytest.raises(NameTaken, match="raced"):
            await add(pg_store, "raced")


class TestPostgresListen:
    """The listener's connection: lost, it comes back and says so; it refuses misuse."""

    async def test_reconnect_after_kill_means_drop_everything(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """A killed listener connection comes back, says None (drop all), then pushes again."""
        token = await add(pg_store, "after kill")  # before listening: its insert is not heard
        heard = Heard()
        await pg_store.listen(heard)
        await pg_schema.terminate_backends()
        await within(HANG, lambda: None in heard.calls, "the reconnect signal")
        assert heard.calls == [None]
        await within(HANG, lambda: pg_store.listening, "listening again")
        await pg_store.delete(token.id)
        await within(HANG, lambda: len(heard.calls) == 2, "a notification after the reconnect")
        assert heard.calls == [None, digest_for("after kill")]

    async def test_listener_waits_out_an_outage(self, pg_schema: PgSchema, proxy: TcpProxy) -> None:
        """With the server away the listener retries; once back, it says None and listens."""
        url = with_address(pg_schema.url, "127.0.0.1", proxy.port)
        store = PostgresStore(url, connect_timeout=1)
        await store.open()
        heard = Heard()
        await store.listen(heard)
        await proxy.cut()
        await within(HANG, lambda: not store.listening, "the loss to be noticed")
        await asyncio.sleep(0.3)  # a few failed reconnects
        assert heard.calls == []
        await proxy.start()
        await within(HANG, lambda: heard.calls == [None], "the reconnect signal")
        assert store.listening
        await store.close()
        assert not store.listening

    async def test_silent_network_is_noticed(self, pg_schema: PgSchema, proxy: TcpProxy) -> None:
        """A listener whose network went silent notices (keepalive), reconnects, says None."""
        url = with_address(pg_schema.url, "127.0.0.1", proxy.port)
        store = PostgresStore(url, connect_timeout=0.3, command_timeout=0.3, keepalive=0.1)
        await store.open()
        heard = Heard()
        await store.listen(heard)
        proxy.freeze()
        await within(HANG, lambda: not store.listening, "the silence to be noticed")
        proxy.thaw()
        await within(HANG, lambda: heard.calls == [None], "the reconnect signal")
        assert store.listening
        await store.close()

    async def test_failing_callback_does_not_stop_listening(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """A callback that raises is logged; the next change still arrives."""
        heard = Heard()

        def fragile(digest: bytes | None, changed_at: float | None) -> None:
            heard(digest, changed_at)
            if len(heard.calls) == 1:
                raise RuntimeError("callback bug")

        await pg_store.listen(fragile)
        await pg_schema.admin.execute(f"NOTIFY {CHANNEL}, '{'cd' * 32}'")
        await pg_schema.admin.execute(f"NOTIFY {CHANNEL}, '{'ab' * 32} 1700000000.25'")
        await within(HANG, lambda: len(heard.calls) == 2, "both notifications")
        assert heard.calls == [bytes.fromhex("cd" * 32), bytes.fromhex("ab" * 32)]
        assert heard.times == [None, 1700000000.25]
        assert pg_store.listening

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param("not hex", id="not-hex"),
            pytest.param("", id="empty"),
            pytest.param("ab" * 31, id="digest-too-short"),
            pytest.param("ab" * 33, id="digest-too-long"),
            pytest.param("AB" * 32, id="upper-case-hex"),
            pytest.param("ab" * 32 + " soon", id="time-not-a-number"),
            pytest.param("ab" * 32 + " nan", id="time-nan"),
            pytest.param("ab" * 32 + " 1e308", id="time-exponent"),
            pytest.param("ab" * 32 + " 1 2", id="extra-words"),
            pytest.param("x" * 7000, id="long-junk"),
        ],
    )
    async def test_junk_notifications_are_ignored(
        self, pg_store: PostgresStore, pg_schema: PgSchema, payload: str
    ) -> None:
        """Any role may NOTIFY the channel: junk neither drops caches nor stops listening
        (SECURITY 33); the real change sent after it arrives alone."""
        heard = Heard()
        await pg_store.listen(heard)
        await pg_schema.admin.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        await pg_schema.admin.execute(f"NOTIFY {CHANNEL}, '{'ef' * 32}'")
        await within(HANG, lambda: len(heard.calls) >= 1, "the real notification")
        await asyncio.sleep(0.05)  # anything delivered out of order would show up by now
        assert heard.calls == [bytes.fromhex("ef" * 32)]
        assert pg_store.listening

    async def test_listen_needs_an_open_store(self, pg_schema: PgSchema) -> None:
        """listen on a store that is not open is StoreUnavailable; twice is an error."""
        # PostgreSQL only: SQLite's listen does nothing, so it has nothing to refuse
        store = PostgresStore(pg_schema.url)
        with pytest.raises(StoreUnavailable, match="not open"):
            await store.listen(Heard())
        await store.open()
        await store.listen(Heard())
        with pytest.raises(RuntimeError, match="already listening"):
            await store.listen(Heard())
        await store.close()
        assert not store.listening
