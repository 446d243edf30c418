"""The token store protocol and ``open_store(url)``.

Every backend (SQLite, PostgreSQL) implements :class:`TokenStore`; nothing above this
package knows which one it talks to. All methods raise :class:`StoreUnavailable` when the
backend cannot be reached or answers with an operational error, so callers can fail closed
in one place.

Both backends also keep a change log for cache invalidation across processes
(``latest_change()`` / ``changes_since(seq)``, raising :class:`ChangesPruned`), and the
PostgreSQL store can push changes as they commit (``PostgresStore.listen``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from authsvc.tokens import TokenRecord


class StoreError(Exception):
    """Base class of store errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or cannot complete the operation right now."""


class NameTaken(StoreError):
    """Another existing token already has this name."""


class ChangesPruned(StoreError):
    """Changes after the requested sequence number are gone: drop the whole cache."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filtering, ordering and paging of ``list_tokens``.

    ``sort="expires_at"`` orders tokens without expiry after all others in ascending
    order (they expire last) and first in descending order; ties break on ``name``.
    """

    name_contains: str | None = None
    sort: Literal["name", "expires_at"] = "name"
    order: Literal["asc", "desc"] = "asc"
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """One token's last use, reported in batches off the request path."""

    token_id: str
    used_at: float
    ip: str


class TokenStore(Protocol):
    """Persistence of token records keyed by id and by the HMAC digest of their secret."""

    async def open(self) -> None:
        """Connect and create or migrate the schema.

        A store whose schema is newer than this code raises :class:`StoreError` (not
        :class:`StoreUnavailable`): "database schema version N is newer than this authsvc
        supports (M); upgrade authsvc".
        """

    async def close(self) -> None:
        """Finish pending work and release connections."""

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers a trivial query."""

    async def get_by_digest(self, digest: bytes) -> TokenRecord | None:
        """The token whose secret has this digest, or None."""

    async def get(self, token_id: str) -> TokenRecord | None:
        """The token with this id, or None."""

    async def list_tokens(self, query: ListQuery) -> tuple[int, list[TokenRecord]]:
        """(total matching, one page of records) for ``query``."""

    async def all_tokens(self) -> list[TokenRecord]:
        """Every token, ordered by name (for ``config check`` and the CLI listing)."""

    async def insert(self, record: TokenRecord, digest: bytes) -> None:
        """Store a new token durably; raise NameTaken if the name is in use."""

    async def update_permissions(
        self, token_id: str, permissions: frozenset[str]
    ) -> TokenRecord | None:
        """Replace a token's permissions; the updated record, or None if no such token."""

    async def replace_digest(
        self, token_id: str, digest: bytes
    ) -> tuple[bytes, TokenRecord] | None:
        """Rotate: swap the stored digest; (old digest, record), or None if no such token."""

    async def delete(self, token_id: str) -> bytes | None:
        """Delete a token; its digest (for cache invalidation), or None if no such token."""

    async def digest_of(self, token_id: str) -> bytes | None:
        """The stored digest of a token (for cache invalidation), or None."""

    async def latest_change(self) -> int:
        """The change log's high-water mark (0 before any change)."""

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[bytes, float]]]:
        """(new high-water mark, (digest, changed_at) changed after ``seq``); raises
        ChangesPruned when that part of the log is gone (drop the whole cache)."""

    async def record_usage(self, usages: Sequence[Usage]) -> None:
        """Apply last-used updates; only ever moves ``last_used_at`` forward."""


def open_store(url: str) -> TokenStore:
    """A (not yet opened) store for ``url``: ``sqlite:///path`` or ``postgresql://…``."""
    if url.startswith("sqlite:///"):
        # Backends are imported on demand: each may pull in its own driver.
        from authsvc.store.sqlite import SQLiteStore  # noqa: PLC0415

        # sqlite:///relative/path or sqlite:////absolute/path (the loader makes it absolute)
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from authsvc.store.postgres import PostgresStore  # noqa: PLC0415 - driver on demand

        return PostgresStore(url)
    scheme = url.split(":", 1)[0]
    raise ValueError(
        f"unsupported store URL scheme {scheme!r}: use sqlite:///path"
        " or postgresql://user:password@host:5432/db"
    )


def schema_version(store: TokenStore) -> int:
    """The schema version this code migrates ``store`` to."""
    from authsvc.store.sqlite import SQLiteStore  # noqa: PLC0415 - backends on demand

    if isinstance(store, SQLiteStore):
        from authsvc.store.sqlite import SCHEMA_VERSION  # noqa: PLC0415

        return SCHEMA_VERSION
    from authsvc.store.migrations import SCHEMA_VERSION as PG_SCHEMA_VERSION  # noqa: PLC0415

    return PG_SCHEMA_VERSION
