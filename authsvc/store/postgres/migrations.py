"""Versioned schema migrations of the PostgreSQL store.

The schema version lives in the one-row table ``authsvc_schema``; migration step ``i`` takes
it from ``i`` to ``i + 1`` (SQLite keeps the same bookkeeping in ``PRAGMA user_version``, see
:mod:`authsvc.store.sqlite.schema`). :func:`migrate` runs every missing step and the version
bump in one transaction, holding an advisory lock: instances starting at once queue on the
lock, the first one migrates and the others find the work done. DDL is transactional
in PostgreSQL, so a failed step leaves the previous version intact.

A database whose version is newer than :data:`SCHEMA_VERSION` is refused (and not touched)
with the same sentence as SQLite: an older authsvc must not write to a schema it does not
know.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol

from authsvc.store import StoreError

#: Migration steps; step ``i`` takes the schema from version i to i + 1.
#:
#: ``name_fold`` is Python's ``str.lower(name)``, written by the store: matching and ordering
#: use it with the byte-order "C" collation, exactly as SQLite compares ``authsvc_fold(name)``,
#: whatever the database's locale. ``change_counter`` hands out change sequence numbers under
#: a row lock, so they are gap-free and in commit order (a sequence is neither).
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE tokens (
            id text PRIMARY KEY,
            name text COLLATE "C" NOT NULL CONSTRAINT tokens_name_key UNIQUE,
            name_fold text COLLATE "C" NOT NULL,
            digest bytea NOT NULL CONSTRAINT tokens_digest_key UNIQUE,
            permissions text[] NOT NULL,
            ip_filter text,
            created_at double precision NOT NULL,
            expires_at double precision,
            created_by text NOT NULL,
            last_used_at double precision,
            last_used_ip text
        )""",
        "CREATE INDEX tokens_name_order ON tokens (name_fold, name)",
        """CREATE TABLE changes (
            seq bigint PRIMARY KEY,
            token_id text NOT NULL,
            digest bytea,
            changed_at double precision NOT NULL
        )""",
        "CREATE TABLE change_counter (last bigint NOT NULL)",
        "INSERT INTO change_counter (last) VALUES (0)",
    ),
    # 2: rotation with a grace period keeps the previous secret's digest until it ends
    (
        "ALTER TABLE tokens ADD COLUMN previous_digest bytea"
        " CONSTRAINT tokens_previous_digest_key UNIQUE,"
        " ADD COLUMN grace_ends_at double precision",
    ),
    # 3: per-token rate limits, hourly usage counts, and values the store keeps about
    # itself (the key's check value); the hour index serves pruning. ``outcome`` and
    # ``name`` compare in "C", so ordering matches SQLite whatever the database's locale;
    # ``token_id`` keeps the collation of ``tokens.id``, which it is compared with.
    (
        "ALTER TABLE tokens ADD COLUMN rate_limit text",
        """CREATE TABLE token_usage (
            token_id text NOT NULL,
            hour bigint NOT NULL,
            outcome text COLLATE "C" NOT NULL,
            count bigint NOT NULL,
            CONSTRAINT token_usage_pkey PRIMARY KEY (token_id, hour, outcome)
        )""",
        "CREATE INDEX token_usage_hour ON token_usage (hour)",
        """CREATE TABLE authsvc_meta (
            name text COLLATE "C" CONSTRAINT authsvc_meta_pkey PRIMARY KEY,
            value text NOT NULL
        )""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

# advisory lock key; any constant works, this one spells "authsvc" in ASCII
_LOCK_KEY: Final = 0x61757468737663
_VERSION_TABLE: Final = "authsvc_schema"


class MigrationConnection(Protocol):
    """The part of an asyncpg connection that migrations use."""

    async def execute(self, query: str, *args: object) -> str:
        """Run a statement."""

    async def fetchval(self, query: str, *args: object) -> object:
        """The first column of the first row, or None."""

    def transaction(self) -> AbstractAsyncContextManager[object]:
        """A transaction: committed on normal exit, rolled back on an exception."""


def newer_schema_error(found: int, supported: int = SCHEMA_VERSION) -> StoreError:
    """The refusal of a database written by a newer authsvc."""
    return StoreError(
        f"database schema version {found} is newer than this authsvc supports"
        f" ({supported}); upgrade authsvc"
    )


async def schema_version(conn: MigrationConnection) -> int:
    """The database's schema version: 0 for an empty database."""
    if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _VERSION_TABLE) is not True:
        return 0
    found = await conn.fetchval(f"SELECT max(version) FROM {_VERSION_TABLE}")  # noqa: S608 - constant name
    if found is None:
        return 0
    if not isinstance(found, int):
        raise StoreError(f"unreadable schema version {found!r}")
    return found


async def migrate(conn: MigrationConnection) -> tuple[int, int]:
    """Bring the schema to :data:`SCHEMA_VERSION`; (version found, version now).

    Raises the :func:`newer_schema_error` for a newer database, leaving it untouched.
    """
    found = await schema_version(conn)
    if found > SCHEMA_VERSION:
        raise newer_schema_error(found)
    if found == SCHEMA_VERSION:
        return found, found  # the common start-up: no lock, no transaction
    # A session lock, taken before the migration transaction begins: a transaction that was
    # already open while another instance migrated could miss the new tables (the server
    # only refreshes its catalog caches at transaction start or when it locks a table).
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        found = await schema_version(conn)  # again under the lock: another one may be done
        if found > SCHEMA_VERSION:
            raise newer_schema_error(found)
        if found < SCHEMA_VERSION:
            async with conn.transaction():
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} (version integer NOT NULL)"
                )
                for step in MIGRATIONS[found:]:
                    for statement in step:
                        await conn.execute(statement)
                await conn.execute(f"DELETE FROM {_VERSION_TABLE}")  # noqa: S608 - constant name
                await conn.execute(
                    f"INSERT INTO {_VERSION_TABLE} (version) VALUES ($1)",  # noqa: S608 - constant
                    SCHEMA_VERSION,
                )
    finally:
        # a lost connection releases the lock by itself; asyncpg's pool also resets it
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return found, SCHEMA_VERSION
