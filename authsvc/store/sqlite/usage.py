"""The SQLite store's hourly usage counts (``token_usage``) and the values it keeps about
itself (``authsvc_meta``), both of schema version 3.

Blocking calls for the store's worker thread; the writing ones run inside the caller's
transaction (:func:`authsvc.store.sqlite.schema.transaction`), so a batch of counts is added
whole or not at all, and the existence of each token is checked under the write lock: no
token can be deleted between the check and the insert.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from authsvc.store import KEY_CHECK, HourlyCount, KeyCheckMismatch
from authsvc.store.queries import UsageRow

# The WHERE clause drops the counts of tokens that no longer exist (it also keeps SQLite
# from reading ON CONFLICT as the ON of a join).
_ADD = (
    "INSERT INTO token_usage (token_id, hour, outcome, count)"
    " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM tokens WHERE id = ?1)"
    " ON CONFLICT (token_id, hour, outcome) DO UPDATE SET count = count + excluded.count"
)
_READ = (
    "SELECT hour, outcome, count FROM token_usage"
    " WHERE token_id = ? AND hour >= ? AND hour < ? ORDER BY hour, outcome"
)


def add_counts(conn: sqlite3.Connection, rows: Sequence[UsageRow]) -> None:
    """Add ``rows`` (:func:`authsvc.store.queries.usage_rows`) to the stored counts."""
    conn.executemany(_ADD, rows)


def read_counts(conn: sqlite3.Connection, token_id: str, start: int, end: int) -> list[HourlyCount]:
    """The token's counts for ``start <= hour < end``, ordered by hour, then outcome."""
    return [
        HourlyCount(token_id, int(hour), str(outcome), int(count))
        for hour, outcome, count in conn.execute(_READ, (token_id, start, end))
    ]


def forget_token(conn: sqlite3.Connection, token_id: str) -> None:
    """Delete every count of ``token_id`` (in the transaction that deletes the token)."""
    conn.execute("DELETE FROM token_usage WHERE token_id = ?", (token_id,))


def prune(conn: sqlite3.Connection, before: int) -> int:
    """Delete the counts of hours before ``before``; how many rows."""
    return conn.execute("DELETE FROM token_usage WHERE hour < ?", (before,)).rowcount


def read_meta(conn: sqlite3.Connection, name: str) -> str | None:
    """The value kept under ``name``, or None."""
    row = conn.execute("SELECT value FROM authsvc_meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def claim_key_check(conn: sqlite3.Connection, value: str) -> None:
    """Inside the insert's write transaction (SQLite has one writer at a time): record
    ``value`` as the key's check value unless the store holds tokens, then refuse when the
    store names another key (:meth:`authsvc.store.TokenStore.insert`)."""
    conn.execute(
        "INSERT INTO authsvc_meta (name, value) VALUES (?1, ?2)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        " WHERE NOT EXISTS (SELECT 1 FROM tokens)",
        (KEY_CHECK, value),
    )
    if read_meta(conn, KEY_CHECK) != value:
        raise KeyCheckMismatch("the token store names another key than this token's")


def write_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    """Set the value kept under ``name`` (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO authsvc_meta (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )
