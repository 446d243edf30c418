"""The serving mark: how a restore and the instances serving a PostgreSQL schema keep out of
each other's way (SPEC §13), through one session-level advisory lock per schema.

- Each serving instance holds the lock *shared* on its LISTEN connection, for as long as that
  connection lives (:mod:`authsvc.store.postgres.listen` takes it again on every reconnect).
- A restore holds it *exclusively* from before it looks at the store until its audit replay
  is done. It is refused while any instance holds it; an instance that starts meanwhile waits.

A restore also marks the schema as restoring, in a table of its own (``authsvc_restore``,
holding when it began) made before the snapshot goes in and dropped once the restore has
finished: neither pg_dump nor pg_restore touches it, so the mark outlives a restore that
stops half-way, and the store is refused until one finishes (``RestoreUnfinished``).

A SQLite file needs no lock: a restore refuses a file another process has open.
The lock's keys are ``(SERVING_LOCK, hashtext(schema))``. The two-key form lives in another
key space than the one-key locks of the migrations and the key claim, so they never meet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from authsvc.store import RestoreUnfinished, StoreError
from authsvc.store.postgres.driver import Connection
from authsvc.store.snapshots import SnapshotRefused

#: The lock's first key (any constant works; this one spells "serv").
SERVING_LOCK: Final = 0x73657276

_SCHEMA: Final = "hashtext(coalesce(current_schema(), ''))"
_MARK_TABLE: Final = "authsvc_restore"
#: Who holds the lock of a schema ($2) besides this session: advisory locks of two int4
#: keys show the first in ``classid``, the second (as unsigned) in ``objid``, 2 in ``objsubid``.
_HOLDERS: Final = (
    "SELECT a.pid, host(a.client_addr) AS client, a.backend_start"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
    " AND l.classid = $1::int8::oid AND l.objid = (hashtext($2)::int8 & 4294967295)::oid"
    " AND l.pid <> pg_backend_pid()"
)


class RestoreRunning(StoreError):
    """A restore holds the schema: an instance may not serve it until the restore ends."""


async def mark_serving(conn: Connection, store_name: str) -> None:
    """Hold the schema's serving lock shared on ``conn`` (until it closes);
    :class:`RestoreRunning` when a restore holds it, and RestoreUnfinished when the last
    one stopped half-way (the caller closes ``conn``, which lets the lock go)."""
    held = await conn.fetchval(f"SELECT pg_try_advisory_lock_shared($1, {_SCHEMA})", SERVING_LOCK)
    if not held:
        raise RestoreRunning(f"a restore is running on the token store {store_name}")
    # an instance that waited for a restore must not serve what a failed one left
    began = await restore_began(conn)
    if began is not None:
        raise RestoreUnfinished(store_name, began)


async def restore_began(conn: Connection) -> str | None:
    """When the unfinished restore into the schema began, or None. The mark is the table's
    presence in the schema itself (not anywhere on the search_path): one whose row is
    missing still counts."""
    table = await _mark_table(conn)
    if table is None or not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
        return None
    began = await conn.fetchval(f"SELECT began FROM {table} LIMIT 1")  # noqa: S608
    return "an unknown time" if began is None else str(began)


async def mark_restoring(conn: Connection, began: str) -> None:
    """Mark the schema as restoring, durably (committed before this returns); the mark of
    an unfinished restore is kept as it is (its time stays the first one's)."""
    table = await _mark_table(conn)
    if table is None:
        raise SnapshotRefused("the store's search_path selects no existing schema to restore into")
    async with conn.transaction():
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (began text NOT NULL)")
        if await conn.fetchval(f"SELECT count(*) FROM {table}") == 0:  # noqa: S608
            await conn.execute(f"INSERT INTO {table} (began) VALUES ($1)", began)  # noqa: S608


async def unmark_restoring(conn: Connection) -> None:
    """The restore has finished: drop the mark."""
    table = await _mark_table(conn)
    if table is not None:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")


async def _mark_table(conn: Connection) -> str | None:
    """The mark table's name, qualified by the connection's schema (None: no schema)."""
    name = await conn.fetchval(f"SELECT quote_ident(current_schema()) || '.{_MARK_TABLE}'")
    return None if name is None else str(name)


async def hold_for_restore(conn: Connection, schema: str, store_name: str) -> None:
    """Hold ``schema``'s serving lock exclusively on ``conn`` (until it closes);
    SnapshotRefused, naming the sessions that hold it, when anything else does."""
    if await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", SERVING_LOCK, schema):
        return
    rows = await conn.fetch(_HOLDERS, SERVING_LOCK, schema)
    sessions = ", ".join(_session(row["pid"], row["client"], row["backend_start"]) for row in rows)
    raise SnapshotRefused(
        f"the token store {store_name} (schema {schema!r}) is in use: an authsvc serve, or "
        f"another restore, holds it ({sessions or 'a session that just ended'}). Stop every "
        "serve on it, on every host, and restore again; a session left by a host that died "
        "ends with SELECT pg_terminate_backend(pid)"
    )


def _session(pid: object, client: object, since: object) -> str:
    """One holder, as far as this role may see it (without pg_read_all_stats the server
    hides other roles' addresses and times: NULL)."""
    if client is None and since is None:
        return f"pid {pid}, details hidden from this role (it needs pg_read_all_stats)"
    where = "a local socket" if client is None else client
    when = since.strftime("%Y-%m-%d %H:%M:%S %Z") if isinstance(since, datetime) else since
    return f"pid {pid} from {where} since {when}"
