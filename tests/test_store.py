"""Token store tests: the TokenStore contract for every backend, then each backend's specifics.

The ``store`` and ``new_store`` fixtures are parametrised by backend kind (STORE_KINDS): every
contract test runs against SQLite and against PostgreSQL. PostgreSQL tests get a schema of their
own in a database created for the test session (tests/pg.py); without a reachable server they
skip, and fail in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import unquote

import pytest

import authsvc
from authsvc.rules.tokens import TokenRecord, new_token_id
from authsvc.store import (
    ChangesPruned,
    ListQuery,
    NameTaken,
    StoreError,
    StoreUnavailable,
    TokenStore,
    Usage,
    open_store,
)
from authsvc.store.postgres import migrations
from authsvc.store.postgres.store import CHANNEL, PostgresStore
from authsvc.store.sqlite.store import SCHEMA_VERSION, SQLiteStore
from tests.pg import PgSchema, TcpProxy, with_address

STORE_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql"),
]
PROJECT_ROOT = Path(authsvc.__file__).resolve().parents[1]


class LoggedStore(TokenStore, Protocol):
    """A TokenStore with the change log both backends keep."""

    async def latest_change(self) -> int:
        """The change log's high-water mark."""

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[bytes, float]]]:
        """(high-water mark, (digest, changed_at) of changes after ``seq``)."""


def make_store(kind: str, location: str, **options: Any) -> LoggedStore:
    """A new, unopened store of ``kind`` at ``location`` (a file path or a PostgreSQL URL)."""
    if kind == "sqlite":
        return SQLiteStore(location, **options)
    if kind == "postgresql":
        return PostgresStore(location, **options)
    raise AssertionError(f"unknown store kind {kind}")


@pytest.fixture(params=STORE_KINDS)
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., LoggedStore]:
    """A factory of unopened stores sharing one backend; keywords go to the constructor."""
    kind: str = request.param
    if kind == "postgresql":
        location = cast(PgSchema, request.getfixturevalue("pg_schema")).url
    else:
        location = str(tmp_path / "data" / "tokens.sqlite3")
    return lambda **options: make_store(kind, location, **options)


@pytest.fixture
async def store(new_store: Callable[[], TokenStore]) -> AsyncIterator[TokenStore]:
    """An opened, empty store."""
    opened = new_store()
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An opened, empty SQLite store, for SQLite-only behaviour."""
    opened = SQLiteStore(str(tmp_path / "tokens.sqlite3"))
    await opened.open()
    yield opened
    await opened.close()


def record(name: str = "deploy-bot", **fields: Any) -> TokenRecord:
    """A token record with plausible defaults and a fresh id."""
    base = TokenRecord(
        id=new_token_id(),
        name=name,
        permissions=frozenset({"ViewThings"}),
        ip_filter=None,
        created_at=1_700_000_000.0,
        expires_at=None,
        created_by="cli",
    )
    return dataclasses.replace(base, **fields)


def digest_for(label: str) -> bytes:
    """A stable 32-byte stand-in for a secret's HMAC digest."""
    return hashlib.sha256(label.encode()).digest()


async def add(store: TokenStore, name: str, **fields: Any) -> TokenRecord:
    """Insert a token named ``name`` with digest ``digest_for(name)``."""
    new = record(name, **fields)
    await store.insert(new, digest_for(name))
    return new


def names(records: list[TokenRecord]) -> list[str]:
    """The names of ``records``, in order."""
    return [r.name for r in records]


class TestRoundTrip:
    """What goes in comes back out, field for field."""

    async def test_every_field_round_trips(self, store: TokenStore) -> None:
        """get and get_by_digest return exactly what insert stored."""
        full = record(
            "Ünïcode name ✓",
            permissions=frozenset({"ViewThings", "EditThings", "Admin"}),
            ip_filter="office",
            created_at=1_700_000_000.123456,
            expires_at=1_800_000_000.5,
            created_by="tok_0123456789abcdef",
            last_used_at=1_700_000_100.25,
            last_used_ip="2001:db8::1",
        )
        await store.insert(full, b"\x00\xff" * 16)
        assert await store.get(full.id) == full
        assert await store.get_by_digest(b"\x00\xff" * 16) == full

    async def test_optional_fields_round_trip_as_none(self, store: TokenStore) -> None:
        """A token without expiry, filter or use comes back with None in those fields."""
        plain = await add(store, "plain")
        got = await store.get(plain.id)
        assert got is not None
        assert (got.expires_at, got.ip_filter, got.last_used_at, got.last_used_ip) == (None,) * 4
        assert got.permissions == frozenset({"ViewThings"})

    async def test_unknown_lookups_return_none(self, store: TokenStore) -> None:
        """Lookups of ids and digests that were never stored return None."""
        await add(store, "someone")
        assert await store.get("tok_0000000000000000") is None
        assert await store.get_by_digest(digest_for("nobody")) is None

    async def test_data_survives_reopening(self, new_store: Callable[[], TokenStore]) -> None:
        """A token written by one store object is there after close and a fresh open."""
        first = new_store()
        await first.open()
        kept = await add(first, "kept")
        await first.close()
        second = new_store()
        await second.open()
        assert await second.get(kept.id) == kept
        await second.close()


