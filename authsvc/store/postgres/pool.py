"""The PostgreSQL store's connections: an asyncpg pool with short deadlines, and error mapping.

Connections: a pool of 1 to ``max_size`` connections; every statement is parameterised, and
asyncpg prepares each one once per connection. Timeouts are short on purpose (connecting,
each statement, waiting for a free connection), so an outage is answered within seconds and
callers fail closed instead of queueing. The pool replaces dead connections when they are next
acquired: after an outage the same store object works again, nothing has to be reopened.

Errors: unreachable, lost or timed-out connections and server-side failures raise
:class:`~authsvc.store.StoreUnavailable`; constraint violations and malformed URLs raise
:class:`~authsvc.store.StoreError`. Messages name the server as
``postgresql://host:port/database`` (:func:`~authsvc.store.postgres.driver.display_name`); a
password that turns up in a driver's message is blanked out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import NoReturn, TypeVar, cast

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # asyncpg ships no type information

from authsvc.store import StoreError, StoreUnavailable
from authsvc.store.postgres import migrations
from authsvc.store.postgres.driver import (
    ABANDON,
    OUTAGES,
    Connection,
    Pool,
    display_name,
    secrets_of,
)

_T = TypeVar("_T")


class PgPool:
    """Pooled connections to the database at ``url``; every call maps driver errors."""

    def __init__(
        self, url: str, *, max_size: int, connect_timeout: float, command_timeout: float
    ) -> None:
        self._url = url
        #: The server and database, without credentials: ``postgresql://host:port/db``.
        self.name = display_name(url)
        self._secrets = secrets_of(url)
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        #: The deadline of one call (and of each statement in it).
        self.command_timeout = command_timeout
        self._pool: Pool | None = None
        self._closed = False
        self._refusal: str | None = None

    async def open(self) -> None:
        """Connect the pool and bring the schema to the current version."""
        if self._closed:
            raise StoreUnavailable(f"token store {self.name} is closed")
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
                    command_timeout=self.command_timeout,
                ),
            )
        try:
            with self._errors():
                async with pool.acquire(timeout=self.command_timeout) as conn:
                    await migrations.migrate(conn)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def inspect(self, job: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``job`` on a connection of its own, outside the pool and before it opens:
        nothing is migrated (the key check reads the store as it is)."""
        with self._errors():
            conn = await self.connect()
            try:
                return await job(conn)
            finally:
                await conn.close()

    async def close(self, first: Callable[[], Awaitable[None]]) -> None:
        """Refuse new calls at once, await ``first()`` (what must stop before the pool goes),
        then let calls in flight finish and close every connection."""
        pool, self._pool = self._pool, None
        self._closed = True
        await first()
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.command_timeout)
        except OUTAGES:  # a dead server (or a wait_for timeout) cannot be said goodbye to
            pool.terminate()

    def refuse(self, reason: str | None) -> None:
        """Answer every call with StoreUnavailable(``reason``) from now on (None: no more)."""
        self._refusal = reason

    def check_open(self) -> Pool:
        """The pool; :class:`~authsvc.store.StoreUnavailable` unless it is open (and not
        refused: :meth:`refuse`)."""
        if self._refusal is not None:
            raise StoreUnavailable(f"token store {self.name}: {self._refusal}")
        pool = self._pool
        if pool is None:
            state = "closed" if self._closed else "not open"
            raise StoreUnavailable(f"token store {self.name} is {state}")
        return pool

    async def connect(self) -> Connection:
        """A connection of its own, outside the pool; driver errors are not mapped."""
        return cast(
            Connection,
            await asyncpg.connect(
                self._url, timeout=self._connect_timeout, command_timeout=self.command_timeout
            ),
        )

    async def run(self, job: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``job`` with a pooled connection, mapping driver errors to store errors."""
        pool = self.check_open()
        with self._errors():
            async with pool.acquire(timeout=self.command_timeout) as conn:
                try:
                    # One deadline for the whole call: asyncpg's command_timeout bounds each
                    # statement, but giving a stuck connection back (it resets it first)
                    # would wait as long again on a silent network.
                    async with asyncio.timeout(self.command_timeout):
                        return await job(conn)
                except ABANDON:
                    conn.terminate()  # mid-query on a bad network: never hand it out again
                    raise

    async def write(self, job: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``job`` in one transaction: all of it is committed, or none of it."""

        async def body(c: Connection) -> _T:
            async with c.transaction():
                return await job(c)

        return await self.run(body)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn driver errors raised inside the block into store errors."""
        try:
            yield
        except StoreError:
            raise
        except asyncpg.IntegrityConstraintViolationError as exc:
            self._raise(StoreError, exc)
        except ValueError as exc:  # a malformed URL or argument: no retry will fix it
            self._raise(StoreError, exc)
        except OUTAGES as exc:
            self._raise(StoreUnavailable, exc)

    def _raise(self, kind: type[StoreError], exc: BaseException) -> NoReturn:
        """Raise ``kind`` naming the server and the cause, with any credential blanked out."""
        said = self.scrub(exc)
        if not said:  # TimeoutError() says nothing at all
            said = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        error = kind(f"token store {self.name}: {said}")
        if said != str(exc):  # the cause would leak a credential into a logged traceback
            raise error from None
        raise error from exc

    def scrub(self, exc: BaseException) -> str:
        """What ``exc`` says, with the URL's password blanked out."""
        said = str(exc)
        for secret in self._secrets:
            said = said.replace(secret, "***")
        return said
