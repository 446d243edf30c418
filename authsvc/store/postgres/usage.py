"""The PostgreSQL store's hourly usage counts (``token_usage``) and the values it keeps about
itself (``authsvc_meta``), both of schema version 3.

A batch of counts is one statement: the rows travel as four arrays (``unnest``), not one
round trip each, and are added in the order :func:`authsvc.store.queries.usage_rows` sorted
them, so instances adding at once lock rows in one order.

A count of a token being deleted meanwhile must not outlive it. Each row's token is locked
``FOR KEY SHARE`` as the row is added (a lock that waits only for a delete, never for a
``last_used_at`` update): a delete that commits first leaves nothing to lock and the row is
dropped; one that comes after waits for the batch, and then deletes its counts too.
"""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.store import KEY_CHECK, HourlyCount, KeyCheckMismatch
from authsvc.store.postgres.driver import Connection, as_integer, as_text
from authsvc.store.queries import UsageRow

_ADD = (
    "INSERT INTO token_usage AS stored (token_id, hour, outcome, count)"
    " SELECT batch.token_id, batch.hour, batch.outcome, batch.count"
    " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[]) WITH ORDINALITY"
    " AS batch (token_id, hour, outcome, count, position)"
    " WHERE EXISTS (SELECT 1 FROM tokens WHERE tokens.id = batch.token_id FOR KEY SHARE)"
    " ORDER BY batch.position"
    " ON CONFLICT (token_id, hour, outcome) DO UPDATE SET count = stored.count + excluded.count"
)
_READ = (
    "SELECT hour, outcome, count FROM token_usage"
    " WHERE token_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour, outcome"
)


async def add_counts(conn: Connection, rows: Sequence[UsageRow]) -> None:
    """Add ``rows`` (:func:`authsvc.store.queries.usage_rows`) to the stored counts."""
    token_ids, hours, outcomes, counts = (list(column) for column in zip(*rows, strict=True))
    await conn.execute(_ADD, token_ids, hours, outcomes, counts)


async def read_counts(conn: Connection, token_id: str, start: int, end: int) -> list[HourlyCount]:
    """The token's counts for ``start <= hour < end``, ordered by hour, then outcome."""
    return [
        HourlyCount(
            token_id, as_integer(row["hour"]), as_text(row["outcome"]), as_integer(row["count"])
        )
        for row in await conn.fetch(_READ, token_id, start, end)
    ]


async def forget_token(conn: Connection, token_id: str) -> None:
    """Delete every count of ``token_id`` (in the transaction that deletes the token, after
    the token's row: its lock makes a batch adding to it finish first)."""
    await conn.execute("DELETE FROM token_usage WHERE token_id = $1", token_id)


async def prune(conn: Connection, before: int) -> int:
    """Delete the counts of hours before ``before``; how many rows."""
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM token_usage WHERE hour < $1 RETURNING 1)"
        " SELECT count(*) FROM gone",
        before,
    )
    return as_integer(deleted)


async def read_meta(conn: Connection, name: str) -> str | None:
    """The value kept under ``name``, or None."""
    value = await conn.fetchval("SELECT value FROM authsvc_meta WHERE name = $1", name)
    return None if value is None else as_text(value)


#: Advisory lock key serialising the key claims of concurrent token inserts; any constant
#: other than the migrations' works.
_KEY_CLAIM_LOCK = 0x61757468_6B6579  # "auth" "key"


async def claim_key_check(conn: Connection, value: str) -> None:
    """Inside the insert's transaction: record ``value`` as the key's check value unless
    the store holds tokens, then refuse when the store names another key. The transaction
    lock makes concurrent inserts take turns, and each statement after it sees the tokens
    the previous one committed (READ COMMITTED takes a new snapshot per statement)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEY_CLAIM_LOCK)
    await conn.execute(
        "INSERT INTO authsvc_meta (name, value) VALUES ($1, $2)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        " WHERE NOT EXISTS (SELECT 1 FROM tokens)",
        KEY_CHECK,
        value,
    )
    if await read_meta(conn, KEY_CHECK) != value:
        raise KeyCheckMismatch("the token store names another key than this token's")


async def write_meta(conn: Connection, name: str, value: str) -> None:
    """Set the value kept under ``name``."""
    await conn.execute(
        "INSERT INTO authsvc_meta (name, value) VALUES ($1, $2)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        name,
        value,
    )