class TestInsert:
    """insert keeps names unique and writes all or nothing."""

    async def test_name_taken_writes_nothing(self, store: TokenStore) -> None:
        """A second token with a used name raises NameTaken and leaves no trace."""
        first = await add(store, "ci")
        clash = record("ci")
        with pytest.raises(NameTaken, match="ci"):
            await store.insert(clash, digest_for("clash"))
        assert await store.get(clash.id) is None
        assert await store.get_by_digest(digest_for("clash")) is None
        assert await store.all_tokens() == [first]

    async def test_names_are_case_sensitive(self, store: TokenStore) -> None:
        """Names differing only in case are distinct tokens."""
        await add(store, "CI")
        await add(store, "ci")
        assert sorted(names(await store.all_tokens())) == ["CI", "ci"]

    async def test_name_is_free_again_after_delete(self, store: TokenStore) -> None:
        """Deleting a token frees its name for a new token."""
        old = await add(store, "reused")
        await store.delete(old.id)
        new = record("reused")
        await store.insert(new, digest_for("second"))
        assert await store.get(new.id) == new

    @pytest.mark.parametrize(
        ("same_id", "same_digest"),
        [
            pytest.param(True, False, id="duplicate-id"),
            pytest.param(False, True, id="duplicate-digest"),
        ],
    )
    async def test_other_collisions_are_store_errors(
        self, store: TokenStore, same_id: bool, same_digest: bool
    ) -> None:
        """A reused id or digest fails as a StoreError that is neither NameTaken nor outage."""
        first = await add(store, "first")
        other = record("other", id=first.id if same_id else new_token_id())
        with pytest.raises(StoreError) as caught:
            await store.insert(other, digest_for("first" if same_digest else "other"))
        assert not isinstance(caught.value, NameTaken | StoreUnavailable)
        assert await store.all_tokens() == [first]


class TestChanges:
    """update_permissions, replace_digest and delete."""

    async def test_update_permissions(self, store: TokenStore) -> None:
        """The new permission set is returned and stored; other fields stay as they were."""
        token = await add(store, "ops", ip_filter="office", expires_at=2e9)
        updated = await store.update_permissions(token.id, frozenset({"A", "B"}))
        expected = dataclasses.replace(token, permissions=frozenset({"A", "B"}))
        assert updated == expected
        assert await store.get(token.id) == expected

    async def test_replace_digest(self, store: TokenStore) -> None:
        """Rotation returns the old digest; only the new digest finds the token afterwards."""
        token = await add(store, "rotating")
        result = await store.replace_digest(token.id, digest_for("new secret"))
        assert result == (digest_for("rotating"), token)
        assert await store.get_by_digest(digest_for("rotating")) is None
        assert await store.get_by_digest(digest_for("new secret")) == token

    async def test_delete(self, store: TokenStore) -> None:
        """Delete returns the digest once; the token is gone by id and by digest."""
        token = await add(store, "doomed")
        keep = await add(store, "kept")
        assert await store.delete(token.id) == digest_for("doomed")
        assert await store.get(token.id) is None
        assert await store.get_by_digest(digest_for("doomed")) is None
        assert await store.delete(token.id) is None
        assert await store.all_tokens() == [keep]

    async def test_unknown_ids_return_none(self, store: TokenStore) -> None:
        """Every change to an id that does not exist returns None and changes nothing."""
        token = await add(store, "bystander")
        missing = "tok_ffffffffffffffff"
        assert await store.update_permissions(missing, frozenset({"X"})) is None
        assert await store.replace_digest(missing, digest_for("x")) is None
        assert await store.delete(missing) is None
        assert await store.all_tokens() == [token]


LISTED = [
    "50 percent",
    "50%_off",
    "a_b",
    "ab",
    "alpha",
    "back\\slash",
    "Beta",
    "Gamma",
    "gamma",
    "Ärger",
    "ärmel",
]


