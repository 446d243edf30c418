"""The SQLite store beyond the TokenStore contract: the file (location, mode, PRAGMAs),
unreadable and locked databases, and a listen that never pushes.

The contract itself (tests/test_store_contract_*.py) runs against SQLite as well."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from authsvc.store import StoreUnavailable
from authsvc.store.sqlite.store import SCHEMA_VERSION, SQLiteStore
from tests.factories import new_record
from tests.stores import Heard, add, digest_for, hold_write_lock, raw_connection


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An opened, empty SQLite store."""
    opened = SQLiteStore(str(tmp_path / "tokens.sqlite3"))
    await opened.open()
    yield opened
    await opened.close()


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
            version = other.execute("PRAGMA user_version").fetchone()[0]
            assert version == SCHEMA_VERSION == sqlite_store.schema_version

    async def test_exists_is_the_file(self, tmp_path: Path) -> None:
        """exists() is whether the file is there; asking creates neither it nor its folder."""
        path = tmp_path / "later" / "tokens.sqlite3"
        store = SQLiteStore(str(path))
        assert not await store.exists()
        assert not path.parent.exists()
        path.parent.mkdir()
        path.touch()
        assert await store.exists()


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
        blocked = new_record("blocked")
        other = hold_write_lock(path)
        try:
            with pytest.raises(StoreUnavailable, match="database is locked") as caught:
                await locked.insert(blocked, digest_for("blocked"))
            assert str(path) in str(caught.value)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert await locked.get(blocked.id) is None
        await locked.insert(blocked, digest_for("blocked"))
        assert await locked.get(blocked.id) == blocked
        await locked.close()

    async def test_key_state_waits_out_a_passing_lock(self, tmp_path: Path) -> None:
        """The key check's read waits for a connection holding the file, as workers and
        commands starting together do (WAL recovery, the last close's checkpoint): it used
        never to wait, and such a start failed with "database is locked"."""
        path = tmp_path / "tokens.sqlite3"
        store = SQLiteStore(str(path), busy_timeout_ms=5000)
        await store.open()
        await add(store, "held")
        await store.close()
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")  # in WAL, blocks readers too
        holder.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.3, holder.close)  # closing ends the transaction
        release.start()
        try:
            assert (await SQLiteStore(str(path), busy_timeout_ms=5000).key_state())[0] == 1
        finally:
            release.join()

    async def test_key_state_of_a_file_locked_too_long(self, tmp_path: Path) -> None:
        """Past busy_timeout the key check is StoreUnavailable naming the file, not a hang."""
        path = tmp_path / "tokens.sqlite3"
        store = SQLiteStore(str(path), busy_timeout_ms=50)
        await store.open()
        await store.close()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable, match="locked") as caught:
                await SQLiteStore(str(path), busy_timeout_ms=50).key_state()
            assert str(path) in str(caught.value)
        finally:
            holder.close()

    @pytest.mark.parametrize(
        ("code", "outcome"),
        [
            pytest.param(sqlite3.SQLITE_BUSY, "found", id="busy-falls-back-to-the-worker"),
            pytest.param(sqlite3.SQLITE_LOCKED, "found", id="locked-falls-back"),
            pytest.param(sqlite3.SQLITE_BUSY | 1 << 8, "found", id="busy-recovery-falls-back"),
            pytest.param(sqlite3.SQLITE_IOERR, "unavailable", id="io-error-is-unavailable"),
        ],
    )
    async def test_event_loop_read_errors(
        self, sqlite_store: SQLiteStore, code: int, outcome: str
    ) -> None:
        """An event-loop read of a busy file goes to the worker; any other error is unavailable."""
        # get_by_digest reads on the event loop; the worker thread may wait out busy_timeout
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


class TestSQLiteListen:
    """SQLite cannot push changes to other processes: listen does nothing."""

    async def test_listen_does_nothing(self, tmp_path: Path) -> None:
        """listen is accepted, open or not and more than once, and never calls back."""
        # PostgreSQL refuses both (it has a connection to keep): see test_store_postgres.py
        store = SQLiteStore(str(tmp_path / "tokens.sqlite3"))
        heard = Heard()
        await store.listen(heard)
        await store.open()
        await store.listen(heard)
        await add(store, "changed")
        assert not store.listening
        assert heard.calls == []
        await store.close()
