"""Stores for tests: the ``store_url`` fixture every store-agnostic test is parametrised with,
the fixtures of the store contract suite, and helpers to fill and inspect stores.

Fixtures (one per store kind, STORE_KINDS):

- ``store_url``: a fresh, empty store: an SQLite file, or a PostgreSQL schema of its own;
- ``backend`` → :class:`Backend`: that store's kind, what the protocol leaves to the backend
  (``exists()`` before ``open``, whether ``listen`` pushes, the display name), and a way in
  behind the stores' backs for what the protocol can neither stage nor show;
- ``new_store``: a factory of unopened stores on it (keywords go to the backend's
  constructor), each closed at teardown;
- ``store``: one of them, opened.

Test modules import the helpers before pytest loads this module as a plugin, too late for
assertion rewriting; the marker PYTEST_DONT_REWRITE says that is expected (no asserts here).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import pytest

from authsvc.rules.tokens import TokenRecord
from authsvc.store import StoreError, StoreUnavailable, TokenStore, open_store
from authsvc.store.postgres import migrations
from authsvc.store.postgres.store import PostgresStore
from authsvc.store.sqlite.store import SCHEMA_VERSION, SQLiteStore
from tests.factories import new_record
from tests.pg import PgSchema

STORE_KINDS = ("sqlite", "postgresql")
_SQLITE = "sqlite:///"

#: A new, unopened store; keywords go to the backend's constructor.
StoreFactory = Callable[..., TokenStore]


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: an SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'authsvc.db'}"
    schema = request.getfixturevalue("pg_schema")
    return str(schema.url)


class Backend(Protocol):
    """One store kind under test, and a way in behind its stores' backs."""

    @property
    def url(self) -> str:
        """The store URL (as ``open_store`` takes it)."""

    @property
    def expected_name(self) -> str:
        """What ``TokenStore.name`` must say: the file, or ``postgresql://host:port/db``."""

    @property
    def schema_version(self) -> int:
        """The backend's own schema version constant."""

    @property
    def exists_before_open(self) -> bool:
        """What ``exists()`` answers before any store was opened on it."""

    @property
    def pushes(self) -> bool:
        """Whether ``listen`` pushes changes (else they are only in the change log)."""

    def new_store(self, **options: Any) -> TokenStore:
        """A new, unopened store: ``open_store(url)``, or with constructor ``options``."""

    async def execute(self, sql: str) -> None:
        """Run one statement behind the stores' backs."""

    async def schema_objects(self) -> set[str]:
        """The names of the tables and indexes in the store (none before it exists)."""

    async def recorded_versions(self) -> list[int]:
        """Every schema version the store records (one, once it is open)."""

    async def stamp_schema_version(self, version: int) -> None:
        """Make the empty store look like one a newer authsvc (``version``) created."""

    async def refuse_change_log(self) -> type[StoreError]:
        """Make every change-log write fail; the error the stores then raise."""


def raw_connection(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain sqlite3 connection to ``path`` that is closed after use."""
    return contextlib.closing(sqlite3.connect(path, isolation_level=None))


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection holding the SQLite database's write lock until it is closed."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@dataclass(frozen=True, slots=True)
class SQLiteBackend:
    """An SQLite file; behind the store's back is a plain sqlite3 connection."""

    url: str
    schema_version: int = SCHEMA_VERSION
    exists_before_open: bool = False  # no file until a store opens it
    pushes: bool = False  # other processes sharing the file poll its change log

    @property
    def path(self) -> Path:
        """The database file."""
        return Path(self.url.removeprefix(_SQLITE))

    @property
    def expected_name(self) -> str:
        """The file path."""
        return str(self.path)

    def new_store(self, **options: Any) -> TokenStore:
        """``open_store(url)``, or an :class:`SQLiteStore` with ``options``."""
        return SQLiteStore(str(self.path), **options) if options else open_store(self.url)

    async def execute(self, sql: str) -> None:
        """Run ``sql`` on a connection of its own."""
        with raw_connection(self.path) as conn:
            conn.execute(sql)

    async def schema_objects(self) -> set[str]:
        """Everything in ``sqlite_master``; nothing while there is no file."""
        if not self.path.exists():
            return set()
        with raw_connection(self.path) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}

    async def recorded_versions(self) -> list[int]:
        """``PRAGMA user_version``."""
        with raw_connection(self.path) as conn:
            return [int(conn.execute("PRAGMA user_version").fetchone()[0])]

    async def stamp_schema_version(self, version: int) -> None:
        """Set ``PRAGMA user_version`` (this creates the file, with nothing in it)."""
        await self.execute(f"PRAGMA user_version = {version:d}")

    async def refuse_change_log(self) -> type[StoreError]:
        """A trigger aborting every insert into ``changes`` (a constraint-like failure)."""
        await self.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON changes BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        return StoreError


