"""The PostgreSQL store's change log: appended by writers, polled by other instances.

``insert``, ``update_token``, ``replace_digest``, ``end_grace`` and ``delete`` call
:func:`log_change` in their own transaction, once for each digest of the token that the
change touches (a previous secret kept in a grace included): it appends a row numbered by
``change_counter``, prunes rows older than the retention, and sends
``pg_notify(CHANNEL, "<hex digest> <changed_at>")``, which the server delivers on commit to
every listener (:mod:`authsvc.store.postgres.listen`). Pollers read :func:`latest` and
:func:`changes_after` (the same contract as SQLite's change log).
"""

from __future__ import annotations

from typing import cast

from authsvc.store import ChangesPruned
from authsvc.store.postgres.driver import Connection, as_blob, as_integer
from authsvc.store.postgres.listen import CHANNEL


async def latest(conn: Connection) -> int:
    """The current high-water mark of the change log (0 before any change)."""
    return as_integer(await conn.fetchval("SELECT last FROM change_counter"))


async def changes_after(
    conn: Connection, seq: int, store_name: str
) -> tuple[int, list[tuple[bytes, float]]]:
    """(new high-water mark, (digest, changed_at) of changes after ``seq``), oldest first,
    one entry per digest; :class:`~authsvc.store.ChangesPruned` (naming ``store_name``) when
    that part of the log is gone or ``seq`` is ahead of it."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        high = await latest(conn)
        oldest = await conn.fetchval("SELECT min(seq) FROM changes")
        floor = high if oldest is None else as_integer(oldest) - 1
        if seq > high or seq < floor:
            raise ChangesPruned(
                f"token store {store_name}: changes after {seq} are no longer"
                f" available (log holds {floor + 1}..{high})"
            )
        rows = await conn.fetch(
            "SELECT digest, changed_at FROM changes WHERE seq > $1"
            " AND digest IS NOT NULL ORDER BY seq",
            seq,
        )
    first: dict[bytes, float] = {}
    for row in rows:
        first.setdefault(as_blob(row["digest"]), float(cast(float, row["changed_at"])))
    return high, list(first.items())


async def log_change(
    conn: Connection, token_id: str, digest: bytes, *, now: float, retention: float
) -> None:
    """Record that ``digest`` (of ``token_id``) changed at ``now``, drop entries older than
    ``retention`` seconds, and notify listeners; call inside the writer's transaction."""
    # the counter's row lock is held to commit: numbers are gap-free and in commit order,
    # so a poller never skips a change that commits after it read the high-water mark
    await conn.execute(
        "WITH counter AS (UPDATE change_counter SET last = last + 1 RETURNING last)"
        " INSERT INTO changes (seq, token_id, digest, changed_at)"
        " SELECT last, $1, $2, $3 FROM counter",
        token_id,
        digest,
        now,
    )
    # prune a prefix by seq (not by time alone) so the log is always a contiguous suffix
    await conn.execute(
        "DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes WHERE changed_at < $1)",
        now - retention,
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{digest.hex()} {now!r}")
