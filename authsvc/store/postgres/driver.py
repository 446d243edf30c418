"""What the PostgreSQL store knows about asyncpg and its URLs.

- Typed views of the asyncpg objects the store uses (:class:`Connection`, :class:`Pool`,
  :class:`Row`): asyncpg ships no type information.
- Value converters: each checks the type a column came back with and raises
  :class:`~authsvc.store.StoreUnavailable` for anything else; :func:`record_of` builds a
  :class:`~authsvc.rules.tokens.TokenRecord` from a row; :func:`storable` says whether text can be
  sent at all.
- URL helpers: :func:`display_name` names the server without credentials, :func:`secrets_of`
  finds every spelling of a password, to blank out of a driver's message.
- :data:`OUTAGES` (the server cannot be reached or used right now) and :data:`ABANDON` (a
  pooled connection's state is unknown: close it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # asyncpg ships no type information

from authsvc.rules.tokens import TokenRecord, shared_permissions
from authsvc.store import StoreUnavailable

# -- typed views of the asyncpg objects used here (asyncpg has no type information) ----------


class Row(Protocol):
    """A result row (``asyncpg.Record``), read by column name."""

    def __getitem__(self, key: str, /) -> object:
        """The value of one column."""


class Connection(Protocol):
    """The part of ``asyncpg.Connection`` this store uses."""

    async def execute(self, query: str, *args: object) -> str:
        """Run a statement; its status tag."""

    async def executemany(self, command: str, args: Sequence[Sequence[object]]) -> None:
        """Run one statement per argument tuple."""

    async def fetch(self, query: str, *args: object) -> list[Row]:
        """Every result row."""

    async def fetchrow(self, query: str, *args: object) -> Row | None:
        """The first result row, or None."""

    async def fetchval(self, query: str, *args: object) -> object:
        """The first column of the first row, or None."""

    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False
    ) -> AbstractAsyncContextManager[object]:
        """A transaction: committed on normal exit, rolled back on an exception."""

    async def add_listener(
        self, channel: str, callback: Callable[[object, int, str, str], None]
    ) -> None:
        """LISTEN on ``channel``; ``callback(conn, pid, channel, payload)`` per notification."""

    def add_termination_listener(self, callback: Callable[[object], None]) -> None:
        """Call ``callback(conn)`` once the connection is closed, for whatever reason."""

    def is_closed(self) -> bool:
        """Whether the connection is closed."""

    async def close(self) -> None:
        """Close the connection gracefully."""

    def terminate(self) -> None:
        """Close the connection at once."""


class Pool(Protocol):
    """The part of ``asyncpg.Pool`` this store uses."""

    def acquire(self, *, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]:
        """A connection for the duration of an ``async with`` block."""

    async def close(self) -> None:
        """Wait for acquired connections to come back, then close them all."""

    def terminate(self) -> None:
        """Close every connection at once."""


# Failures that mean "cannot reach or use the server right now"; constraint violations and
# invalid arguments are caught before these.
OUTAGES: Final[tuple[type[BaseException], ...]] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,  # includes TimeoutError and ConnectionRefusedError
)

#: Failures after which a pooled connection's state is unknown: it is closed, not reused.
ABANDON: Final[tuple[type[BaseException], ...]] = (asyncio.CancelledError, *OUTAGES)


# -- values ----------------------------------------------------------------------------------


def as_text(value: object) -> str:
    """A text column's value."""
    if not isinstance(value, str):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a text column")
    return value


def as_optional_text(value: object) -> str | None:
    """A nullable text column's value."""
    return None if value is None else as_text(value)


def as_real(value: object) -> float:
    """A number column's value, as a float."""
    if not isinstance(value, float | int):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a number")
    return float(value)


def as_optional_real(value: object) -> float | None:
    """A nullable number column's value, as a float."""
    return None if value is None else as_real(value)


def as_blob(value: object) -> bytes:
    """A digest (bytea) column's value."""
    if not isinstance(value, bytes):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a digest")
    return value


def as_integer(value: object) -> int:
    """An integer column's value."""
    if not isinstance(value, int):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a number")
    return value


def as_text_list(value: object) -> list[str]:
    """A text array column's value."""
    if not isinstance(value, list):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a text array")
    return [as_text(item) for item in value]


def record_of(row: Row, *, via_previous: bool = False) -> TokenRecord:
    """The token record in ``row`` (the columns of :data:`authsvc.store.queries.COLUMNS`),
    as found by its previous secret when ``via_previous``."""
    return TokenRecord(
        id=as_text(row["id"]),
        name=as_text(row["name"]),
        permissions=shared_permissions(as_text_list(row["permissions"])),
        ip_filter=as_optional_text(row["ip_filter"]),
        created_at=as_real(row["created_at"]),
        expires_at=as_optional_real(row["expires_at"]),
        created_by=sys.intern(as_text(row["created_by"])),
        last_used_at=as_optional_real(row["last_used_at"]),
        last_used_ip=as_optional_text(row["last_used_ip"]),
        grace_ends_at=as_optional_real(row["grace_ends_at"]),
        via_previous=via_previous,
        rate_limit=_interned(as_optional_text(row["rate_limit"])),
    )


def _interned(text: str | None) -> str | None:
    # a few limits are shared by many cached records: one string each
    return None if text is None else sys.intern(text)


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold ``text``: no NUL, no lone surrogates.

    Token names never contain either (``policy.check_name`` refuses control characters and
    surrogates), so a filter that does simply matches nothing.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


# -- URLs ------------------------------------------------------------------------------------


def display_name(url: str) -> str:
    """``url`` without user, password, query or fragment: ``postgresql://host:port/database``
    (the database empty when the URL names none: ``postgresql://db?password=...`` must not
    pass its query on as the database)."""
    scheme, _, rest = url.partition("://")
    ends = [at for at in (rest.find(mark) for mark in "/?#") if at >= 0]
    netloc, tail = rest[: min(ends, default=len(rest))], rest[min(ends, default=len(rest)) :]
    hosts = netloc.rpartition("@")[2]  # the user info ends at the last "@"
    database = tail[1:] if tail.startswith("/") else ""
    database = database.partition("?")[0].partition("#")[0]
    return f"{scheme}://{hosts}/{database}"


def secrets_of(url: str) -> tuple[str, ...]:
    """Every spelling of the password in ``url``, to blank out of error messages."""
    found: set[str] = set()
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found.add(parts.password)
        found.update(v for k, v in parse_qsl(parts.query) if k == "password" and v)
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    if ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    found |= {unquote(secret) for secret in found}
    # longest first, so a password containing another one is blanked whole
    return tuple(sorted((s for s in found if s), key=len, reverse=True))
