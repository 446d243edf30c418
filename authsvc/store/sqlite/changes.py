"""The SQLite store's change log, which lets other processes sharing the file invalidate caches.

``insert``, ``update_token``, ``replace_digest``, ``end_grace`` and ``delete`` call
:func:`log_change` in their own transaction, once for each digest of the token that the
change touches (a previous secret kept in a grace included). Pollers read :func:`latest` once, then
:func:`changes_after` with the last high-water mark; rows older than the retention are pruned,
and a poller that fell further behind gets :class:`~authsvc.store.ChangesPruned` and must drop
its whole cache. Blocking calls, for the store's worker thread.
"""

from __future__ import annotations

import sqlite3

from authsvc.store import ChangesPruned
from authsvc.store.sqlite.schema import transaction

_LATEST_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'changes'"


def latest(conn: sqlite3.Connection) -> int:
    """The current high-water mark of the change log (0 before any change)."""
    row = conn.execute(_LATEST_SEQ).fetchone()
    return 0 if row is None else int(row[0])


def changes_after(
    conn: sqlite3.Connection, seq: int, path: str
) -> tuple[int, list[tuple[bytes, float]]]:
    """(new high-water mark, (digest, changed_at) of changes after ``seq``), oldest first,
    one entry per digest, read in one transaction; :class:`~authsvc.store.ChangesPruned`
    (naming ``path``) when that part of the log is gone or ``seq`` is ahead of it."""

    def body(c: sqlite3.Connection) -> tuple[int, list[tuple[bytes, float]]]:
        high = latest(c)
        oldest = c.execute("SELECT min(seq) FROM changes").fetchone()[0]
        floor = high if oldest is None else int(oldest) - 1
        if seq > high or seq < floor:
            raise ChangesPruned(
                f"token store {path}: changes after {seq} are no longer available"
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

    return transaction(conn, body, write=False)


def log_change(
    conn: sqlite3.Connection, token_id: str, digest: bytes, *, now: float, retention: float
) -> None:
    """Record that ``digest`` (of ``token_id``) changed at ``now`` and drop entries older than
    ``retention`` seconds; call inside the writer's transaction."""
    conn.execute(
        "INSERT INTO changes (token_id, digest, changed_at) VALUES (?, ?, ?)",
        (token_id, digest, now),
    )
    # prune a prefix by seq (not by time alone) so the log is always a contiguous suffix
    conn.execute(
        "DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes WHERE changed_at < ?)",
        (now - retention,),
    )
