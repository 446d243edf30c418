"""The token store protocol and ``open_store(url)``, the one place that names a backend.

Every backend (``sqlite/``, ``postgres/``) implements :class:`TokenStore`; nothing outside
this package knows which one it talks to (a test says so). All methods raise
:class:`StoreUnavailable` when the backend cannot be reached or answers with an operational
error, so callers can fail closed in one place.

Every backend keeps a change log for cache invalidation across processes
(``latest_change()`` / ``changes_since(seq)``, raising :class:`ChangesPruned`); a backend
that can also push changes as they commit does so through ``listen(callback)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, TypeAlias

from authsvc.rules.tokens import TokenRecord

if TYPE_CHECKING:  # the snapshot protocol's module imports this one
    from authsvc.store.snapshots import Snapshots

_SQLITE = "sqlite:///"

#: What ``TokenStore.listen`` calls: a changed digest and when it changed, or
#: ``(None, None)`` for "anything may have changed: drop everything".
ChangeCallback: TypeAlias = Callable[[bytes | None, float | None], None]


class StoreError(Exception):
    """Base class of store errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or cannot complete the operation right now."""


class NameTaken(StoreError):
    """Another existing token already has this name."""


class KeyCheckMismatch(StoreError):
    """The store names another HMAC key than the one a new token was made with (another
    process recorded its key first): the token was not written (SPEC §13)."""


class ChangesPruned(StoreError):
    """Changes after the requested sequence number are gone: drop the whole cache."""


#: A token's derived status (docs/admin-api.md, the token object): ``blocked`` while the
#: policy has ``tokens_enabled: false`` (every token alike), else ``expired`` from its
#: effective expiry on, else ``active``.
TokenStatus: TypeAlias = Literal["active", "expired", "blocked"]


class _StatusPolicy(Protocol):
    """The two keys of the security policy that a token's status depends on."""

    @property
    def tokens_enabled(self) -> bool: ...

    @property
    def max_lifetime(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class StatusBasis:
    """What a token's status depends on besides its record: the moment, and the policy's
    ``max_lifetime`` (seconds) and ``tokens_enabled``. A store judges the status and expiry
    filters of :class:`ListQuery` against it exactly as ``rules.decision.token_status``
    judges one record: the effective expiry is the earlier of ``expires_at`` and
    ``created_at + max_lifetime``, and a token is expired from that instant on."""

    now: float
    max_lifetime: float | None = None
    tokens_enabled: bool = True

    @classmethod
    def of(cls, policy: _StatusPolicy, now: float) -> StatusBasis:
        """The basis of ``policy`` (a ``SecurityPolicy``) at ``now``."""
        lifetime = policy.max_lifetime
        return cls(now, None if lifetime is None else float(lifetime), policy.tokens_enabled)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filtering, ordering and paging of ``list_tokens`` (filters combine with AND).

    ``sort="expires_at"`` orders tokens without expiry after all others in ascending
    order (they expire last) and first in descending order; ties break on ``name``.

    ``status`` keeps the tokens of that derived status; ``expires_within`` (seconds) keeps
    the active tokens whose effective expiry is at most that far after ``basis.now``
    (tokens that never expire are not among them). Both need ``basis``, the moment and
    policy they are judged against.
    """

    name_contains: str | None = None
    sort: Literal["name", "expires_at"] = "name"
    order: Literal["asc", "desc"] = "asc"
    limit: int = 50
    offset: int = 0
    status: TokenStatus | None = None
    expires_within: float | None = None
    basis: StatusBasis | None = None

    def __post_init__(self) -> None:
        # A status filter without a moment and a policy could only guess: refuse it early.
        if (self.status is not None or self.expires_within is not None) and self.basis is None:
            raise ValueError("filtering on status or expiry needs a StatusBasis")
        if self.status not in (None, "active", "expired", "blocked"):
            raise ValueError(f"unknown token status {self.status!r}")
        if self.expires_within is not None and not self.expires_within >= 0:
            raise ValueError("expires_within must be a number of seconds, at least 0")


@dataclass(frozen=True, slots=True)
class Usage:
    """One token's last use, reported in batches off the request path."""

    token_id: str
    used_at: float
    ip: str


#: What a usage count counts: an allowed request, or the reason of a denial of a token that
#: was identified (SPEC §12, Usage).
USAGE_ALLOWED = "allowed"
USAGE_DENIALS = (
    "expired",
    "tokens_disabled",
    "ip_not_allowed",
    "permission_denied",
    "rate_limited",
)
USAGE_OUTCOMES = (USAGE_ALLOWED, *USAGE_DENIALS)
HOUR = 3600


@dataclass(frozen=True, slots=True)
class HourlyCount:
    """How many requests of one token, in the hour starting at ``hour`` (epoch seconds, a
    multiple of 3600), had ``outcome`` (one of :data:`USAGE_OUTCOMES`)."""

    token_id: str
    hour: int
    outcome: str
    count: int


class Keep(Enum):
    """A field of :class:`TokenChange` left as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class TokenChange:
    """What a PATCH changes, in one write: new permissions and/or a new ``rate_limit``
    (as written, or None for no limit); :data:`KEEP` leaves a field as it is."""

    permissions: frozenset[str] | Keep = KEEP
    rate_limit: str | Keep | None = KEEP


#: The name under which :meth:`TokenStore.read_meta` keeps the key's check value (§13).
KEY_CHECK = "key_check"


class StoreState(NamedTuple):
    """What must be known of a store before it is opened (:meth:`TokenStore.key_state`)."""

    held: int  # tokens
    key_check: str | None  # the key's check value (None before schema 3 or a first token)
    #: when a restore into it began (RFC 3339), if that restore has not finished: its
    #: mark is made before the snapshot goes in and removed after its audit replay and
    #: record (SQLite: a file beside the store; PostgreSQL: the table authsvc_restore)
    restore_began: str | None


class RestoreUnfinished(StoreError):
    """A restore into this store began and has not finished: secrets revoked after its
    backup may work again, so nothing may serve or change the store until a restore
    finishes. Nothing was written."""

    def __init__(self, store_name: str, began: str) -> None:
        super().__init__(
            f"a restore into the token store {store_name} began at {began} and has not "
            "finished: until it does, tokens deleted, rotated or revoked after its backup "
            "may work again, so serve and every command refuse this store. If it is still "
            "running, wait for it; if it stopped, run it again (with --force and the same "
            "--replay-audit files)"
        )


class TokenStore(Protocol):
    """Persistence of token records keyed by id and by the HMAC digest of their secret."""

    @property
    def name(self) -> str:
        """The store as people read it in messages: a file path, or
        ``postgresql://host:port/database`` (never a password)."""

    @property
    def schema_version(self) -> int:
        """The schema version this code creates and migrates the store to."""

    async def exists(self) -> bool:
        """Whether the store has been created; opening creates it, so a read-only check
        (``config check``) asks this first."""

    async def key_state(self) -> StoreState:
        """Before :meth:`open`, creating, migrating and writing nothing: how many tokens
        the store holds, the check value of its key, and an unfinished restore's start
        (:class:`StoreState`; all empty for a store not created yet). The key check of
        SPEC §13 refuses on this, so that a refusal leaves the store exactly as it was."""

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
        """The token whose current secret has this digest, or else whose previous secret
        (kept after a rotation with a grace) has it, then with ``via_previous`` set; or
        None. The grace's end is the caller's to judge (``grace_ends_at``): the store keeps
        a previous digest until the next rotation or until its grace is ended early."""

    async def get(self, token_id: str) -> TokenRecord | None:
        """The token with this id, or None."""

    async def list_tokens(self, query: ListQuery) -> tuple[int, list[TokenRecord]]:
        """(total matching, one page of records) for ``query``."""

    async def count_tokens(self, queries: Sequence[ListQuery]) -> list[int]:
        """How many tokens match each query's filters (its ordering and paging are
        ignored), counted in the store in one pass, without reading a record out: the
        token gauges of /metrics (``service.token_gauges``)."""

    async def digest_prefixes(self) -> bytes:
        """The first 8 bytes of every stored digest (previous secrets' included),
        concatenated in ascending order: the compact set of which tokens exist that an
        instance keeps in memory, so a flood of unknown tokens need not reach the store
        (``service.lookups``)."""

    async def all_tokens(self) -> list[TokenRecord]:
        """Every token, ordered by name (for ``config check`` and the CLI listing)."""

    async def insert(
        self, record: TokenRecord, digest: bytes, *, key_check: str | None = None
    ) -> None:
        """Store a new token durably and log its digest as a change (so other instances
        learn that it exists); raise NameTaken if the name is in use.

        With ``key_check`` (the check value of the key ``digest`` was made with), in the
        same transaction and serialised with every other such insert: a store that holds
        no token records it as its key's check value, and a store that names another
        key refuses the insert with :class:`KeyCheckMismatch`. So no store ever holds
        tokens of two keys, however many processes create tokens at once."""

    async def update_permissions(
        self, token_id: str, permissions: frozenset[str]
    ) -> TokenRecord | None:
        """Replace a token's permissions; the updated record, or None if no such token."""

    async def update_token(self, token_id: str, change: TokenChange) -> TokenRecord | None:
        """Apply ``change`` in one transaction and log the token's digest as a change (so
        caches everywhere drop the old record); the updated record, or None if no such
        token."""

    async def replace_digest(
        self, token_id: str, digest: bytes, *, grace_ends_at: float | None = None
    ) -> tuple[bytes, TokenRecord] | None:
        """Rotate: swap the stored digest and log both digests as changes (the old one
        for caches, the new one for the set of existing tokens); (old digest, record), or
        None if no such token. With ``grace_ends_at`` the old digest is kept as the
        previous secret's until then; any previous secret kept before ends at once (and
        is logged as a change too)."""

    async def end_grace(
        self, token_id: str, digest: bytes | None, *, previous: bool = False
    ) -> tuple[bytes, bytes] | None:
        """End a grace early: forget the token's previous secret, provided ``digest`` is
        still the token's current digest (with ``previous``: its previous digest), and log
        both digests as changes; (current digest, previous digest), or None when there is
        no such grace (over, or replaced by another rotation). ``digest`` None ends
        whichever grace the token is in (a restore's replay, which knows no digest)."""

    async def delete(self, token_id: str, *, digest: bytes | None = None) -> bytes | None:
        """Delete a token (only while its current digest is ``digest``, when given), and
        its usage counts, and log its digests as changes; its digest (for cache
        invalidation), or None if no such token."""

    async def latest_change(self) -> int:
        """The change log's high-water mark (0 before any change)."""

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[bytes, float]]]:
        """(new high-water mark, (digest, changed_at) changed after ``seq``); raises
        ChangesPruned when that part of the log is gone (drop the whole cache)."""

    async def record_usage(self, usages: Sequence[Usage]) -> None:
        """Apply last-used updates; only ever moves ``last_used_at`` forward."""

    async def add_usage(self, counts: Sequence[HourlyCount]) -> None:
        """Add ``counts`` to the stored per-hour counts (summing with what is there), in
        one transaction; counts of tokens that no longer exist are dropped."""

    async def usage(self, token_id: str, start: int, end: int) -> list[HourlyCount]:
        """The token's counts for the hours ``start <= hour < end`` (epoch seconds), ordered
        by hour, then outcome; hours without requests have no rows."""

    async def prune_usage(self, before: int) -> int:
        """Delete the counts of hours before ``before`` (epoch seconds); how many rows."""

    async def read_meta(self, name: str) -> str | None:
        """A value the store keeps about itself (such as :data:`KEY_CHECK`), or None."""

    async def write_meta(self, name: str, value: str) -> None:
        """Set (insert or replace) a value the store keeps about itself, durably."""

    async def listen(self, callback: ChangeCallback) -> None:
        """Push changes committed by anyone to ``callback`` as they commit, where the
        backend can (PostgreSQL: LISTEN/NOTIFY); a backend that cannot does nothing, and
        its change log is polled instead. Start before filling a cache; ``close`` stops it.
        After a lost push connection comes back, ``callback(None, None)`` says that
        anything may have changed meanwhile."""

    @property
    def listening(self) -> bool:
        """Whether changes are being pushed right now (so polling may pause)."""


