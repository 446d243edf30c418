"""The embedded SQLite token store: :class:`SQLiteStore` and its queries.

One connection, owned by one worker thread (a single-thread executor): every blocking
sqlite call runs there, so the event loop never waits on disk and calls never interleave.
Read-then-write operations run inside ``BEGIN IMMEDIATE`` (other writers, in this or another
process, wait up to ``busy_timeout``) and roll back on any error. The file, its schema and
durability settings: :mod:`authsvc.store.sqlite.schema`.

Listing: ``name_contains`` and ordering by name are case-insensitive for all of Unicode
(``str.lower``, not SQLite's ASCII-only ``NOCASE``); names differing only in case then sort by
code point. ``order="desc"`` is the exact reverse of ``"asc"``, tie-breaks included.

Usage counts and the store's own values: :mod:`authsvc.store.sqlite.usage`.

Beyond :class:`~authsvc.store.TokenStore`, a change log lets other processes sharing the file
invalidate their caches (:mod:`authsvc.store.sqlite.changes`): poll
:meth:`SQLiteStore.changes_since` with the last high-water mark (start from
:meth:`SQLiteStore.latest_change`); on :class:`ChangesPruned`, drop the whole cache.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from authsvc.rules.tokens import TokenRecord
from authsvc.store import (
    ChangeCallback,
    ChangesPruned,
    HourlyCount,
    ListQuery,
    NameTaken,
    StoreError,
    StoreState,
    StoreUnavailable,
    TokenChange,
    Usage,
)
from authsvc.store.queries import (
    COLUMNS,
    Params,
    assignments,
    conditions,
    count_columns,
    order_by,
    usage_rows,
)
from authsvc.store.sqlite import changes as sqlite_changes
from authsvc.store.sqlite import usage as sqlite_usage
from authsvc.store.sqlite.schema import (
    SCHEMA_VERSION,
    connect,
    connect_reader,
    read_key_state,
    record_of,
    transaction,
)
from authsvc.store.sqlite.snapshot import read_restore_mark

__all__ = ["SCHEMA_VERSION", "ChangesPruned", "SQLiteStore"]

_T = TypeVar("_T")

_SELECT_BY_ID = f"SELECT {COLUMNS} FROM tokens WHERE id = ?"  # noqa: S608 - constant columns
# the current secret's digest, else a previous one still kept: each half uses its unique index
_SELECT_BY_DIGEST = (
    f"SELECT {COLUMNS}, 0 FROM tokens WHERE digest = ?1"  # noqa: S608 - constant columns
    f" UNION ALL SELECT {COLUMNS}, 1 FROM tokens WHERE previous_digest = ?1"
)
_FOLD: Final = "authsvc_fold(name)"  # the folded name, as the listing orders on it


def _mark(n: int) -> str:
    """SQLite's placeholder of the n-th bound value."""
    return f"?{n}"


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

    @property
    def name(self) -> str:
        """The database file, as messages name the store."""
        return self._path

    @property
    def schema_version(self) -> int:
        """The schema version this code creates and migrates the file to."""
        return SCHEMA_VERSION

    async def exists(self) -> bool:
        """Whether the database file has been created."""
        return os.path.exists(self._path)  # noqa: ASYNC240 - one stat, before the store opens

    # -- lifecycle -------------------------------------------------------------------------

    async def key_state(self) -> StoreState:
        """Tokens held, the key's check value and an unfinished restore, read without
        opening (nothing written)."""
        began = read_restore_mark(Path(self._path))
        if not os.path.exists(self._path):  # noqa: ASYNC240 - one stat, before the store opens
            return StoreState(0, None, began)
        job = functools.partial(read_key_state, self._path, self._busy_timeout_ms)
        state = await asyncio.to_thread(self._guarded, job)
        return state._replace(restore_began=began)

    async def open(self) -> None:
        """Create the file (mode 0600) and its directories, set PRAGMAs, migrate the schema."""
        if self._closed:
            raise StoreUnavailable(f"token store {self._path} is closed")
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authsvc-sqlite")
        try:
            loop = asyncio.get_running_loop()
            writer = functools.partial(connect, self._path, self._busy_timeout_ms)
            self._conn = await loop.run_in_executor(executor, self._guarded, writer)
            reader = functools.partial(connect_reader, self._path)
            self._reader = await loop.run_in_executor(executor, self._guarded, reader)
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
                return self._by_digest(reader, digest)
            except sqlite3.OperationalError as exc:
                # the primary code: SQLite reports extended ones (SQLITE_BUSY_RECOVERY, ...)
                if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise StoreUnavailable(f"token store {self._path}: {exc}") from exc
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"token store {self._path}: {exc}") from exc
        return await self._run(lambda c: self._by_digest(c, digest))

    async def get(self, token_id: str) -> TokenRecord | None:
        """The token with this id, or None."""
        return await self._run(lambda c: self._one(c, _SELECT_BY_ID, token_id))

    async def list_tokens(self, query: ListQuery) -> tuple[int, list[TokenRecord]]:
        """(total matching, one page of records) for ``query``."""
        order = order_by(query.sort, query.order, fold=_FOLD)
        if query.limit < 0 or query.offset < 0:
            raise ValueError("limit and offset must not be negative")
        params = Params(_mark)
        where = f" WHERE {conditions(query, params, fold=_FOLD)}"
        count_sql = f"SELECT count(*) FROM tokens{where}"  # noqa: S608 - fixed fragments only
        count_values = list(params.values)  # the page adds its paging values after these
        paging = f"LIMIT {params.add(query.limit)} OFFSET {params.add(query.offset)}"
        page_sql = f"SELECT {COLUMNS} FROM tokens{where} ORDER BY {order} {paging}"  # noqa: S608 - fixed fragments only

        def body(c: sqlite3.Connection) -> tuple[int, list[TokenRecord]]:
            total = int(c.execute(count_sql, count_values).fetchone()[0])
            rows = c.execute(page_sql, params.values).fetchall()
            return total, [record_of(row, self._path) for row in rows]

        # one read transaction, so the total and the page come from the same snapshot
        return await self._run(lambda c: transaction(c, body, write=False))

    async def count_tokens(self, queries: Sequence[ListQuery]) -> list[int]:
        """How many tokens match each query's filters, in one pass over the table."""
        params = Params(_mark)
        sql = f"SELECT {count_columns(queries, params, fold=_FOLD)} FROM tokens"  # noqa: S608 - fixed fragments only
        row = await self._run(lambda c: c.execute(sql, params.values).fetchone())
        return [int(count) for count in row]

    async def digest_prefixes(self) -> bytes:
        """The first 8 bytes of every digest, in ascending order (the unique index's)."""
        # Built inside SQLite as one hex string: no Python object per token. An aggregate
        # over an ordered subquery is not flattened, so it sees the rows in index order.
        # Previous secrets still kept after a rotation with a grace count as existing too.
        sql = (
            "SELECT group_concat(substr(hex(substr(digest, 1, 8)) || '0000000000000000', 1, 16),"
            " '')"
            " FROM (SELECT digest FROM tokens UNION ALL SELECT previous_digest FROM tokens"
            " WHERE previous_digest IS NOT NULL ORDER BY 1)"
        )
        return await self._run(lambda c: bytes.fromhex(c.execute(sql).fetchone()[0] or ""))

    async def all_tokens(self) -> list[TokenRecord]:
        """Every token, ordered by name."""
        sql = f"SELECT {COLUMNS} FROM tokens ORDER BY {order_by('name', 'asc', fold=_FOLD)}"  # noqa: S608 - constant
        return await self._run(lambda c: [record_of(row, self._path) for row in c.execute(sql)])

    # -- writes ----------------------------------------------------------------------------

    async def insert(
        self, record: TokenRecord, digest: bytes, *, key_check: str | None = None
    ) -> None:
        """Store a new token durably; raise NameTaken if the name is in use, and
        KeyCheckMismatch if ``key_check`` is given and the store names another key."""

        def body(c: sqlite3.Connection) -> None:
            if key_check is not None:
                sqlite_usage.claim_key_check(c, key_check)
            # checked under the write lock, so no other writer can take the name meanwhile
            if c.execute("SELECT 1 FROM tokens WHERE name = ?", (record.name,)).fetchone():
                raise NameTaken(f"a token named {record.name!r} already exists")
            if c.execute("SELECT 1 FROM tokens WHERE id = ?", (record.id,)).fetchone():
                raise StoreError(f"a token with id {record.id} already exists")
            c.execute(
                f"INSERT INTO tokens ({COLUMNS}, digest)"  # noqa: S608 - constant columns
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    None,  # a new token has one secret
                    record.rate_limit,
                    digest,
                ),
            )
            self._log_change(c, record.id, digest)

        await self._run(lambda c: transaction(c, body))

    async def update_permissions(
        self, token_id: str, permissions: frozenset[str]
    ) -> TokenRecord | None:
        """Replace a token's permissions; the updated record, or None if no such token."""
        return await self.update_token(token_id, TokenChange(permissions=permissions))

    async def update_token(self, token_id: str, change: TokenChange) -> TokenRecord | None:
        """Apply ``change`` in one transaction, logging the token's digests as changes; the
        updated record, or None if no such token. A change of nothing writes nothing."""
        params = Params(_mark)
        sets = assignments(change, params, permissions=lambda p: json.dumps(sorted(p)))
        sql = f"UPDATE tokens SET {sets} WHERE id = {params.add(token_id)}"  # noqa: S608 - fixed fragments only

        def body(c: sqlite3.Connection) -> TokenRecord | None:
            digests = self._digests(c, token_id)
            if digests is None:
                return None
            if sets:
                c.execute(sql, params.values)
                self._log_changes(c, token_id, *digests)
            return self._one(c, _SELECT_BY_ID, token_id)

        return await self._run(lambda c: transaction(c, body))

    async def replace_digest(
        self, token_id: str, digest: bytes, *, grace_ends_at: float | None = None
    ) -> tuple[bytes, TokenRecord] | None:
        """Rotate: swap the stored digest, keeping the old one until ``grace_ends_at`` if
        given; (old digest, record), or None if no such token."""

        def body(c: sqlite3.Connection) -> tuple[bytes, TokenRecord] | None:
            digests = self._digests(c, token_id)
            if digests is None:
                return None
            old, older = digests
            kept = None if grace_ends_at is None else old
            c.execute(
                "UPDATE tokens SET digest = ?, previous_digest = ?, grace_ends_at = ? WHERE id = ?",
                (digest, kept, grace_ends_at, token_id),
            )
            # a previous secret still kept from an earlier rotation ends here: a change too
            self._log_changes(c, token_id, old, older, digest)
            record = self._one(c, _SELECT_BY_ID, token_id)
            return None if record is None else (old, record)

        return await self._run(lambda c: transaction(c, body))

    async def end_grace(
        self, token_id: str, digest: bytes | None, *, previous: bool = False
    ) -> tuple[bytes, bytes] | None:
        """Forget the token's previous secret, if ``digest`` is still its current secret's
        (or, with ``previous``, that previous secret's; None: whichever); (current
        digest, previous digest), or None when there is nothing to end."""

        def body(c: sqlite3.Connection) -> tuple[bytes, bytes] | None:
            digests = self._digests(c, token_id)
            if digests is None or digests[1] is None:
                return None
            if digest is not None and (digests[1] if previous else digests[0]) != digest:
                return None  # rotated meanwhile: that grace is over already
            c.execute(
                "UPDATE tokens SET previous_digest = NULL, grace_ends_at = NULL WHERE id = ?",
                (token_id,),
            )
            self._log_changes(c, token_id, *digests)
            return digests[0], digests[1]

        return await self._run(lambda c: transaction(c, body))

    async def delete(self, token_id: str, *, digest: bytes | None = None) -> bytes | None:
        """Delete a token (only while its current secret has ``digest``, if given); its
        digest (for cache invalidation), or None if no such token."""

        def body(c: sqlite3.Connection) -> bytes | None:
            digests = self._digests(c, token_id)
            if digests is None or digest not in (None, digests[0]):
                return None
            c.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
            sqlite_usage.forget_token(c, token_id)
            self._log_changes(c, token_id, *digests)
            return digests[0]

        return await self._run(lambda c: transaction(c, body))

    async def record_usage(self, usages: Sequence[Usage]) -> None:
        """Apply a batch of last-used updates in one transaction, only ever moving forward."""
        rows = [(u.used_at, u.ip, u.token_id, u.used_at) for u in usages]
        if not rows:
            return
        sql = (
            "UPDATE tokens SET last_used_at = ?, last_used_ip = ?"
            " WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)"
        )
        await self._run(lambda c: transaction(c, lambda t: t.executemany(sql, rows)))

    # -- usage counts and the store's own values ---------------------------------------------

    async def add_usage(self, counts: Sequence[HourlyCount]) -> None:
        """Add a batch of hourly counts in one transaction, dropping unknown tokens' counts."""
        rows = usage_rows(counts)
        if rows:
            await self._run(lambda c: transaction(c, lambda t: sqlite_usage.add_counts(t, rows)))

    async def usage(self, token_id: str, start: int, end: int) -> list[HourlyCount]:
        """The token's counts for ``start <= hour < end``, ordered by hour, then outcome."""
        return await self._run(lambda c: sqlite_usage.read_counts(c, token_id, start, end))

    async def prune_usage(self, before: int) -> int:
        """Delete the counts of hours before ``before``; how many rows."""
        return await self._run(lambda c: transaction(c, lambda t: sqlite_usage.prune(t, before)))

    async def read_meta(self, name: str) -> str | None:
        """A value the store keeps about itself, or None."""
        return await self._run(lambda c: sqlite_usage.read_meta(c, name))

    async def write_meta(self, name: str, value: str) -> None:
        """Set a value the store keeps about itself, durably."""
        await self._run(lambda c: transaction(c, lambda t: sqlite_usage.write_meta(t, name, value)))

    # -- change log ----------------------------------------------------------------------------

    async def latest_change(self) -> int:
        """The current high-water mark of the change log (0 before any change)."""
        return await self._run(sqlite_changes.latest)

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[bytes, float]]]:
        """(new high-water mark, (digest, changed_at) of changes after ``seq``), oldest first,
        one entry per digest (its first change after ``seq``).

        Raises :class:`ChangesPruned` when some of those changes were already pruned, or when
        ``seq`` is ahead of the log (the database was replaced): drop the whole cache, then
        continue from :meth:`latest_change`.
        """
        return await self._run(lambda c: sqlite_changes.changes_after(c, seq, self._path))

    # -- worker-thread side ------------------------------------------------------------------

    # -- notifications -----------------------------------------------------------------------

    async def listen(self, callback: ChangeCallback) -> None:
        """SQLite cannot push changes to other processes: its change log is polled."""

    @property
    def listening(self) -> bool:
        """Never: changes are found by polling the change log."""
        return False

    # -- plumbing ----------------------------------------------------------------------------

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

    def _one(self, conn: sqlite3.Connection, sql: str, key: object) -> TokenRecord | None:
        row = conn.execute(sql, (key,)).fetchone()
        return None if row is None else record_of(row, self._path)

    def _by_digest(self, conn: sqlite3.Connection, digest: bytes) -> TokenRecord | None:
        row = conn.execute(_SELECT_BY_DIGEST, (digest,)).fetchone()
        if row is None:
            return None
        return record_of(row[:-1], self._path, via_previous=bool(row[-1]))

    @staticmethod
    def _digests(conn: sqlite3.Connection, token_id: str) -> tuple[bytes, bytes | None] | None:
        """(current digest, previous digest or None) of the token; None if no such token."""
        row = conn.execute(
            "SELECT digest, previous_digest FROM tokens WHERE id = ?", (token_id,)
        ).fetchone()
        if row is None:
            return None
        return bytes(row[0]), None if row[1] is None else bytes(row[1])

    def _log_changes(self, conn: sqlite3.Connection, token_id: str, *digests: bytes | None) -> None:
        """Log each digest that is not None (a previous secret the token may not have)."""
        for digest in digests:
            if digest is not None:
                self._log_change(conn, token_id, digest)

    def _log_change(self, conn: sqlite3.Connection, token_id: str, digest: bytes) -> None:
        sqlite_changes.log_change(
            conn, token_id, digest, now=self._clock(), retention=self._change_retention
        )