class TestListing:
    """list_tokens: filtering, sorting, paging and totals."""

    @pytest.fixture
    async def listed(self, store: TokenStore) -> TokenStore:
        """A store holding the LISTED names, inserted in scrambled order."""
        for name in reversed(LISTED):
            await add(store, name)
        return store

    @pytest.mark.parametrize(
        ("needle", "expected"),
        [
            pytest.param("ALPHA", ["alpha"], id="ascii-case-insensitive"),
            pytest.param("ÄR", ["Ärger", "ärmel"], id="unicode-case-insensitive"),
            pytest.param("%", ["50%_off"], id="percent-is-literal"),
            pytest.param("_", ["50%_off", "a_b"], id="underscore-is-literal"),
            pytest.param("a_", ["a_b"], id="underscore-is-no-wildcard"),
            pytest.param("\\", ["back\\slash"], id="backslash-is-literal"),
            pytest.param("0 p", ["50 percent"], id="substring-with-space"),
            pytest.param("", LISTED, id="empty-matches-all"),
            pytest.param("zzz", [], id="no-match"),
        ],
    )
    async def test_name_filter(self, listed: TokenStore, needle: str, expected: list[str]) -> None:
        """name_contains is a case-insensitive literal substring match."""
        total, page = await listed.list_tokens(ListQuery(name_contains=needle, limit=500))
        assert (total, names(page)) == (len(expected), expected)

    async def test_sort_by_name(self, listed: TokenStore) -> None:
        """Names sort case-insensitively, case-only twins by code point; desc is the mirror."""
        _, ascending = await listed.list_tokens(ListQuery(sort="name", order="asc"))
        _, descending = await listed.list_tokens(ListQuery(sort="name", order="desc"))
        assert names(ascending) == LISTED
        assert names(descending) == LISTED[::-1]
        assert names(await listed.all_tokens()) == LISTED

    async def test_sort_by_expiry(self, store: TokenStore) -> None:
        """Never-expiring tokens come last ascending, first descending; ties go by name."""
        for name, expires_at in [
            ("e", None),
            ("a", 200.0),
            ("d", 100.0),
            ("c", None),
            ("b", 100.0),
        ]:
            await add(store, name, expires_at=expires_at)
        _, ascending = await store.list_tokens(ListQuery(sort="expires_at", order="asc"))
        _, descending = await store.list_tokens(ListQuery(sort="expires_at", order="desc"))
        assert names(ascending) == ["b", "d", "a", "c", "e"]
        assert names(descending) == ["e", "c", "a", "d", "b"]

    @pytest.mark.parametrize(
        ("query", "total", "expected"),
        [
            pytest.param(ListQuery(limit=3), 11, LISTED[:3], id="first-page"),
            pytest.param(ListQuery(limit=3, offset=9), 11, LISTED[9:], id="short-last-page"),
            pytest.param(ListQuery(limit=3, offset=50), 11, [], id="beyond-the-end"),
            pytest.param(
                ListQuery(name_contains="a", limit=2, offset=1),
                7,
                ["ab", "alpha"],
                id="filtered-page",
            ),
        ],
    )
    async def test_paging_and_total(
        self, listed: TokenStore, query: ListQuery, total: int, expected: list[str]
    ) -> None:
        """limit and offset cut the page; total counts every match."""
        got_total, page = await listed.list_tokens(query)
        assert (got_total, names(page)) == (total, expected)

    async def test_bad_ordering_is_rejected(self, store: TokenStore) -> None:
        """An ordering outside the documented ones is a ValueError, not a silent default."""
        with pytest.raises(ValueError, match="sideways"):
            await store.list_tokens(ListQuery(order="sideways"))  # type: ignore[arg-type]  # deliberately invalid


class TestRecordUsage:
    """record_usage only ever moves last use forward."""

    async def test_usage_moves_forward_only(self, store: TokenStore) -> None:
        """Later uses replace earlier ones; older reports never overwrite newer ones."""
        token = await add(store, "used")
        await store.record_usage([Usage(token.id, 100.0, "10.0.0.1")])
        await store.record_usage([Usage(token.id, 50.0, "10.0.0.2")])
        got = await store.get(token.id)
        assert got is not None
        assert (got.last_used_at, got.last_used_ip) == (100.0, "10.0.0.1")
        await store.record_usage([Usage(token.id, 300.0, "10.0.0.3"), Usage(token.id, 200.0, "x")])
        got = await store.get(token.id)
        assert got is not None
        assert (got.last_used_at, got.last_used_ip) == (300.0, "10.0.0.3")

    async def test_batch_updates_several_tokens(self, store: TokenStore) -> None:
        """One batch updates every listed token and ignores ids that no longer exist."""
        one, two = await add(store, "one"), await add(store, "two")
        await store.record_usage(
            [
                Usage(one.id, 1.0, "::1"),
                Usage("tok_0000000000000000", 2.0, "::2"),
                Usage(two.id, 3.0, "192.0.2.7"),
            ]
        )
        got = {r.name: (r.last_used_at, r.last_used_ip) for r in await store.all_tokens()}
        assert got == {"one": (1.0, "::1"), "two": (3.0, "192.0.2.7")}

    async def test_empty_batch_changes_nothing(self, store: TokenStore) -> None:
        """An empty batch is accepted and leaves records untouched."""
        token = await add(store, "idle")
        await store.record_usage([])
        assert await store.get(token.id) == token


