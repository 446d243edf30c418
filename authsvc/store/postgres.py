"""The PostgreSQL token store (asyncpg).

Connections: a pool of 1 to ``max_size`` connections; every statement is parameterised, and
asyncpg prepares each one once per connection. Timeouts are short on purpose (connecting,
each statement, waiting for a free connection), so an outage is answered within seconds and
callers fail closed instead of queueing. The pool replaces dead connections when they are next
acquired: after an outage the same store object works again, nothing has to be reopened.

Every write is one transaction: all of it is committed, or none of it. Errors: unreachable,
lost or timed-out connections and server-side failures raise
:class:`~authsvc.store.StoreUnavailable`; a name in use raises :class:`~authsvc.store.NameTaken`;
other constraint violations raise :class:`~authsvc.store.StoreError`. The store names the server
as ``postgresql://host:port/database``: no user name, no password, no query string; a
password that turns up in a driver's message is blanked out.

Listing behaves exactly like the SQLite store: ``name_fold`` holds Python's
``str.lower(name)`` and both columns compare in the byte-order "C" collation, whatever the
database's locale (see :mod:`authsvc.store.migrations` for the schema).

Changes reach other instances two ways. ``update_permissions``, ``replace_digest`` (the old
digest) and ``delete`` append to the change log polled with :meth:`PostgresStore.changes_since`
(same contract as SQLite's), and send ``pg_notify('authsvc_changes', <hex digest>)`` in the same
transaction, which the server delivers on commit to every :meth:`PostgresStore.listen`-er.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, NoReturn, Protocol, TypeAlias, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # asyncpg ships no type information

from authsvc.store import (
    ChangesPruned,
    ListQuery,
    NameTaken,
    StoreError,
    StoreUnavailable,
    Usage,
    migrations,
)
from authsvc.tokens import TokenRecord, shared_permissions

#: What :meth:`PostgresStore.listen` calls: a changed digest, or None for "drop everything".
ChangeCallback: TypeAlias = Callable[[bytes | None, float | None], None]


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


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a text column")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _real(value: object) -> float:
    if not isinstance(value, float | int):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a number")
    return float(value)


def _optional_real(value: object) -> float | None:
    return None if value is None else _real(value)


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a digest")
    return value


def _integer(value: object) -> int:
    if not isinstance(value, int):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a number")
    return value


def _text_list(value: object) -> list[str]:
    if not isinstance(value, list):
        raise StoreUnavailable(f"token store returned {type(value).__name__} for a text array")
    return [_text(item) for item in value]


def display_name(url: str) -> str:
    """``url`` without user, password or query: ``postgresql://host:port/database``."""
    scheme, _, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    hosts = netloc.rpartition("@")[2]  # the user info ends at the last "@"
    database = path.partition("?")[0]
    return f"{scheme}://{hosts}/{database}"


def _secrets_of(url: str) -> tuple[str, ...]:
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


_T = TypeVar("_T")
log = logging.getLogger("authsvc.store")

#: The LISTEN/NOTIFY channel; each payload is the hex digest a cache may hold.
CHANNEL: Final = "authsvc_changes"

_COLUMNS = (
    "id, name, permissions, ip_filter, created_at, expires_at, created_by,"
    " last_used_at, last_used_ip"
)
_SELECT_BY_ID = f"SELECT {_COLUMNS} FROM tokens WHERE id = $1"  # noqa: S608 - constant columns
_SELECT_BY_DIGEST = f"SELECT {_COLUMNS} FROM tokens WHERE digest = $1"  # noqa: S608 - constant
# Sort keys for order="asc"; "desc" reverses every key, so it is the exact mirror image.
_SORT_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "name": ("name_fold", "name"),
    "expires_at": ("expires_at IS NULL", "expires_at", "name_fold", "name"),
}
_DIRECTIONS: Final = {"asc": "ASC", "desc": "DESC"}
_UNIQUE_NAME: Final = "tokens_name_key"
# Failures that mean "cannot reach or use the server right now"; constraint violations and
# invalid arguments are caught before these.
_OUTAGES: Final[tuple[type[BaseException], ...]] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,  # includes TimeoutError and ConnectionRefusedError
)