_POSTGRES = ("postgresql://", "postgres://")


def open_store(url: str) -> TokenStore:
    """A (not yet opened) store for ``url``: ``sqlite:///path`` or ``postgresql://…``."""
    # Backends are imported on demand: each pulls in its own driver.
    if _is_sqlite(url):
        from authsvc.store.sqlite import SQLiteStore  # noqa: PLC0415

        # sqlite:///relative/path or sqlite:////absolute/path (the loader makes it absolute)
        return SQLiteStore(url.removeprefix(_SQLITE))
    from authsvc.store.postgres import PostgresStore  # noqa: PLC0415 - driver on demand

    return PostgresStore(url)


def open_snapshots(url: str) -> Snapshots:
    """Backup and restore of the store at ``url`` (``authsvc backup`` / ``restore``;
    :mod:`authsvc.store.snapshots`)."""
    if _is_sqlite(url):
        from authsvc.store.sqlite.snapshot import SQLiteSnapshots  # noqa: PLC0415

        return SQLiteSnapshots(url.removeprefix(_SQLITE))
    from authsvc.store.postgres.snapshot import PostgresSnapshots  # noqa: PLC0415

    return PostgresSnapshots(url)


def _is_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite store (else PostgreSQL); ValueError for neither."""
    if url.startswith(_SQLITE):
        return True
    if url.startswith(_POSTGRES):
        return False
    scheme = url.split(":", 1)[0]
    raise ValueError(
        f"unsupported store URL scheme {scheme!r}: use sqlite:///path"
        " or postgresql://user:password@host:5432/db"
    )


def resolve_store_url(text: str, *, folder: Path) -> str:
    """The store URL of a configuration file in ``folder``, with a SQLite path made absolute
    against it (``..`` resolved lexically); raise ValueError. The URL is never echoed: a
    PostgreSQL URL may hold a password."""
    if text.startswith(_POSTGRES) and text.partition("://")[2]:
        return text
    if not text.startswith(_SQLITE):
        scheme = text.partition(":")[0] if ":" in text else ""
        raise ValueError(
            (f"the scheme {scheme!r} is not supported" if scheme else "this is not a URL")
            + ": use sqlite:///relative/path, sqlite:////absolute/path"
            " or postgresql://user:password@host:5432/db"
        )
    path = text[len(_SQLITE) :]
    if not path or path.endswith("/") or any(c in path for c in "?#\x00"):
        raise ValueError("a SQLite store is a file path without a query, e.g. sqlite:///var/a.db")
    return _SQLITE + os.path.normpath(folder / path)
