"""Token store tests: the TokenStore contract for every backend, then SQLite specifics.

The ``store`` fixture is parametrised by backend kind; add ``"postgresql"`` to STORE_KINDS
(and a branch in ``make_store``) to run the contract tests against it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import authsvc
from authsvc.store import (
    ListQuery,
    NameTaken,
    StoreError,
    StoreUnavailable,
    TokenStore,
    Usage,
    open_store,
)
from authsvc.store.sqlite import SCHEMA_VERSION, ChangesPruned, SQLiteStore
from authsvc.tokens import TokenRecord, new_token_id

STORE_KINDS = [pytest.param("sqlite", id="sqlite")]
PROJECT_ROOT = Path(authsvc.__file__).resolve().parents[1]


def make_store(kind: str, tmp_path: Path) -> TokenStore:
    """A new, unopened store of ``kind``; every call for one tmp_path shares the same data."""
    if kind == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'data' / 'tokens.sqlite3'}")
    raise AssertionError(f"unknown store kind {kind}")


@pytest.fixture(params=STORE_KINDS)
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], TokenStore]:
    """A factory of unopened stores sharing one backend."""
    kind: str = request.param
    return lambda: make_store(kind, tmp_path)


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
        """get, get_by_digest and digest_of return exactly what insert stored."""
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
        assert await store.digest_of(full.id) == b"\x00\xff" * 16

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
        assert await store.digest_of("tok_0000000000000000") is None

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
        assert await store.digest_of(token.id) == digest_for("new secret")

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
    "50 percent", "50%_off", "a_b", "ab", "alpha", "back\\slash",
    "Beta", "Gamma", "gamma", "Ärger", "ärmel",
]  # fmt: skip


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
            ("e", None), ("a", 200.0), ("d", 100.0), ("c", None), ("b", 100.0),
        ]:  # fmt: skip
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
            [Usage(one.id, 1.0, "::1"), Usage("tok_0000000000000000", 2.0, "::2"),
             Usage(two.id, 3.0, "192.0.2.7")]
        )  # fmt: skip
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


class TestSQLiteConcurrency:
    """Two store objects (as two processes would) writing the same file."""

    async def test_concurrent_inserts_all_succeed(self, tmp_path: Path) -> None:
        """2 x 50 simultaneous inserts from two stores on one file all land."""
        path = str(tmp_path / "tokens.sqlite3")
        first, second = SQLiteStore(path), SQLiteStore(path)
        await asyncio.gather(first.open(), second.open())
        await asyncio.gather(
            *(add(first, f"first-{i}") for i in range(50)),
            *(add(second, f"second-{i}") for i in range(50)),
        )
        total, _ = await first.list_tokens(ListQuery())
        assert total == 100
        await asyncio.gather(first.close(), second.close())

    async def test_concurrent_rotations_lose_no_update(self, tmp_path: Path) -> None:
        """Interleaved rotations from two stores each see a distinct previous digest."""
        path = str(tmp_path / "tokens.sqlite3")
        first, second = SQLiteStore(path), SQLiteStore(path)
        await asyncio.gather(first.open(), second.open())
        token = await add(first, "hot")
        new_digests = [digest_for(f"rotation {i}") for i in range(40)]
        results = await asyncio.gather(
            *((first if i % 2 else second).replace_digest(token.id, d)
              for i, d in enumerate(new_digests))
        )  # fmt: skip
        olds = [result[0] for result in results if result is not None]
        final = await first.digest_of(token.id)
        assert len(set(olds)) == 40
        assert {*olds, final} == {digest_for("hot"), *new_digests}
        await asyncio.gather(first.close(), second.close())


class TestSQLiteChangeLog:
    """The change sequence other processes poll to invalidate their caches."""

    async def test_changes_are_logged_with_digests(self, tmp_path: Path) -> None:
        """update, rotate and delete each log the digest a cache may hold; insert logs nothing."""
        path = str(tmp_path / "tokens.sqlite3")
        writer, poller = SQLiteStore(path), SQLiteStore(path)
        await asyncio.gather(writer.open(), poller.open())
        start = await poller.latest_change()
        one, two = await add(writer, "one"), await add(writer, "two")
        assert await poller.changes_since(start) == (start, [])
        await writer.update_permissions(one.id, frozenset({"New"}))
        await writer.replace_digest(two.id, digest_for("two rotated"))
        await writer.delete(two.id)
        await writer.delete(two.id)  # no such token any more: nothing to log
        high, digests = await poller.changes_since(start)
        assert digests == [digest_for("one"), digest_for("two"), digest_for("two rotated")]
        assert high == await poller.latest_change() == start + 3
        assert await poller.changes_since(high) == (high, [])
        await asyncio.gather(writer.close(), poller.close())

    async def test_pruned_changes_force_a_full_drop(self, tmp_path: Path) -> None:
        """A poller behind the retention window is told so; an up-to-date one carries on."""
        now = [1000.0]
        store = SQLiteStore(str(tmp_path / "t.sqlite3"), change_retention=60, clock=lambda: now[0])
        await store.open()
        token = await add(store, "churn")
        await store.update_permissions(token.id, frozenset({"A"}))
        stale = 0
        current = await store.latest_change()
        now[0] += 61
        await store.update_permissions(token.id, frozenset({"B"}))  # prunes the first entry
        with pytest.raises(ChangesPruned, match="no longer available"):
            await store.changes_since(stale)
        assert await store.changes_since(current) == (current + 1, [digest_for("churn")])
        with pytest.raises(ChangesPruned):
            await store.changes_since(current + 5)  # ahead of the log: the file was replaced
        await store.close()


CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from authsvc.store.sqlite import SQLiteStore
    from authsvc.tokens import TokenRecord, new_token_id

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
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
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