#: Failures after which a pooled connection's state is unknown: it is closed, not reused.
_ABANDON: Final[tuple[type[BaseException], ...]] = (asyncio.CancelledError, *_OUTAGES)


def _order_by(sort: str, order: str) -> str:
    """The ORDER BY clause for a listing; only fixed fragments, never caller text."""
    if sort not in _SORT_KEYS or order not in _DIRECTIONS:
        raise ValueError(f"unsupported ordering {sort!r} {order!r}")
    return ", ".join(f"{key} {_DIRECTIONS[order]}" for key in _SORT_KEYS[sort])


def _like_pattern(needle: str) -> str:
    """A LIKE pattern matching ``needle`` anywhere, with ``%``, ``_`` and ``\\`` literal."""
    escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _storable(text: str) -> bool:
    """Whether PostgreSQL text can hold ``text``: no NUL, no lone surrogates.

    Token names never contain either (``policy.check_name`` refuses control characters and
    surrogates), so a filter that does simply matches nothing.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _record(row: Row) -> TokenRecord:
    return TokenRecord(
        id=_text(row["id"]),
        name=_text(row["name"]),
        permissions=shared_permissions(_text_list(row["permissions"])),
        ip_filter=_optional_text(row["ip_filter"]),
        created_at=_real(row["created_at"]),
        expires_at=_optional_real(row["expires_at"]),
        created_by=sys.intern(_text(row["created_by"])),
        last_used_at=_optional_real(row["last_used_at"]),
        last_used_ip=_optional_text(row["last_used_ip"]),
    )


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
        self._url = url
        self._name = display_name(url)
        self._secrets = _secrets_of(url)
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._change_retention = change_retention
        self._keepalive = keepalive
        self._clock = clock
        self._pool: Pool | None = None
        self._closed = False
        self._listener: asyncio.Task[None] | None = None
        self._listen_conn: Connection | None = None

    @property
    def name(self) -> str:
        """The server and database, without credentials: ``postgresql://host:port/db``."""
        return self._name

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the pool and bring the schema to the current version."""
        if self._closed:
            raise StoreUnavailable(f"token store {self._name} is closed")
        if self._pool is not None:
            return
        with self._errors():
            pool = cast(
                Pool,
                await asyncpg.create_pool(
                    self._url,
                    min_size=1,
                    max_size=self._max_size,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                ),
            )
        try:
            with self._errors():
                async with pool.acquire(timeout=self._command_timeout) as conn:
                    await migrations.migrate(conn)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Stop listening, let calls in flight finish, then close every connection."""
        pool, self._pool = self._pool, None
        self._closed = True
        await self._stop_listening()
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self._command_timeout)
        except _OUTAGES:  # a dead server (or a wait_for timeout) cannot be said goodbye to
            pool.terminate()

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers a query."""
        await self._run(lambda c: c.fetchval("SELECT 1"))

    # -- reads -----------------------------------------------------------------------------

    async def get_by_digest(self, digest: bytes) -> TokenRecord | None:
        """The token whose secret has this digest, or None."""
        return await self._run(lambda c: self._one(c, _SELECT_BY_DIGEST, digest))

    async def get(self, token_id: str) -> TokenRecord | None:
        """The token with this id, or None."""
        return await self._run(lambda c: self._one(c, _SELECT_BY_ID, token_id))

    async def digest_of(self, token_id: str) -> bytes | None:
        """The stored digest of a token, or None."""
        return await self._run(lambda c: self._digest(c, token_id))

    async def list_tokens(self, query: ListQuery) -> tuple[int, list[TokenRecord]]:
        """(total matching, one page of records) for ``query``."""
        order = _order_by(query.sort, query.order)
        if query.limit < 0 or query.offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = "", []
        if query.name_contains is not None and not _storable(query.name_contains):
            return 0, []  # it cannot occur in any name, and the server would refuse the text
        if query.name_contains is not None:
            where = " WHERE name_fold LIKE $1 ESCAPE '\\'"
            params = [_like_pattern(query.name_contains)]
        n = len(params)
        count_sql = f"SELECT count(*) FROM tokens{where}"  # noqa: S608 - fixed fragments only
        page_sql = (
            f"SELECT {_COLUMNS} FROM tokens{where} ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2}"  # noqa: S608 - fixed fragments only
        )

        async def body(c: Connection) -> tuple[int, list[TokenRecord]]:
            # one snapshot, so the total and the page agree
            async with c.transaction(isolation="repeatable_read", readonly=True):
                total = await c.fetchval(count_sql, *params)
                rows = await c.fetch(page_sql, *params, query.limit, query.offset)
            return _integer(total), [_record(row) for row in rows]

        return await self._run(body)

    async def all_tokens(self) -> list[TokenRecord]:
        """Every token, ordered by name."""
        sql = f"SELECT {_COLUMNS} FROM tokens ORDER BY {_order_by('name', 'asc')}"  # noqa: S608 - constant

        async def body(c: Connection) -> list[TokenRecord]:
            return [_record(row) for row in await c.fetch(sql)]

        return await self._run(body)

    # -- writes ----------------------------------------------------------------------------

    async def insert(self, record: TokenRecord, digest: bytes) -> None:
        """Store a new token durably; raise NameTaken if the name is in use."""
        sql = (
            f"INSERT INTO tokens ({_COLUMNS}, name_fold, digest)"  # noqa: S608 - constant columns
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
        values = (
            record.id, record.name, sorted(record.permissions), record.ip_filter,
            record.created_at, record.expires_at, record.created_by, record.last_used_at,
            record.last_used_ip, record.name.lower(), digest,
        )  # fmt: skip

        async def body(c: Connection) -> None:
            try:
                await c.execute(sql, *values)
            except asyncpg.UniqueViolationError as exc:
                # the unique index decides, so two writers racing for a name cannot both win
                if getattr(exc, "constraint_name", None) == _UNIQUE_NAME:
                    raise NameTaken(f"a token named {record.name!r} already exists") from None
                raise

        await self._write(body)

    async def update_permissions(
        self, token_id: str, permissions: frozenset[str]
    ) -> TokenRecord | None:
        """Replace a token's permissions; the updated record, or None if no such token."""

        async def body(c: Connection) -> TokenRecord | None:
            row = await c.fetchrow(
                f"UPDATE tokens SET permissions = $2 WHERE id = $1 RETURNING digest, {_COLUMNS}",  # noqa: S608 - constant columns
                token_id,
                sorted(permissions),
            )
            if row is None:
                return None
            await self._log_change(c, token_id, _blob(row["digest"]))
            return _record(row)

        return await self._write(body)

    async def replace_digest(
        self, token_id: str, digest: bytes
    ) -> tuple[bytes, TokenRecord] | None:
        """Rotate: swap the stored digest; (old digest, record), or None if no such token."""

        async def body(c: Connection) -> tuple[bytes, TokenRecord] | None:
            # the row lock makes concurrent rotations queue, each seeing its predecessor's digest
            old = await self._digest(c, token_id, lock=True)
            if old is None:
                return None
            row = await c.fetchrow(
                f"UPDATE tokens SET digest = $2 WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608 - constant columns
                token_id,
                digest,
            )
            await self._log_change(c, token_id, old)
            return None if row is None else (old, _record(row))

        return await self._write(body)

    async def delete(self, token_id: str) -> bytes | None:
        """Delete a token; its digest (for cache invalidation), or None if no such token."""

        async def body(c: Connection) -> bytes | None:
            found = await c.fetchval("DELETE FROM tokens WHERE id = $1 RETURNING digest", token_id)
            if found is None:
                return None
            digest = _blob(found)
            await self._log_change(c, token_id, digest)
            return digest

        return await self._write(body)

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
        await self._write(lambda c: c.executemany(sql, rows))

    # -- change log (not part of the TokenStore protocol) ------------------------------------

    async def latest_change(self) -> int:
        """The current high-water mark of the change log (0 before any change)."""
        return await self._run(self._latest)

    async def changes_since(self, seq: int) -> tuple[int, list[tuple[bytes, float]]]:
        """(new high-water mark, (digest, changed_at) of changes after ``seq``), oldest first,
        one entry per digest (its first change after ``seq``).

        Raises :class:`~authsvc.store.ChangesPruned` when some of those changes were already
        pruned, or when ``seq`` is ahead of the log (the database was replaced): drop the whole
        cache, then continue from :meth:`latest_change`.
        """

        async def body(c: Connection) -> tuple[int, list[tuple[bytes, float]]]:
            async with c.transaction(isolation="repeatable_read", readonly=True):
                high = await self._latest(c)
                oldest = await c.fetchval("SELECT min(seq) FROM changes")
                floor = high if oldest is None else _integer(oldest) - 1
                if seq > high or seq < floor:
                    raise ChangesPruned(
                        f"token store {self._name}: changes after {seq} are no longer"
                        f" available (log holds {floor + 1}..{high})"
                    )
                rows = await c.fetch(
                    "SELECT digest, changed_at FROM changes WHERE seq > $1"
                    " AND digest IS NOT NULL ORDER BY seq",
                    seq,
                )
            first: dict[bytes, float] = {}
            for row in rows:
                first.setdefault(_blob(row["digest"]), float(cast(float, row["changed_at"])))
            return high, list(first.items())

        return await self._run(body)

    # -- notifications -----------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether a LISTEN connection is up right now (changes arrive as they commit)."""
        return self._listen_conn is not None and not self._listen_conn.is_closed()

    async def listen(self, callback: ChangeCallback) -> None:
        """Call ``callback`` for every change committed by any instance sharing the database.

        ``callback(digest, changed_at)`` names one digest a cache may hold (the old one after
        a rotation) and when the writer committed it (its clock): drop that entry.
        ``callback(None, None)`` means changes may have been missed, because the
        listening connection was lost and is now back, or a payload was unreadable: drop the
        whole cache (notifications are not durable). Callbacks run on the event loop and must
        not block; an exception in one is logged and ignored.

        Uses one dedicated connection, not one from the pool. The first connection attempt
        happens before this returns; when it fails, or whenever the connection is lost later,
        a background task reconnects with capped exponential backoff and then calls
        ``callback(None)`` — only once it is listening again, so nothing read in between can
        survive. Start listening before filling a cache. :meth:`close` stops it.
        """
        if self._pool is None:
            state = "closed" if self._closed else "not open"
            raise StoreUnavailable(f"token store {self._name} is {state}")
        if self._listener is not None:
            raise RuntimeError(f"token store {self._name} is already listening")
        try:
            lost: asyncio.Event | None = await self._listen_connect(callback)
        except _OUTAGES as exc:
            log.warning("token store %s: cannot listen for changes yet: %s", self._name,
                        self._scrub(exc))  # fmt: skip
            lost = None
        self._listener = asyncio.create_task(
            self._listen_forever(callback, lost), name="authsvc-pg-listener"
        )

    async def _listen_forever(self, callback: ChangeCallback, lost: asyncio.Event | None) -> None:
        delay = 0.1
        while True:
            if lost is None:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only
                delay = min(delay * 2, 2.0)
                try:
                    lost = await self._listen_connect(callback)
                except _OUTAGES as exc:
                    log.warning("token store %s: listen reconnect failed: %s", self._name,
                                self._scrub(exc))  # fmt: skip
                    continue
                delay = 0.1
                log.info("token store %s: listening for changes again", self._name)
                _deliver(callback, None, None)  # anything could have changed while we were away
            await self._watch(lost)
            conn, self._listen_conn = self._listen_conn, None
            if conn is not None:
                conn.terminate()
            log.warning("token store %s: lost the change notification connection", self._name)
            lost = None

    async def _listen_connect(self, callback: ChangeCallback) -> asyncio.Event:
        """Connect and LISTEN; the event is set when that connection is gone."""

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            # "<hex digest> <changed_at>"; a bare digest (older writers) has no time
            hex_digest, _, when = payload.partition(" ")
            try:
                digest: bytes | None = bytes.fromhex(hex_digest)
                changed_at = float(when) if when else None
            except ValueError:
                digest, changed_at = None, None  # unreadable: assume the worst
            _deliver(callback, digest, changed_at if digest is not None else None)

        conn = cast(
            Connection,
            await asyncpg.connect(
                self._url, timeout=self._connect_timeout, command_timeout=self._command_timeout
            ),
        )
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._listen_conn = conn
        return lost

    async def _watch(self, lost: asyncio.Event) -> None:
        """Return once the listening connection is gone; a periodic query also notices a
        network that silently stopped delivering."""
        conn = self._listen_conn
        while conn is not None and not lost.is_set() and not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._keepalive)
                return
            try:
                await conn.fetchval("SELECT 1")
            except _OUTAGES:
                return

    async def _stop_listening(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self._command_timeout)
            except _OUTAGES:
                conn.terminate()

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, job: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``job`` with a pooled connection, mapping driver errors to store errors."""
        pool = self._pool
        if pool is None:
            state = "closed" if self._closed else "not open"
            raise StoreUnavailable(f"token store {self._name} is {state}")
        with self._errors():
            async with pool.acquire(timeout=self._command_timeout) as conn:
                try:
                    # One deadline for the whole call: asyncpg's command_timeout bounds each
                    # statement, but giving a stuck connection back (it resets it first)
                    # would wait as long again on a silent network.
                    async with asyncio.timeout(self._command_timeout):
                        return await job(conn)
                except _ABANDON:
                    conn.terminate()  # mid-query on a bad network: never hand it out again
                    raise

    async def _write(self, job: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``job`` in one transaction: all of it is committed, or none of it."""

        async def body(c: Connection) -> _T:
            async with c.transaction():
                return await job(c)

        return await self._run(body)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except asyncpg.IntegrityConstraintViolationError as exc:
            self._raise(StoreError, exc)
        except ValueError as exc:  # a malformed URL or argument: no retry will fix it
            self._raise(StoreError, exc)
        except _OUTAGES as exc:
            self._raise(StoreUnavailable, exc)

    def _raise(self, kind: type[StoreError], exc: BaseException) -> NoReturn:
        """Raise ``kind`` naming the server and the cause, with any credential blanked out."""
        said = self._scrub(exc)
        if not said:  # TimeoutError() says nothing at all
            said = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        error = kind(f"token store {self._name}: {said}")
        if said != str(exc):  # the cause would leak a credential into a logged traceback
            raise error from None
        raise error from exc

    def _scrub(self, exc: BaseException) -> str:
        said = str(exc)
        for secret in self._secrets:
            said = said.replace(secret, "***")
        return said

    @staticmethod
    async def _one(conn: Connection, sql: str, key: object) -> TokenRecord | None:
        row = await conn.fetchrow(sql, key)
        return None if row is None else _record(row)

    @staticmethod
    async def _digest(conn: Connection, token_id: str, *, lock: bool = False) -> bytes | None:
        sql = "SELECT digest FROM tokens WHERE id = $1" + (" FOR UPDATE" if lock else "")  # noqa: S608 - constant
        found = await conn.fetchval(sql, token_id)
        return None if found is None else _blob(found)

    @staticmethod
    async def _latest(conn: Connection) -> int:
        return _integer(await conn.fetchval("SELECT last FROM change_counter"))

    async def _log_change(self, conn: Connection, token_id: str, digest: bytes) -> None:
        now = self._clock()
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
            now - self._change_retention,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{digest.hex()} {now!r}")


def _deliver(callback: ChangeCallback, digest: bytes | None, changed_at: float | None) -> None:
    try:
        callback(digest, changed_at)
    except Exception:  # a broken callback must not stop the listener
        log.exception("change notification callback failed")