@dataclass(frozen=True, slots=True)
class PostgresBackend:
    """A PostgreSQL schema of its own; behind the store's back is the schema's admin
    connection."""

    schema: PgSchema
    schema_version: int = migrations.SCHEMA_VERSION
    exists_before_open: bool = False  # no tables in the schema until a store opens it
    pushes: bool = True  # LISTEN/NOTIFY

    @property
    def url(self) -> str:
        """The schema's URL (with ``search_path`` and ``application_name`` in its query)."""
        return self.schema.url

    @property
    def expected_name(self) -> str:
        """``postgresql://host:port/db``: the URL without user, password or query."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

    def new_store(self, **options: Any) -> TokenStore:
        """``open_store(url)``, or a :class:`PostgresStore` with ``options``."""
        return PostgresStore(self.url, **options) if options else open_store(self.url)

    async def execute(self, sql: str) -> None:
        """Run ``sql`` on the admin connection."""
        await self.schema.admin.execute(sql)

    async def schema_objects(self) -> set[str]:
        """Every relation (table, index, sequence) in the schema."""
        names = await self.schema.admin.fetchval(
            "SELECT array_agg(relname) FROM pg_class WHERE relnamespace = $1::regnamespace",
            self.schema.name,
        )
        return set(cast(list[str], names or []))

    async def recorded_versions(self) -> list[int]:
        """Every row of ``authsvc_schema``."""
        versions = await self.schema.admin.fetchval("SELECT array_agg(version) FROM authsvc_schema")
        return cast(list[int], versions or [])

    async def stamp_schema_version(self, version: int) -> None:
        """Create ``authsvc_schema`` holding ``version``."""
        await self.execute("CREATE TABLE authsvc_schema (version integer NOT NULL)")
        await self.schema.admin.execute("INSERT INTO authsvc_schema VALUES ($1)", version)

    async def refuse_change_log(
        self, failure: str = "RAISE EXCEPTION 'refused by trigger'"
    ) -> type[StoreError]:
        """A trigger running ``failure`` (PL/pgSQL) before every insert into ``changes``:
        the server refuses the statement, so the store answers StoreUnavailable."""
        await self.execute(
            "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN {failure}; RETURN NEW; END $$;"
            " CREATE TRIGGER fail BEFORE INSERT ON changes"
            " FOR EACH ROW EXECUTE FUNCTION fail()"
        )
        return StoreUnavailable


@pytest.fixture
def backend(store_url: str, request: pytest.FixtureRequest) -> Backend:
    """The store kind of ``store_url``, with its way in."""
    if store_url.startswith(_SQLITE):
        return SQLiteBackend(store_url)
    return PostgresBackend(request.getfixturevalue("pg_schema"))


@pytest.fixture
async def new_store(backend: Backend) -> AsyncIterator[StoreFactory]:
    """A factory of unopened stores sharing one backend; all closed at teardown."""
    made: list[TokenStore] = []

    def make(**options: Any) -> TokenStore:
        made.append(backend.new_store(**options))
        return made[-1]

    yield make
    for each in made:
        with contextlib.suppress(StoreError):
            await each.close()


@pytest.fixture
async def store(new_store: StoreFactory) -> TokenStore:
    """An opened, empty store (closed at teardown with every other ``new_store``)."""
    opened = new_store()
    await opened.open()
    return opened


def digest_for(label: str) -> bytes:
    """A stable 32-byte stand-in for a secret's HMAC digest."""
    return hashlib.sha256(label.encode()).digest()


async def add(store: TokenStore, name: str, **fields: Any) -> TokenRecord:
    """Insert a token named ``name`` (fresh id) with digest ``digest_for(name)``."""
    new = new_record(name, **fields)
    await store.insert(new, digest_for(name))
    return new


def names(records: list[TokenRecord]) -> list[str]:
    """The names of ``records``, in order."""
    return [r.name for r in records]


@dataclass(slots=True)
class Heard:
    """A ``listen`` callback that records what it was told."""

    calls: list[bytes | None] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)

    def __call__(self, digest: bytes | None, changed_at: float | None) -> None:
        self.calls.append(digest)
        self.times.append(changed_at)
