"""The PostgreSQL token store (asyncpg): :class:`PostgresStore` and its queries.

The pool, its deadlines and the mapping of driver errors live in :mod:`.pool`; the typed
views of asyncpg objects, value converters and URL helpers in :mod:`.driver`; the
LISTEN/NOTIFY listener in :mod:`.listen`.
The names other modules import from here are re-exported (see ``__all__``).

Every write is one transaction: all of it is committed, or none of it. Errors: unreachable,
lost or timed-out connections and server-side failures raise
:class:`~authsvc.store.StoreUnavailable`; a name in use raises :class:`~authsvc.store.NameTaken`;
other constraint violations raise :class:`~authsvc.store.StoreError`. The store names the server
as ``postgresql://host:port/database``: no user name, no password, no query string; a
password that turns up in a driver's message is blanked out.

Listing behaves exactly like the SQLite store: ``name_fold`` holds Python's
``str.lower(name)`` and both columns compare in the byte-order "C" collation, whatever the
database's locale (see :mod:`authsvc.store.postgres.migrations` for the schema).

Changes reach other instances two ways. Every write appends each digest it touches (the
previous secret's of a rotation with a grace included) to the change log polled with
:meth:`PostgresStore.changes_since` (same contract as SQLite's), and sends
``pg_notify('authsvc_changes', <hex digest>)`` in the same transaction, which the server
delivers on commit to every :meth:`PostgresStore.listen`-er
(:mod:`authsvc.store.postgres.changes`).

Usage counts and the store's own values: :mod:`authsvc.store.postgres.usage`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # asyncpg ships no type information

from authsvc.rules.tokens import TokenRecord
from authsvc.store import (
    KEY_CHECK,
    ChangeCallback,
    HourlyCount,
    ListQuery,
    NameTaken,
    StoreState,
    StoreUnavailable,
    TokenChange,
    Usage,
)
from authsvc.store.postgres import changes as pg_changes
from authsvc.store.postgres import migrations
from authsvc.store.postgres import usage as pg_usage
from authsvc.store.postgres.driver import (
    Connection,
    Pool,
    Row,
    as_blob,
    as_integer,
    display_name,
    record_of,
    storable,
)
from authsvc.store.postgres.listen import CHANNEL, Listener
from authsvc.store.postgres.pool import PgPool
from authsvc.store.postgres.serving import restore_began
from authsvc.store.queries import (
    COLUMNS,
    Params,
    assignments,
    conditions,
    count_column,
    count_columns,
    order_by,
    usage_rows,
)

__all__ = [
    "CHANNEL",
    "Connection",
    "Pool",
    "PostgresStore",
    "Row",
    "display_name",
]

_SELECT_BY_ID = f"SELECT {COLUMNS} FROM tokens WHERE id = $1"  # noqa: S608 - constant columns
# the current secret's digest, else a previous one still kept: each half uses its unique index
_SELECT_BY_DIGEST = (
    f"SELECT {COLUMNS}, false AS via_previous FROM tokens WHERE digest = $1"  # noqa: S608 - constant columns
    f" UNION ALL SELECT {COLUMNS}, true FROM tokens WHERE previous_digest = $1"
)
# the token's digests, its row locked: concurrent rotations queue, each seeing the last one's
_DIGESTS_FOR_UPDATE = "SELECT digest, previous_digest FROM tokens WHERE id = $1 FOR UPDATE"
_FOLD: Final = "name_fold"  # the folded name, as the listing orders on it
_UNIQUE_NAME: Final = "tokens_name_key"


def _mark(n: int) -> str:
    """PostgreSQL's placeholder of the n-th bound value."""
    return f"${n}"