class TestLifecycle:
    """open, close and ping."""

    async def test_calls_before_open_and_after_close_are_unavailable(
        self, new_store: Callable[[], TokenStore]
    ) -> None:
        """A store that is not open refuses calls with StoreUnavailable."""
        fresh = new_store()
        with pytest.raises(StoreUnavailable, match="not open"):
            await fresh.get("tok_0000000000000000")
        await fresh.open()
        await fresh.ping()
        await fresh.close()
        await fresh.close()  # idempotent
        with pytest.raises(StoreUnavailable, match="closed"):
            await fresh.ping()
        with pytest.raises(StoreUnavailable, match="closed"):
            await fresh.insert(record(), digest_for("late"))


class TestOpenStore:
    """open_store picks the backend from the URL scheme."""

    @pytest.mark.parametrize(
        ("url", "kind"),
        [
            pytest.param("sqlite:///var/tokens.db", SQLiteStore, id="sqlite-url"),
            pytest.param("postgresql://u:pw@db:5432/authsvc", PostgresStore, id="postgresql-url"),
            pytest.param("postgres://db/authsvc", PostgresStore, id="postgres-alias"),
        ],
    )
    def test_scheme_selects_backend(self, url: str, kind: type[object]) -> None:
        """Each supported scheme gives an (unopened) store of its backend."""
        assert isinstance(open_store(url), kind)

    def test_unknown_scheme_is_rejected(self) -> None:
        """Any other scheme is a ValueError naming the supported ones."""
        with pytest.raises(ValueError, match="postgresql://"):
            open_store("mysql://db/authsvc")


class TestConcurrency:
    """Two store objects (as two processes would) writing the same data."""

    async def test_concurrent_inserts_all_succeed(
        self, new_store: Callable[..., LoggedStore]
    ) -> None:
        """2 x 50 simultaneous inserts from two stores all land."""
        first, second = new_store(), new_store()
        await asyncio.gather(first.open(), second.open())
        await asyncio.gather(
            *(add(first, f"first-{i}") for i in range(50)),
            *(add(second, f"second-{i}") for i in range(50)),
        )
        total, _ = await first.list_tokens(ListQuery())
        assert total == 100
        await asyncio.gather(first.close(), second.close())

    async def test_concurrent_rotations_lose_no_update(
        self, new_store: Callable[..., LoggedStore]
    ) -> None:
        """Interleaved rotations from two stores each see a distinct previous digest."""
        first, second = new_store(), new_store()
        await asyncio.gather(first.open(), second.open())
        token = await add(first, "hot")
        new_digests = [digest_for(f"rotation {i}") for i in range(40)]
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).replace_digest(token.id, d)
                for i, d in enumerate(new_digests)
            )
        )
        olds = [result[0] for result in results if result is not None]
        every = [digest_for("hot"), *new_digests]
        live = [d for d in every if await first.get_by_digest(d) is not None]
        assert len(set(olds)) == 40
        assert len(live) == 1  # exactly one digest finds the token: the last rotation's
        assert {*olds, *live} == set(every)
        await asyncio.gather(first.close(), second.close())

    async def test_concurrent_inserts_of_one_name(
        self, new_store: Callable[..., LoggedStore]
    ) -> None:
        """Of 10 simultaneous inserts of one name from two stores, exactly one wins."""
        first, second = new_store(), new_store()
        await asyncio.gather(first.open(), second.open())
        tries = [record("contested") for _ in range(10)]
        results = await asyncio.gather(
            *(
                (first if i % 2 else second).insert(r, digest_for(f"try {i}"))
                for i, r in enumerate(tries)
            ),
            return_exceptions=True,
        )
        assert sum(result is None for result in results) == 1
        assert all(isinstance(r, NameTaken) for r in results if r is not None)
        assert names(await first.all_tokens()) == ["contested"]
        await asyncio.gather(first.close(), second.close())


