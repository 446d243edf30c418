"""PostgreSQL for tests: a fresh database per test session, a fresh schema per test.

Load it with ``pytest_plugins = ("tests.pg",)``. The server is ``$AUTHSVC_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``; the user must be allowed to create
databases). The first test that needs it creates ``authsvc_test_<random>`` (UTF-8, "C" locale,
so nothing can lean on a database locale), and the end of the session drops it. Where the
server cannot be reached, :func:`tests.required.unavailable` skips the test (fails it in CI).

Fixtures:

- ``pg_schema`` → :class:`PgSchema`: an empty schema of its own for one test, a store URL that
  selects it (``search_path``) and names its connections (``application_name``), and an admin
  connection to it.
- :class:`TcpProxy` stands between a store and the server, so a test can take the server away
  and bring it back (an outage, as far as the store can tell) without stopping it.

Test modules import the helpers before pytest loads this module as a plugin, too late for
assertion rewriting; the marker PYTEST_DONT_REWRITE says that is expected (no asserts here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # asyncpg ships no type information
import pytest

from authsvc.store.postgres.store import Connection, display_name
from tests.required import unavailable

PG_ENV = "AUTHSVC_TEST_PG"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# everything that means "no usable server here"
_NO_SERVER = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query string."""
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query)), **params}
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_address(url: str, host: str, port: int, password: str | None = None) -> str:
    """``url`` reaching the server at ``host:port``, optionally with ``password``."""
    parts = urlsplit(url)
    user = parts.username or ""
    credentials = f"{user}:{password}@" if password is not None else f"{user}@" if user else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}{host}:{port}"))


async def connect(url: str) -> Connection:
    """A plain asyncpg connection (the caller closes it)."""
    return cast(Connection, await asyncpg.connect(url, timeout=5))


@dataclass(frozen=True, slots=True)
class PgSession:
    """The session's test database, or why there is none."""

    url: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PgSchema:
    """One test's schema: ``url`` for stores, ``admin`` to look behind their back."""

    url: str
    name: str
    admin: Connection

    async def terminate_backends(self) -> int:
        """Kill every server connection of the stores under test; how many there were."""
        killed = await self.admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND pid <> pg_backend_pid()",
            self.name,
        )
        return cast(int, killed)


async def _create_database(server: str, name: str) -> None:
    conn = await connect(server)
    try:
        await conn.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
            " LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    finally:
        await conn.close()


async def _drop_database(server: str, name: str) -> None:
    conn = await connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_session() -> Iterator[PgSession]:
    """Create the session's database on first use; drop it when the session ends."""
    server = os.environ.get(PG_ENV, DEFAULT_SERVER)
    name = f"authsvc_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_create_database(server, name))
    except _NO_SERVER as exc:
        yield PgSession(
            None,
            f"PostgreSQL is not reachable at {display_name(server)} ({exc}): set {PG_ENV}",
        )
        return
    try:
        yield PgSession(with_database(server, name))
    finally:
        asyncio.run(_drop_database(server, name))


@pytest.fixture
async def pg_schema(pg_session: PgSession) -> AsyncIterator[PgSchema]:
    """A new, empty schema for this test (skip, or fail in CI, without a server)."""
    if pg_session.url is None:
        unavailable(pg_session.reason)
    name = f"t_{secrets.token_hex(6)}"
    admin = await connect(pg_session.url)
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        await admin.execute(f'SET search_path TO "{name}"')
        yield PgSchema(
            with_query(pg_session.url, search_path=name, application_name=name), name, admin
        )
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await admin.close()


@dataclass(slots=True)
class TcpProxy:
    """A TCP forwarder to the server, to stage network faults.

    :meth:`cut` is a dead server (connections drop, new ones are refused) until :meth:`start`;
    :meth:`freeze` is a silent network (connections stay up, nothing gets through) until
    :meth:`thaw`.
    """

    target_host: str
    target_port: int
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def to(cls, url: str) -> TcpProxy:
        """A proxy to the server of ``url``."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def freeze(self) -> None:
        """Stop forwarding bytes, in both directions, on every connection, old and new."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again (what was held back is delivered)."""
        self._flowing.set()

    async def start(self) -> int:
        """Listen (on the same port as before, if any) and forward; the port."""
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, as a dead server would."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            for each in (writer, up_writer):
                each.transport.abort()
                self._writers.discard(each)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