class PostgresStore:
    """A :class:`~authsvc.store.TokenStore` in a PostgreSQL database at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 10,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        change_retention: float = 3600.0,
        keepalive: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = PgPool(
            url,
            max_size=max_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        self._change_retention = change_retention
        self._clock = clock
        self._listener = Listener(self._db, keepalive=keepalive)

    @property
    def name(self) -> str:
        """The server and database, without credentials: ``postgresql://host:port/db``."""
        return self._db.name

    @property
    def schema_version(self) -> int:
        """The schema version this code migrates the database to."""
        return migrations.SCHEMA_VERSION

    async def exists(self) -> bool:
        """Whether a store's version table is on the URL's search_path (where the store
        finds its tables), asked on a connection of its own: nothing is created (opening
        creates the tables)."""

        async def read(c: Connection) -> bool:
            return await migrations.schema_version(c) > 0

        return await self._db.inspect(read)

    # -- lifecycle -------------------------------------------------------------------------

    async def key_state(self) -> StoreState:
        """Tokens held, the key's check value and an unfinished restore, read on a
        connection of its own before the pool opens (nothing migrated or written)."""

        async def read(c: Connection) -> StoreState:
            began = await restore_began(c)  # made before the snapshot's tables: first
            version = await migrations.schema_version(c)
            if version < 1:
                return StoreState(0, None, began)
            held = as_integer(await c.fetchval("SELECT count(*) FROM tokens"))
            if version < 3:  # the schema that brought authsvc_meta
                return StoreState(held, None, began)
            return StoreState(held, await pg_usage.read_meta(c, KEY_CHECK), began)

        return await self._db.inspect(read)

    async def open(self) -> None:
        """Connect the pool and bring the schema to the current version."""
        await self._db.open()

    async def close(self) -> None:
        """Stop listening, let calls in flight finish, then close every connection."""
        await self._db.close(first=self._listener.stop)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers a query."""
        await self._db.run(lambda c: c.fetchval("SELECT 1"))

    # -- reads -----------------------------------------------------------------------------

    async def get_by_digest(self, digest: bytes) -> TokenRecord | None:
        """The token whose secret has this digest, or None."""

        async def body(c: Connection) -> TokenRecord | None:
            row = await c.fetchrow(_SELECT_BY_DIGEST, digest)
            return None if row is None else record_of(row, via_previous=row["via_previous"] is True)

        return await self._db.run(body)

    async def get(self, token_id: str) -> TokenRecord | None:
        """The token with this id, or None."""
        return await self._db.run(lambda c: self._one(c, _SELECT_BY_ID, token_id))

    async def list_tokens(self, query: ListQuery) -> tuple[int, list[TokenRecord]]:
        """(total matching, one page of records) for ``query``."""
        order = order_by(query.sort, query.order, fold=_FOLD)
        if query.limit < 0 or query.offset < 0:
            raise ValueError("limit and offset must not be negative")
        if query.name_contains is not None and not storable(query.name_contains):
            return 0, []  # it cannot occur in any name, and the server would refuse the text
        params = Params(_mark)
        where = f" WHERE {conditions(query, params, fold=_FOLD)}"
        count_sql = f"SELECT count(*) FROM tokens{where}"  # noqa: S608 - fixed fragments only
        count_values = list(params.values)  # the page adds its paging values after these
        paging = f"LIMIT {params.add(query.limit)} OFFSET {params.add(query.offset)}"
        page_sql = f"SELECT {COLUMNS} FROM tokens{where} ORDER BY {order} {paging}"  # noqa: S608 - fixed fragments only

        async def body(c: Connection) -> tuple[int, list[TokenRecord]]:
            # one snapshot, so the total and the page agree
            async with c.transaction(isolation="repeatable_read", readonly=True):
                total = await c.fetchval(count_sql, *count_values)
                rows = await c.fetch(page_sql, *params.values)
            return as_integer(total), [record_of(row) for row in rows]

        return await self._db.run(body)

    async def count_tokens(self, queries: Sequence[ListQuery]) -> list[int]:
        """How many tokens match each query's filters, in one pass over the table."""
        params = Params(_mark)
        columns = count_columns(queries, params, fold=_FOLD, name_searchable=storable)
        sql = f"SELECT {columns} FROM tokens"  # noqa: S608 - fixed fragments only

        async def body(c: Connection) -> list[int]:
            row = await c.fetchrow(sql, *params.values)
            if row is None:  # an aggregate without GROUP BY always answers one row
                raise StoreUnavailable(f"token store {self.name}: the count returned no row")
            return [as_integer(row[count_column(i)]) for i in range(len(queries))]

        return await self._db.run(body)

    async def digest_prefixes(self) -> bytes:
        """The first 8 bytes of every digest, in ascending order, as one value."""
        # one bytea value, not a row per token: a million tokens arrive in one message.
        # Previous secrets still kept after a rotation with a grace count as existing too.
        sql = (
            "SELECT coalesce(string_agg(prefix, ''::bytea ORDER BY digest), ''::bytea) FROM"
            " (SELECT digest, substring(digest || '\\x0000000000000000'::bytea FROM 1 FOR 8)"
            " AS prefix FROM (SELECT digest FROM tokens UNION ALL SELECT previous_digest"
            " FROM tokens WHERE previous_digest IS NOT NULL) AS every) AS prefixes"
        )

        async def body(c: Connection) -> bytes:
            return as_blob(await c.fetchval(sql))

        return await self._db.run(body)

    async def all_tokens(self) -> list[TokenRecord]:
        """Every token, ordered by name."""
        sql = f"SELECT {COLUMNS} FROM tokens ORDER BY {order_by('name', 'asc', fold=_FOLD)}"  # noqa: S608 - constant

        async def body(c: Connection) -> list[TokenRecord]:
            return [record_of(row) for row in await c.fetch(sql)]

        return await self._db.run(body)

    # -- writes ----------------------------------------------------------------------------

    async def insert(
        self, record: TokenRecord, digest: bytes, *, key_check: str | None = None
    ) -> None:
        """Store a new token durably; raise NameTaken if the name is in use, and
        KeyCheckMismatch if ``key_check`` is given and the store names another key."""
        sql = (
            f"INSERT INTO tokens ({COLUMNS}, name_fold, digest)"  # noqa: S608 - constant columns
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
        values = (
            record.id,
            record.name,
            sorted(record.permissions),
            record.ip_filter,
            record.created_at,
            record.expires_at,
            record.created_by,
            record.last_used_at,
            record.last_used_ip,
            None,  # a new token has one secret
            record.rate_limit,
            record.name.lower(),
            digest,
        )

        async def body(c: Connection) -> None:
            if key_check is not None:
                await pg_usage.claim_key_check(c, key_check)
            try:
                await c.execute(sql, *values)
            except asyncpg.UniqueViolationError as exc:
                # the unique index decides, so two writers racing for a name cannot both win
                if getattr(exc, "constraint_name", None) == _UNIQUE_NAME:
                    raise NameTaken(f"a token named {record.name!r} already exists") from None
                raise
            await self._log_change(c, record.id, digest)

        await self._db.write(body)

    async def update_permissions(
        self, token_id: str, permissions: frozenset[str]
    ) -> TokenRecord | None:
        """Replace a token's permissions; the updated record, or None if no such token."""
        return await self.update_token(token_id, TokenChange(permissions=permissions))

    async def update_token(self, token_id: str, change: TokenChange) -> TokenRecord | None:
        """Apply ``change`` in one transaction, logging the token's digests as changes; the
        updated record, or None if no such token. A change of nothing writes nothing."""
        params = Params(_mark)
        sets = assignments(change, params, permissions=sorted)
        where = f"WHERE id = {params.add(token_id)}"
        if sets:
            sql = f"UPDATE tokens SET {sets} {where} RETURNING digest, previous_digest, {COLUMNS}"  # noqa: S608 - fixed fragments only
        else:
            sql = f"SELECT {COLUMNS} FROM tokens {where}"  # noqa: S608 - fixed fragments only

        async def body(c: Connection) -> TokenRecord | None:
            row = await c.fetchrow(sql, *params.values)
            if row is None:
                return None
            if sets:
                await self._log_changes(c, token_id, row["digest"], row["previous_digest"])
            return record_of(row)

        return await self._db.write(body)

    async def replace_digest(
        self, token_id: str, digest: bytes, *, grace_ends_at: float | None = None
    ) -> tuple[bytes, TokenRecord] | None:
        """Rotate: swap the stored digest, keeping the old one until ``grace_ends_at`` if
        given; (old digest, record), or None if no such token."""

        async def body(c: Connection) -> tuple[bytes, TokenRecord] | None:
            found = await c.fetchrow(_DIGESTS_FOR_UPDATE, token_id)
            if found is None:
                return None
            old = as_blob(found["digest"])
            row = await c.fetchrow(
                "UPDATE tokens SET digest = $2, previous_digest = $3, grace_ends_at = $4"  # noqa: S608 - constant columns
                f" WHERE id = $1 RETURNING {COLUMNS}",
                token_id,
                digest,
                None if grace_ends_at is None else old,
                grace_ends_at,
            )
            # a previous secret still kept from an earlier rotation ends here: a change too
            await self._log_changes(c, token_id, old, found["previous_digest"], digest)
            return None if row is None else (old, record_of(row))

        return await self._db.write(body)

    async def end_grace(
        self, token_id: str, digest: bytes | None, *, previous: bool = False
    ) -> tuple[bytes, bytes] | None:
        """Forget the token's previous secret, if ``digest`` is still its current secret's
        (or, with ``previous``, that previous secret's; None: whichever); (current
        digest, previous digest), or None when there is nothing to end."""

        async def body(c: Connection) -> tuple[bytes, bytes] | None:
            found = await c.fetchrow(_DIGESTS_FOR_UPDATE, token_id)
            if found is None or found["previous_digest"] is None:
                return None
            current, kept = as_blob(found["digest"]), as_blob(found["previous_digest"])
            if digest is not None and (kept if previous else current) != digest:
                return None  # rotated meanwhile: that grace is over already
            await c.execute(
                "UPDATE tokens SET previous_digest = NULL, grace_ends_at = NULL WHERE id = $1",
                token_id,
            )
            await self._log_changes(c, token_id, current, kept)
            return current, kept

        return await self._db.write(body)

    async def delete(self, token_id: str, *, digest: bytes | None = None) -> bytes | None:
        """Delete a token (only while its current secret has ``digest``, if given); its
        digest (for cache invalidation), or None if no such token."""

        async def body(c: Connection) -> bytes | None:
            found = await c.fetchrow(
                "DELETE FROM tokens WHERE id = $1 AND ($2::bytea IS NULL OR digest = $2)"
                " RETURNING digest, previous_digest",
                token_id,
                digest,
            )
            if found is None:
                return None
            await pg_usage.forget_token(c, token_id)
            await self._log_changes(c, token_id, found["digest"], found["previous_digest"])
            return as_blob(found["digest"])

        return await self._db.write(body)

    async def record_usage(self, usages: Sequence[Usage]) -> None:
        """Apply a batch of last-used updates in one transaction, only ever moving forward."""
        # sorted by id, so concurrent batches from several instances lock rows in one order
        # (no deadlocks); the sort is stable, so one token's reports keep their order
        rows = [(u.token_id, u.used_at, u.ip) for u in sorted(usages, key=lambda u: u.token_id)]
        if not rows:
            return
        sql = (
            "UPDATE tokens SET last_used_at = $2, last_used_ip = $3"
            " WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)"
        )
        await self._db.write(lambda c: c.executemany(sql, rows))

    # -- usage counts and the store's own values ---------------------------------------------

    async def add_usage(self, counts: Sequence[HourlyCount]) -> None:
        """Add a batch of hourly counts in one statement, dropping unknown tokens' counts."""
        rows = usage_rows(counts)
        if rows:
            await self._db.write(lambda c: pg_usage.add_counts(c, rows))

    async def usage(self, token_id: str, start: int, end: int) -> list[HourlyCount]:
        """The token's counts for ``start <= hour < end``, ordered by hour, then outcome."""
        return await self._db.run(lambda c: pg_usage.read_counts(c, token_id, start, end))

    async def prune_usage(self, before: int) -> int:
        """Delete the counts of hours before ``before``; how many rows."""
        return await self._db.write(lambda c: pg_usage.prune(c, before))

    async def read_meta(self, name: str) -> str | None:
        """A value the store keeps about itself, or None."""
        return await self._db.run(lambda c: pg_usage.read_meta(c, name))

    async def write_meta(self, name: str, value: str) -> None:
        """Set a value the store keeps about itself, durably."""
        await self._db.write(lambda c: pg_usage.write_meta(c, name, value))

    # -- change log ----------------------------------------------------------------------------

    async def latest_change(self) -> int:
        """The current high-water mark of the change log (0 before any change)."""
        return await self._db.run(pg_changes.latest)

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[bytes, float]]]:
        """(new high-water mark, (digest, changed_at) of changes after ``seq``), oldest first,
        one entry per digest (its first change after ``seq``).

        Raises :class:`~authsvc.store.ChangesPruned` when some of those changes were already
        pruned, or when ``seq`` is ahead of the log (the database was replaced): drop the whole
        cache, then continue from :meth:`latest_change`.
        """
        return await self._db.run(lambda c: pg_changes.changes_after(c, seq, self._db.name))

    # -- notifications -----------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether a LISTEN connection is up right now (changes arrive as they commit)."""
        return self._listener.listening

    async def listen(self, callback: ChangeCallback) -> None:
        """Call ``callback`` for every change committed by any instance sharing the database.

        ``callback(digest, changed_at)`` names one digest a cache may hold (the old one after
        a rotation) and when the writer committed it (its clock): drop that entry.
        ``callback(None, None)`` means changes may have been missed, because the
        listening connection was lost and is now back, or a payload was unreadable: drop the
        whole cache (notifications are not durable). Callbacks run on the event loop and must
        not block; an exception in one is logged and ignored.

        Uses one dedicated connection, not one from the pool, which also marks this
        instance as serving the schema (:mod:`~authsvc.store.postgres.serving`; a restore
        running on it is waited for). The first connection attempt happens before this
        returns; when it fails, or whenever the connection is lost later,
        a background task reconnects with capped exponential backoff and then calls
        ``callback(None)`` — only once it is listening again, so nothing read in between can
        survive. Start listening before filling a cache. :meth:`close` stops it.
        """
        self._db.check_open()
        await self._listener.start(callback)

    # -- plumbing ----------------------------------------------------------------------------

    @staticmethod
    async def _one(conn: Connection, sql: str, key: object) -> TokenRecord | None:
        row = await conn.fetchrow(sql, key)
        return None if row is None else record_of(row)

    async def _log_changes(self, conn: Connection, token_id: str, *digests: object) -> None:
        """Log each digest that is not None (a previous secret the token may not have)."""
        for digest in digests:
            if digest is not None:
                await self._log_change(conn, token_id, as_blob(digest))

    async def _log_change(self, conn: Connection, token_id: str, digest: bytes) -> None:
        await pg_changes.log_change(
            conn, token_id, digest, now=self._clock(), retention=self._change_retention
        )