class TestChangeLog:
    """The change sequence other processes poll to invalidate their caches."""

    async def test_changes_are_logged_with_digests(
        self, new_store: Callable[..., LoggedStore]
    ) -> None:
        """update, rotate and delete each log the digest a cache may hold; insert logs nothing."""
        writer, poller = new_store(), new_store()
        await asyncio.gather(writer.open(), poller.open())
        start = await poller.latest_change()
        one, two = await add(writer, "one"), await add(writer, "two")
        assert await poller.changes_since(start) == (start, [])
        await writer.update_permissions(one.id, frozenset({"New"}))
        await writer.replace_digest(two.id, digest_for("two rotated"))
        await writer.delete(two.id)
        await writer.delete(two.id)  # no such token any more: nothing to log
        high, changes = await poller.changes_since(start)
        assert [digest for digest, _ in changes] == [
            digest_for("one"),
            digest_for("two"),
            digest_for("two rotated"),
        ]
        assert all(abs(changed_at - time.time()) < 60 for _, changed_at in changes)
        assert high == await poller.latest_change() == start + 3
        assert await poller.changes_since(high) == (high, [])
        await asyncio.gather(writer.close(), poller.close())

    async def test_pruned_changes_force_a_full_drop(
        self, new_store: Callable[..., LoggedStore]
    ) -> None:
        """A poller behind the retention window is told so; an up-to-date one carries on."""
        now = [1000.0]
        store = new_store(change_retention=60, clock=lambda: now[0])
        await store.open()
        token = await add(store, "churn")
        await store.update_permissions(token.id, frozenset({"A"}))
        stale = 0
        current = await store.latest_change()
        now[0] += 61
        await store.update_permissions(token.id, frozenset({"B"}))  # prunes the first entry
        with pytest.raises(ChangesPruned, match="no longer available"):
            await store.changes_since(stale)
        assert await store.changes_since(current) == (current + 1, [(digest_for("churn"), now[0])])
        with pytest.raises(ChangesPruned):
            await store.changes_since(current + 5)  # ahead of the log: the data was replaced
        await store.close()


# -- SQLite specifics -------------------------------------------------------------------------


