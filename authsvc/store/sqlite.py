"""The embedded SQLite token store.

One connection, owned by one worker thread (a single-thread executor): every blocking
sqlite call runs there, so the event loop never waits on disk and calls never interleave.
Durability: WAL journal with ``synchronous=FULL``, so a write is on disk before the call
returns. Read-then-write operations run inside ``BEGIN IMMEDIATE`` (other writers, in this or
another process, wait up to ``busy_timeout``) and roll back on any error.

Listing: ``name_contains`` and ordering by name are case-insensitive for all of Unicode
(``str.lower``, not SQLite's ASCII-only ``NOCASE``); names differing only in case then sort by
code point. ``order="desc"`` is the exact reverse of ``"asc"``, tie-breaks included.

Beyond :class:`~authsvc.store.TokenStore`, a change log lets other processes sharing the file
invalidate their caches: ``update_permissions``, ``replace_digest`` (the old digest) and
``delete`` append a row in the same transaction. Poll :meth:`SQLiteStore.changes_since` with the
last high-water mark (start from :meth:`SQLiteStore.latest_change`); rows older than
``change_retention`` seconds are pruned, and a poller that fell further behind gets
:class:`ChangesPruned` and must drop its whole cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from authsvc.store import (
    ChangesPruned,
    ListQuery,
    NameTaken,
    StoreError,
    StoreUnavailable,
    Usage,
)
from authsvc.tokens import TokenRecord, shared_permissions

_T = TypeVar("_T")

#: Migration steps; step ``i`` takes the schema from ``user_version`` i to i + 1.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            digest BLOB NOT NULL UNIQUE,
            permissions TEXT NOT NULL,
            ip_filter TEXT,
            created_at REAL NOT NULL,
            expires_at REAL,
            created_by TEXT NOT NULL,
            last_used_at REAL,
            last_used_ip TEXT
        )""",
        """CREATE TABLE changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            token_id TEXT NOT NULL,
            digest BLOB,
            changed_at REAL NOT NULL
        )""",
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)

_COLUMNS = (
    "id, name, permissions, ip_filter, created_at, expires_at, created_by,"
    " last_used_at, last_used_ip"
)
_SELECT_BY_ID = f"SELECT {_COLUMNS} FROM tokens WHERE id = ?"  # noqa: S608 - constant columns
_SELECT_BY_DIGEST = f"SELECT {_COLUMNS} FROM tokens WHERE digest = ?"  # noqa: S608 - constant
_NAME_MATCH = "authsvc_fold(name) LIKE ? ESCAPE '\\'"
# Sort keys for order="asc"; "desc" reverses every key, so it is the exact mirror image.
# (expires_at IS NULL) puts tokens that never expire after all others in ascending order.
_SORT_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "name": ("authsvc_fold(name)", "name"),
    "expires_at": ("expires_at IS NULL", "expires_at", "authsvc_fold(name)", "name"),
}
_DIRECTIONS: Final = {"asc": "ASC", "desc": "DESC"}


def _order_by(sort: str, order: str) -> str:
    """The ORDER BY clause for a listing; only fixed fragments, never caller text."""
    if sort not in _SORT_KEYS or order not in _DIRECTIONS:
        raise ValueError(f"unsupported ordering {sort!r} {order!r}")
    return ", ".join(f"{key} {_DIRECTIONS[order]}" for key in _SORT_KEYS[sort])


_LATEST_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'changes'"


def _fold(value: str | None) -> str | None:
    """Case-fold for matching and sorting (registered as the SQL function ``authsvc_fold``)."""
    return None if value is None else value.lower()


def _like_pattern(needle: str) -> str:
    """A LIKE pattern matching ``needle`` anywhere, with ``%``, ``_`` and ``\\`` literal."""
    escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


