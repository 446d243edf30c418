"""The SQLite store's file: schema, migrations, connection setup, transactions, rows.

Durability: WAL journal with ``synchronous=FULL``, so a write is on disk before the call
returns. The file is created with mode 0600 (its directories as needed). The schema version
lives in ``PRAGMA user_version``; :func:`migrate` runs every missing step in one
``BEGIN IMMEDIATE`` transaction, and refuses a database from a newer authsvc untouched.

Everything here blocks: the store calls it on its worker thread (a read-only connection of
:func:`connect_reader` with no busy timeout never waits, so it may be used on the event
loop).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from authsvc.rules.tokens import TokenRecord, shared_permissions
from authsvc.store import KEY_CHECK, StoreError, StoreState, StoreUnavailable
from authsvc.store.sqlite.usage import read_meta

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
    # 2: rotation with a grace period keeps the previous secret's digest until it ends
    (
        "ALTER TABLE tokens ADD COLUMN previous_digest BLOB",
        "ALTER TABLE tokens ADD COLUMN grace_ends_at REAL",
        "CREATE UNIQUE INDEX tokens_previous_digest ON tokens (previous_digest)",
    ),
    # 3: per-token rate limits, hourly usage counts, and values the store keeps about
    # itself (the key's check value); the hour index serves pruning
    (
        "ALTER TABLE tokens ADD COLUMN rate_limit TEXT",
        """CREATE TABLE token_usage (
            token_id TEXT NOT NULL,
            hour INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (token_id, hour, outcome)
        ) WITHOUT ROWID""",
        "CREATE INDEX token_usage_hour ON token_usage (hour)",
        "CREATE TABLE authsvc_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)


def fold(value: str | None) -> str | None:
    """Case-fold for matching and sorting (registered as the SQL function ``authsvc_fold``)."""
    return None if value is None else value.lower()


def transaction(
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


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """The writing connection to ``path``: file created, PRAGMAs set, schema migrated."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # sqlite gives -wal/-shm the same mode
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(
        file,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
        mode = _switch_to_wal(conn, busy_timeout_ms)
        if str(mode).lower() != "wal":
            raise StoreUnavailable(
                f"token store {path}: cannot use the WAL journal here (got {mode})"
            )
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.create_function("authsvc_fold", 1, fold, deterministic=True)
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(path: str, busy_timeout_ms: int = 0) -> sqlite3.Connection:
    """A query-only connection. With no busy timeout (the default) it never waits, so the
    store uses it on the event loop (see ``SQLiteStore.get_by_digest``)."""
    conn = sqlite3.connect(
        Path(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
        conn.execute("PRAGMA query_only = ON")
        conn.create_function("authsvc_fold", 1, fold, deterministic=True)
    except BaseException:
        conn.close()
        raise
    return conn


def read_key_state(path: str, busy_timeout_ms: int) -> StoreState:
    """:meth:`authsvc.store.TokenStore.key_state` of the file at ``path`` (which exists),
    through a query-only connection: whatever its schema version, nothing is migrated.

    It waits like the writer does: the first connection to a WAL file recovers its index
    and the last one to close checkpoints it, each under a short exclusive lock, so workers
    and commands starting together would otherwise find the file "locked" and fail.
    """
    conn = connect_reader(path, busy_timeout_ms)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version < 1:
            return StoreState(0, None, None)
        held = int(conn.execute("SELECT count(*) FROM tokens").fetchone()[0])
        if version < 3:  # the schema that brought authsvc_meta
            return StoreState(held, None, None)
        return StoreState(held, read_meta(conn, KEY_CHECK), None)  # the mark: snapshot.py
    finally:
        conn.close()


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> object:
    """Set the WAL journal, retrying while another connection holds the file.

    Two processes opening a new file at once can both read it, then both try to switch:
    SQLite refuses one of them at once instead of calling the busy handler.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)  # on the worker thread, never the event loop


def _migrate(conn: sqlite3.Connection) -> None:
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
        transaction(conn, body)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def record_of(row: Sequence[Any], path: str, *, via_previous: bool = False) -> TokenRecord:
    """The token record in ``row`` (the columns of :data:`authsvc.store.queries.COLUMNS`),
    as found by its previous secret when ``via_previous``; unreadable permissions raise
    :class:`~authsvc.store.StoreUnavailable` naming ``path``."""
    token_id, name, permissions, ip_filter, created_at, expires_at, created_by, *rest = row
    last_used_at, last_used_ip, grace_ends_at, rate_limit = rest
    try:
        names = json.loads(permissions)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("not a JSON array of strings")
    except ValueError as exc:
        raise StoreUnavailable(
            f"token store {path}: token {token_id} has unreadable permissions ({exc})"
        ) from exc
    return TokenRecord(
        id=str(token_id),
        name=str(name),
        permissions=shared_permissions(names),
        ip_filter=None if ip_filter is None else sys.intern(str(ip_filter)),
        created_at=float(created_at),
        expires_at=_optional_float(expires_at),
        created_by=sys.intern(str(created_by)),
        last_used_at=_optional_float(last_used_at),
        last_used_ip=None if last_used_ip is None else str(last_used_ip),
        grace_ends_at=_optional_float(grace_ends_at),
        via_previous=via_previous,
        rate_limit=None if rate_limit is None else sys.intern(str(rate_limit)),
    )