def raw_connection(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A plain sqlite3 connection to ``path`` that is closed after use."""
    return contextlib.closing(sqlite3.connect(path, isolation_level=None))


def truncated_database(path: Path) -> None:
    """Write a real SQLite database at ``path``, then cut off most of it."""
    with raw_connection(path) as conn:
        conn.execute("CREATE TABLE filler (blob BLOB)")
        conn.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 500,)] * 100)
    with path.open("r+b") as file:
        file.truncate(8192)


class TestSQLiteFile:
    """The database file: location, mode, durability settings and schema version."""

    async def test_open_creates_directories_and_private_file(self, tmp_path: Path) -> None:
        """Missing parent directories are created and the file is readable by its owner only."""
        path = tmp_path / "a" / "b" / "tokens.sqlite3"
        created = SQLiteStore(str(path))
        await created.open()
        await created.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    async def test_durability_pragmas_in_effect(self, sqlite_store: SQLiteStore) -> None:
        """WAL and synchronous=FULL are what the live connection actually uses."""
        # the store's own connection is the only place per-connection PRAGMAs can be read
        settings = await sqlite_store._run(
            lambda c: tuple(
                c.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            )
        )
        assert settings == ("wal", 2, 5000, 1)  # synchronous 2 == FULL
        with raw_connection(Path(sqlite_store.path)) as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    async def test_newer_schema_is_refused_clearly(self, tmp_path: Path) -> None:
        """A database from a newer authsvc is refused with an upgrade hint, not touched."""
        path = tmp_path / "future.sqlite3"
        with raw_connection(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        future = SQLiteStore(str(path))
        with pytest.raises(StoreError, match="newer than this authsvc supports") as caught:
            await future.open()
        assert not isinstance(caught.value, StoreUnavailable)
        assert f"version {SCHEMA_VERSION + 1}" in str(caught.value)
        with raw_connection(path) as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


class TestSQLiteUnavailable:
    """Unreadable or locked databases fail as StoreUnavailable and recover by themselves."""

    @pytest.mark.parametrize(
        ("setup", "cause"),
        [
            pytest.param(lambda p: p.mkdir(), "unable to open", id="path-is-a-directory"),
            pytest.param(
                lambda p: p.write_bytes(b"garbage, not sqlite " * 200),
                "not a database",
                id="garbage-file",
            ),
            pytest.param(truncated_database, "malformed", id="truncated-database"),
        ],
    )
    async def test_unreadable_file(
        self, tmp_path: Path, setup: Callable[[Path], object], cause: str
    ) -> None:
        """Opening something that is not a usable database names the file and the cause."""
        path = tmp_path / "tokens.sqlite3"
        setup(path)
        broken = SQLiteStore(str(path))
        with pytest.raises(StoreUnavailable, match=cause) as caught:
            await broken.open()
        assert str(path) in str(caught.value)
        with pytest.raises(StoreUnavailable, match="not open"):
            await broken.get("tok_0000000000000000")

    async def test_parent_is_a_file(self, tmp_path: Path) -> None:
        """A path below a regular file is StoreUnavailable, not an unhandled OSError."""
        (tmp_path / "file").write_text("")
        with pytest.raises(StoreUnavailable, match="file"):
            await SQLiteStore(str(tmp_path / "file" / "tokens.sqlite3")).open()

    async def test_locked_database_then_recovery(self, tmp_path: Path) -> None:
        """A write blocked past busy_timeout is StoreUnavailable; it works once the lock goes."""
        path = tmp_path / "tokens.sqlite3"
        locked = SQLiteStore(str(path), busy_timeout_ms=50)
        await locked.open()
        blocked = record("blocked")
        with raw_connection(path) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match="database is locked") as caught:
                await locked.insert(blocked, digest_for("blocked"))
            assert str(path) in str(caught.value)
            other.execute("ROLLBACK")
        assert await locked.get(blocked.id) is None
        await locked.insert(blocked, digest_for("blocked"))
        assert await locked.get(blocked.id) == blocked
        await locked.close()

    @pytest.mark.parametrize(
        ("code", "outcome"),
        [
            pytest.param(sqlite3.SQLITE_BUSY, "found", id="busy-falls-back-to-the-worker"),
            pytest.param(sqlite3.SQLITE_LOCKED, "found", id="locked-falls-back"),
            pytest.param(sqlite3.SQLITE_IOERR, "unavailable", id="io-error-is-unavailable"),
        ],
    )
    async def test_event_loop_read_errors(
        self, sqlite_store: SQLiteStore, code: int, outcome: str
    ) -> None:
        """get_by_digest reads on the event loop; a busy file sends it to the worker thread
        (which may wait out busy_timeout), any other error is StoreUnavailable."""
        token = await add(sqlite_store, "reader")

        class Failing:
            def execute(self, *_: object) -> None:
                error = sqlite3.OperationalError("simulated")
                error.sqlite_errorcode = code
                raise error

            def close(self) -> None:
                pass

        real, sqlite_store._reader = sqlite_store._reader, Failing()  # type: ignore[assignment]
        try:
            if outcome == "found":
                assert await sqlite_store.get_by_digest(digest_for("reader")) == token
            else:
                with pytest.raises(StoreUnavailable, match="simulated"):
                    await sqlite_store.get_by_digest(digest_for("reader"))
        finally:
            sqlite_store._reader = real

    async def test_failed_write_is_rolled_back(self, sqlite_store: SQLiteStore) -> None:
        """When the last step of a change fails, none of the change is kept."""
        token = await add(sqlite_store, "atomic")
        with raw_connection(Path(sqlite_store.path)) as conn:
            conn.execute(
                "CREATE TRIGGER fail BEFORE INSERT ON changes BEGIN SELECT RAISE(ABORT, 'no'); END"
            )
        with pytest.raises(StoreError):
            await sqlite_store.update_permissions(token.id, frozenset({"Everything"}))
        with pytest.raises(StoreError):
            await sqlite_store.delete(token.id)
        assert await sqlite_store.get(token.id) == token
        assert await sqlite_store.latest_change() == 0


CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from authsvc.store.sqlite.store import SQLiteStore
    from authsvc.rules.tokens import TokenRecord, new_token_id

    async def main() -> None:
        store = SQLiteStore(sys.argv[1])
        await store.open()
        for i in range(100_000):
            token = TokenRecord(new_token_id(), f"t{i}", frozenset({"P"}), None, 1.0, None, "cli")
            await store.insert(token, os.urandom(32))
            print(token.id, flush=True)

    asyncio.run(main())
    """
)


async def stored_ids(path: Path) -> set[str]:
    """The ids of every token in the SQLite store at ``path``."""
    survivor = SQLiteStore(str(path))
    await survivor.open()
    try:
        return {r.id for r in await survivor.all_tokens()}
    finally:
        await survivor.close()


class TestSQLiteKill9:
    """Acknowledged inserts survive the process being killed."""

    def test_every_acknowledged_insert_survives_sigkill(self, tmp_path: Path) -> None:
        """Every id the child printed after insert returned is in the database after kill -9."""
        path = tmp_path / "tokens.sqlite3"
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        assert child.stderr is not None
        printed: list[str] = []
        try:
            while len(printed) < 200:
                line = child.stdout.readline()
                assert line, f"child stopped early: {child.stderr.read()}"
                printed.append(line.strip())
            child.send_signal(signal.SIGKILL)
            child.wait()
            # lines already in the pipe were printed before the kill: they count too
            printed += [line.strip() for line in child.stdout if line.endswith("\n")]
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        assert set(printed) <= asyncio.run(stored_ids(path))
        assert len(printed) >= 200