class SQLiteStore:
    """A :class:`~authsvc.store.TokenStore` in one SQLite file at ``path``."""

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_ms: int = 5000,
        change_retention: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._change_retention = change_retention
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._closed = False

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file (mode 0600) and its directories, set PRAGMAs, migrate the schema."""
        if self._closed:
            raise StoreUnavailable(f"token store {self._path} is closed")
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authsvc-sqlite")
        try:
            loop = asyncio.get_running_loop()
            self._conn = await loop.run_in_executor(executor, self._guarded, self._connect)
            self._reader = await loop.run_in_executor(executor, self._guarded, self._connect_reader)
        except BaseException:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        """Let queued calls finish, then close the connection; later calls are refused."""
        executor, conn, reader = self._executor, self._conn, self._reader
        self._closed = True
        self._executor, self._conn, self._reader = None, None, None
        if reader is not None:
            reader.close()
        if executor is None:
            return
        try:
            if conn is not None:
                # queued behind every call already submitted, so none is cut short
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(executor, self._guarded, conn.close)
        finally:
            executor.shutdown(wait=False)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database file answers a query."""
        await self._run(lambda c: c.execute("SELECT count(*) FROM sqlite_master").fetchone())

    # -- reads -----------------------------------------------------------------------------

    async def get_by_digest(self, digest: bytes) -> TokenRecord | None:
        """The token whose secret has this digest, or None.

        The hot path's only read, so it skips the thread hop: one indexed SELECT on the
        read-only connection takes microseconds, and in WAL mode readers never wait for
        writers. Only if the file is busy anyway (WAL recovery, an exclusive checkpoint)
        does the read go to the worker thread, which waits out ``busy_timeout`` there
        instead of on the event loop.
        """
        reader = self._reader
        if reader is not None:
            try:
                return self._one(reader, _SELECT_BY_DIGEST, digest)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise StoreUnavailable(f"token store {self._path}: {exc}") from exc
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"token store {self._path}: {exc}") from exc
        return await self._run(lambda c: self._one(c, _SELECT_BY_DIGEST, digest))

    async def get(self, token_id: str) -> TokenRecord | None:
        """The token with this id, or None."""
        return await self._run(lambda c: self._one(c, _SELECT_BY_ID, token_id))

    async def digest_of(self, token_id: str) -> bytes | None:
        """The stored digest of a token, or None."""
        return await self._run(lambda c: self._digest(c, token_id))

    async def list_tokens(self, query: ListQuery) -> tuple[int, list[TokenRecord]]:
        """(total matching, one page of records) for ``query``."""
        order = _order_by(query.sort, query.order)
        if query.limit < 0 or query.offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = "", []
        if query.name_contains is not None:
            where, params = f" WHERE {_NAME_MATCH}", [_like_pattern(query.name_contains)]
        count_sql = f"SELECT count(*) FROM tokens{where}"  # noqa: S608 - fixed fragments only
        page_sql = f"SELECT {_COLUMNS} FROM tokens{where} ORDER BY {order} LIMIT ? OFFSET ?"  # noqa: S608 - fixed fragments only

        def body(c: sqlite3.Connection) -> tuple[int, list[TokenRecord]]:
            total = int(c.execute(count_sql, params).fetchone()[0])
            rows = c.execute(page_sql, [*params, query.limit, query.offset]).fetchall()
            return total, [self._record(row) for row in rows]

        # one read transaction, so the total and the page come from the same snapshot
        return await self._run(lambda c: self._transaction(c, body, write=False))

    async def all_tokens(self) -> list[TokenRecord]:
        """Every token, ordered by name."""
        sql = f"SELECT {_COLUMNS} FROM tokens ORDER BY {_order_by('name', 'asc')}"  # noqa: S608 - constant
        return await self._run(lambda c: [self._record(row) for row in c.execute(sql)])

    # -- writes ----------------------------------------------------------------------------

    async def insert(self, record: TokenRecord, digest: bytes) -> None:
        """Store a new token durably; raise NameTaken if the name is in use."""

        def body(c: sqlite3.Connection) -> None:
            # checked under the write lock, so no other writer can take the name meanwhile
            if c.execute("SELECT 1 FROM tokens WHERE name = ?", (record.name,)).fetchone():
                raise NameTaken(f"a token named {record.name!r} already exists")
            if c.execute("SELECT 1 FROM tokens WHERE id = ?", (record.id,)).fetchone():
                raise StoreError(f"a token with id {record.id} already exists")
            c.execute(
                f"INSERT INTO tokens ({_COLUMNS}, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant columns
                (
                    record.id,
                    record.name,
                    json.dumps(sorted(record.permissions)),
                    record.ip_filter,
                    record.created_at,
                    record.expires_at,
                    record.created_by,
                    record.last_used_at,
                    record.last_used_ip,
                    digest,
                ),
            )

        await self._run(lambda c: self._transaction(c, body))

    async def update_permissions(
        self, token_id: str, permissions: frozenset[str]
    ) -> TokenRecord | None:
        """Replace a token's permissions; the updated record, or None if no such token."""

        def body(c: sqlite3.Connection) -> TokenRecord | None:
            digest = self._digest(c, token_id)
            if digest is None:
                return None
            c.execute(
                "UPDATE tokens SET permissions = ? WHERE id = ?",
                (json.dumps(sorted(permissions)), token_id),
            )
            self._log_change(c, token_id, digest)
            return self._one(c, _SELECT_BY_ID, token_id)

        return await self._run(lambda c: self._transaction(c, body))

    async def replace_digest(
        self, token_id: str, digest: bytes
    ) -> tuple[bytes, TokenRecord] | None:
        """Rotate: swap the stored digest; (old digest, record), or None if no such token."""

        def body(c: sqlite3.Connection) -> tuple[bytes, TokenRecord] | None:
            old = self._digest(c, token_id)
            if old is None:
                return None
            c.execute("UPDATE tokens SET digest = ? WHERE id = ?", (digest, token_id))
            self._log_change(c, token_id, old)
            record = self._one(c, _SELECT_BY_ID, token_id)
            return None if record is None else (old, record)

        return await self._run(lambda c: self._transaction(c, body))

    async def delete(self, token_id: str) -> bytes | None:
        """Delete a token; its digest (for cache invalidation), or None if no such token."""

        def body(c: sqlite3.Connection) -> bytes | None:
            digest = self._digest(c, token_id)
            if digest is not None:
                c.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
                self._log_change(c, token_id, digest)
            return digest

        return await self._run(lambda c: self._transaction(c, body))

    async def record_usage(self, usages: Sequence[Usage]) -> None:
        """Apply a batch of last-used updates in one transaction, only ever moving forward."""
        rows = [(u.used_at, u.ip, u.token_id, u.used_at) for u in usages]
        if not rows:
            return
        sql = (
            "UPDATE tokens SET last_used_at = ?, last_used_ip = ?"
            " WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)"
        )
        await self._run(lambda c: self._transaction(c, lambda t: t.executemany(sql, rows)))

    # -- change log (not part of the TokenStore protocol) ------------------------------------

    async def latest_change(self) -> int:
        """The current high-water mark of the change log (0 before any change)."""
        return await self._run(self._latest)

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[bytes, float]]]:
        """(new high-water mark, (digest, changed_at) of changes after ``seq``), oldest first,
        one entry per digest (its first change after ``seq``).

        Raises :class:`ChangesPruned` when some of those changes were already pruned, or when
        ``seq`` is ahead of the log (the database was replaced): drop the whole cache, then
        continue from :meth:`latest_change`.
        """

        def body(c: sqlite3.Connection) -> tuple[int, list[tuple[bytes, float]]]:
            high = self._latest(c)
            oldest = c.execute("SELECT min(seq) FROM changes").fetchone()[0]
            floor = high if oldest is None else int(oldest) - 1
            if seq > high or seq < floor:
                raise ChangesPruned(
                    f"token store {self._path}: changes after {seq} are no longer available"
                    f" (log holds {floor + 1}..{high})"
                )
            rows = c.execute(
                "SELECT digest, changed_at FROM changes WHERE seq > ? AND digest IS NOT NULL"
                " ORDER BY seq",
                (seq,),
            )
            first: dict[bytes, float] = {}
            for digest, changed_at in rows:
                first.setdefault(bytes(digest), float(changed_at))
            return high, list(first.items())

        return await self._run(lambda c: self._transaction(c, body, write=False))

    # -- worker-thread side ------------------------------------------------------------------

    async def _run(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``job`` on the worker thread with the connection, mapping sqlite errors."""
        executor, conn = self._executor, self._conn
        if executor is None or conn is None:
            state = "closed" if self._closed else "not open"
            raise StoreUnavailable(f"token store {self._path} is {state}")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._guarded, functools.partial(job, conn))

    def _guarded(self, job: Callable[[], _T]) -> _T:
        # sqlite messages name the failure ("database is locked"), never a bound value
        try:
            return job()
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"token store {self._path}: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"token store {self._path}: {exc}") from exc

    @staticmethod
    def _transaction(
        conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T], *, write: bool = True
    ) -> _T:
        """Run ``body`` in one transaction: all of it is committed, or none of it."""
        # IMMEDIATE takes the write lock up front: a deferred transaction that later tries to
        # write fails at once with SQLITE_BUSY instead of waiting out busy_timeout
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = body(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the original error says more
                    conn.execute("ROLLBACK")
            raise
        return result

    def _connect(self) -> sqlite3.Connection:
        path = Path(self._path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # sqlite gives -wal/-shm the same mode
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(
            path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            mode = self._switch_to_wal(conn)
            if str(mode).lower() != "wal":
                raise StoreUnavailable(
                    f"token store {self._path}: cannot use the WAL journal here (got {mode})"
                )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("authsvc_fold", 1, _fold, deterministic=True)
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        """The read-only connection used on the event loop (see get_by_digest)."""
        conn = sqlite3.connect(
            Path(self._path), timeout=0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA busy_timeout = 0")  # never block the event loop
            conn.execute("PRAGMA query_only = ON")
            conn.create_function("authsvc_fold", 1, _fold, deterministic=True)
        except BaseException:
            conn.close()
            raise
        return conn

    def _switch_to_wal(self, conn: sqlite3.Connection) -> object:
        """Set the WAL journal, retrying while another connection holds the file.

        Two processes opening a new file at once can both read it, then both try to switch:
        SQLite refuses one of them at once instead of calling the busy handler.
        """
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(0.01)  # on the worker thread, never the event loop

    def _migrate(self, conn: sqlite3.Connection) -> None:
        def version(c: sqlite3.Connection) -> int:
            found = int(c.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"database schema version {found} is newer than this authsvc supports"
                    f" ({SCHEMA_VERSION}); upgrade authsvc"
                )
            return found

        def body(c: sqlite3.Connection) -> None:
            current = version(c)  # again under the lock: another process may have migrated
            for step in _MIGRATIONS[current:]:
                for statement in step:
                    c.execute(statement)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

        if version(conn) < SCHEMA_VERSION:
            self._transaction(conn, body)

    def _one(self, conn: sqlite3.Connection, sql: str, key: object) -> TokenRecord | None:
        row = conn.execute(sql, (key,)).fetchone()
        return None if row is None else self._record(row)

    @staticmethod
    def _digest(conn: sqlite3.Connection, token_id: str) -> bytes | None:
        row = conn.execute("SELECT digest FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return None if row is None else bytes(row[0])

    @staticmethod
    def _latest(conn: sqlite3.Connection) -> int:
        row = conn.execute(_LATEST_SEQ).fetchone()
        return 0 if row is None else int(row[0])

    def _log_change(self, conn: sqlite3.Connection, token_id: str, digest: bytes) -> None:
        now = self._clock()
        conn.execute(
            "INSERT INTO changes (token_id, digest, changed_at) VALUES (?, ?, ?)",
            (token_id, digest, now),
        )
        # prune a prefix by seq (not by time alone) so the log is always a contiguous suffix
        conn.execute(
            "DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes WHERE changed_at < ?)",
            (now - self._change_retention,),
        )

    def _record(self, row: Sequence[Any]) -> TokenRecord:
        token_id, name, permissions, ip_filter, created_at, expires_at, created_by, *used = row
        try:
            names = json.loads(permissions)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError("not a JSON array of strings")
        except ValueError as exc:
            raise StoreUnavailable(
                f"token store {self._path}: token {token_id} has unreadable permissions ({exc})"
            ) from exc
        return TokenRecord(
            id=str(token_id),
            name=str(name),
            permissions=shared_permissions(names),
            ip_filter=None if ip_filter is None else sys.intern(str(ip_filter)),
            created_at=float(created_at),
            expires_at=_optional_float(expires_at),
            created_by=sys.intern(str(created_by)),
            last_used_at=_optional_float(used[0]),
            last_used_ip=None if used[1] is None else str(used[1]),
        )