# -- PostgreSQL specifics ---------------------------------------------------------------------

PASSWORD = "hunter2-Sup3r-secret"


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def told(exc: BaseException) -> str:
    """Everything a log line with the traceback of ``exc`` would show."""
    return "".join(traceback.format_exception(exc))


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until ``check()`` holds; fail after a generous bound (a hang, not slowness)."""
    try:
        async with asyncio.timeout(10):
            while not check():  # noqa: ASYNC110 - the conditions belong to other objects
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"gave up waiting for {what}")


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


class TestPostgresSchema:
    """Versioned migrations: recorded, refused when too new, safe when run at once."""

    async def test_version_is_recorded(self, pg_store: PostgresStore, pg_schema: PgSchema) -> None:
        """After open, the schema table holds exactly the current version."""
        versions = await pg_schema.admin.fetchval("SELECT array_agg(version) FROM authsvc_schema")
        assert versions == [migrations.SCHEMA_VERSION]

    async def test_newer_schema_is_refused_clearly(self, pg_schema: PgSchema) -> None:
        """A database from a newer authsvc is refused with an upgrade hint, not touched."""
        future = migrations.SCHEMA_VERSION + 1
        await pg_schema.admin.execute("CREATE TABLE authsvc_schema (version integer NOT NULL)")
        await pg_schema.admin.execute("INSERT INTO authsvc_schema VALUES ($1)", future)
        store = PostgresStore(pg_schema.url)
        with pytest.raises(StoreError, match="newer than this authsvc supports") as caught:
            await store.open()
        assert not isinstance(caught.value, StoreUnavailable)
        assert f"database schema version {future} " in str(caught.value)
        assert f"({migrations.SCHEMA_VERSION}); upgrade authsvc" in str(caught.value)
        assert await pg_schema.admin.fetchval("SELECT to_regclass('tokens')") is None
        with pytest.raises(StoreUnavailable, match="not open"):
            await store.get("tok_0000000000000000")

    async def test_concurrent_migrations(self, pg_schema: PgSchema) -> None:
        """Three stores opening an empty database at once all start; the schema is made once."""
        stores = [PostgresStore(pg_schema.url) for _ in range(3)]
        await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(add(s, f"from-{i}") for i, s in enumerate(stores)))
        assert names(await stores[0].all_tokens()) == ["from-0", "from-1", "from-2"]
        count = await pg_schema.admin.fetchval("SELECT count(*) FROM authsvc_schema")
        assert count == 1
        await asyncio.gather(*(s.close() for s in stores))

    async def test_failed_migration_leaves_nothing(self, pg_schema: PgSchema) -> None:
        """A migration that fails halfway is rolled back whole: no tables, no version."""
        await pg_schema.admin.execute("CREATE TABLE changes (unrelated text)")  # step 1 clashes
        with pytest.raises(StoreUnavailable, match="changes"):
            await PostgresStore(pg_schema.url).open()
        assert await pg_schema.admin.fetchval("SELECT to_regclass('tokens')") is None
        assert await pg_schema.admin.fetchval("SELECT to_regclass('authsvc_schema')") is None


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
        await add(pg_store, "abc")
        assert await pg_store.list_tokens(ListQuery(name_contains=needle)) == (0, [])


class TestPostgresUnavailable:
    """Outages answer StoreUnavailable, write nothing half-way, and heal without a reopen."""

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
        address = f"127.0.0.1:{closed_port()}"
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
        lost = record("lost")
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
        assert await store.latest_change() == 0
        await add(store, "after outage")
        await store.close()

    @pytest.mark.parametrize(
        "failure",
        [
            pytest.param("RAISE EXCEPTION 'refused by trigger'", id="server-error"),
            pytest.param("PERFORM pg_terminate_backend(pg_backend_pid())", id="connection-lost"),
        ],
    )
    async def test_failed_write_is_rolled_back(
        self, pg_store: PostgresStore, pg_schema: PgSchema, failure: str
    ) -> None:
        """When the last step of a change fails, none of the change is kept."""
        token = await add(pg_store, "atomic")
        await pg_schema.admin.execute(
            "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN {failure}; RETURN NEW; END $$;"
            " CREATE TRIGGER fail BEFORE INSERT ON changes"
            " FOR EACH ROW EXECUTE FUNCTION fail()"
        )
        with pytest.raises(StoreUnavailable):
            await pg_store.update_permissions(token.id, frozenset({"Everything"}))
        with pytest.raises(StoreUnavailable):
            await pg_store.delete(token.id)
        await pg_schema.admin.execute("DROP TRIGGER fail ON changes")
        assert await pg_store.get(token.id) == token
        assert await pg_store.latest_change() == 0

    async def test_name_clash_inside_server_is_name_taken(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """A name taken by a row the store never saw is still NameTaken (the index decides)."""
        await pg_schema.admin.execute(
            "INSERT INTO tokens (id, name, name_fold, digest, permissions, created_at,"
            " created_by) VALUES ('tok_1111111111111111', 'raced', 'raced', '\\x00', '{}', 1,"
            " 'cli')"
        )
        with pytest.raises(NameTaken, match="raced"):
            await add(pg_store, "raced")


class Heard:
    """What a listen() callback received."""

    def __init__(self) -> None:
        self.calls: list[bytes | None] = []
        self.times: list[float | None] = []

    def __call__(self, digest: bytes | None, changed_at: float | None) -> None:
        self.calls.append(digest)
        self.times.append(changed_at)


class TestPostgresListen:
    """Changes are pushed to listeners as they commit; lost connections come back."""

    async def test_changes_from_another_instance_are_pushed(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """update, rotate and delete through a second store each reach the listener."""
        heard = Heard()
        await pg_store.listen(heard)
        assert pg_store.listening
        other = PostgresStore(pg_schema.url)
        await other.open()
        token = await add(other, "watched")
        await other.record_usage([Usage(token.id, 5.0, "::1")])  # neither of these notifies
        await other.update_permissions(token.id, frozenset({"More"}))
        await other.replace_digest(token.id, digest_for("rotated"))
        await other.delete(token.id)
        expected = [digest_for("watched"), digest_for("watched"), digest_for("rotated")]
        await eventually(lambda: len(heard.calls) >= 3, "three notifications")
        assert heard.calls == expected
        assert all(t is not None and abs(t - time.time()) < 60 for t in heard.times)
        await other.close()

    async def test_reconnect_after_kill_means_drop_everything(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """A killed listener connection comes back, says None (drop all), then pushes again."""
        heard = Heard()
        await pg_store.listen(heard)
        token = await add(pg_store, "after kill")
        await pg_schema.terminate_backends()
        await eventually(lambda: None in heard.calls, "the reconnect signal")
        assert heard.calls == [None]
        await eventually(lambda: pg_store.listening, "listening again")
        await pg_store.delete(token.id)
        await eventually(lambda: len(heard.calls) == 2, "a notification after the reconnect")
        assert heard.calls == [None, digest_for("after kill")]

    async def test_listener_waits_out_an_outage(self, pg_schema: PgSchema, proxy: TcpProxy) -> None:
        """With the server away the listener retries; once back, it says None and listens."""
        url = with_address(pg_schema.url, "127.0.0.1", proxy.port)
        store = PostgresStore(url, connect_timeout=1)
        await store.open()
        heard = Heard()
        await store.listen(heard)
        await proxy.cut()
        await eventually(lambda: not store.listening, "the loss to be noticed")
        await asyncio.sleep(0.3)  # a few failed reconnects
        assert heard.calls == []
        await proxy.start()
        await eventually(lambda: heard.calls == [None], "the reconnect signal")
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
        await eventually(lambda: not store.listening, "the silence to be noticed")
        proxy.thaw()
        await eventually(lambda: heard.calls == [None], "the reconnect signal")
        assert store.listening
        await store.close()

    async def test_bad_payload_and_failing_callback(
        self, pg_store: PostgresStore, pg_schema: PgSchema
    ) -> None:
        """An unreadable payload means None; a callback that raises does not stop listening."""
        heard = Heard()

        def fragile(digest: bytes | None, changed_at: float | None) -> None:
            heard(digest, changed_at)
            if len(heard.calls) == 1:
                raise RuntimeError("callback bug")

        await pg_store.listen(fragile)
        await pg_schema.admin.execute(f"NOTIFY {CHANNEL}, 'not hex'")
        await pg_schema.admin.execute(f"NOTIFY {CHANNEL}, '{'ab' * 32}'")
        await eventually(lambda: len(heard.calls) == 2, "both notifications")
        assert heard.calls == [None, bytes.fromhex("ab" * 32)]
        assert pg_store.listening

    async def test_listen_needs_an_open_store(self, pg_schema: PgSchema) -> None:
        """listen on a store that is not open is StoreUnavailable; twice is an error."""
        store = PostgresStore(pg_schema.url)
        with pytest.raises(StoreUnavailable, match="not open"):
            await store.listen(Heard())
        await store.open()
        await store.listen(Heard())
        with pytest.raises(RuntimeError, match="already listening"):
            await store.listen(Heard())
        await store.close()
        assert not store.listening
