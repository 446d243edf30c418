"""LISTEN/NOTIFY for the PostgreSQL store: one dedicated connection, kept up until stopped.

Writers send ``pg_notify(CHANNEL, "<hex digest> <changed_at>")`` in the transaction that
changes a token; the server delivers it on commit. :class:`Listener` connects (outside the
pool), LISTENs, watches the connection (a periodic query notices a network that silently
stopped delivering), and when it is lost reconnects with capped, jittered exponential backoff,
then tells the callback that anything may have changed. See
:meth:`authsvc.store.postgres.store.PostgresStore.listen` for the callback's contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from typing import Final

from authsvc.store import ChangeCallback, RestoreUnfinished
from authsvc.store.postgres.driver import OUTAGES, Connection
from authsvc.store.postgres.pool import PgPool
from authsvc.store.postgres.serving import RestoreRunning, mark_serving

#: The LISTEN/NOTIFY channel; each payload is the hex digest a cache may hold.
CHANNEL: Final = "authsvc_changes"
#: While a restore runs, how often a starting instance tries again, and says it waits.
RESTORE_RETRY: Final = 1.0
RESTORE_LOG_EVERY: Final = 30

log = logging.getLogger("authsvc.store")


class Listener:
    """The change notifications of the database ``db`` reaches, for one callback."""

    def __init__(self, db: PgPool, *, keepalive: float) -> None:
        self._db = db
        self._keepalive = keepalive
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None

    @property
    def listening(self) -> bool:
        """Whether a LISTEN connection is up right now (changes arrive as they commit)."""
        return self._conn is not None and not self._conn.is_closed()

    async def start(self, callback: ChangeCallback) -> None:
        """Try to connect once (waiting while a restore runs on the store), then keep
        (re)connecting in a background task until stopped."""
        if self._task is not None:
            raise RuntimeError(f"token store {self._db.name} is already listening")
        try:
            lost: asyncio.Event | None = await self._connect_after_restore(callback)
        except OUTAGES as exc:
            log.warning(
                "token store %s: cannot listen for changes yet: %s",
                self._db.name,
                self._db.scrub(exc),
            )
            lost = None
        self._task = asyncio.create_task(self._forever(callback, lost), name="authsvc-pg-listener")

    async def stop(self) -> None:
        """Stop the background task and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self._db.command_timeout)
            except OUTAGES:
                conn.terminate()

    async def _forever(self, callback: ChangeCallback, lost: asyncio.Event | None) -> None:
        delay = 0.1
        while True:
            if lost is None:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only
                delay = min(delay * 2, 2.0)
                try:
                    lost = await self._connect(callback)
                except (RestoreRunning, RestoreUnfinished) as restoring:
                    # a restore began while this instance was not listening: it is running,
                    # or it stopped half-way; answer nothing from the store, or the cache,
                    # until this instance can mark the schema as served again
                    log.error("token store %s: %s", self._db.name, restoring)
                    self._db.refuse(str(restoring))
                    _deliver(callback, None, None)
                    continue
                except OUTAGES as exc:
                    log.warning(
                        "token store %s: listen reconnect failed: %s",
                        self._db.name,
                        self._db.scrub(exc),
                    )
                    continue
                delay = 0.1
                log.info("token store %s: listening for changes again", self._db.name)
                _deliver(callback, None, None)  # anything could have changed while we were away
            await self._watch(lost)
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()
            log.warning("token store %s: lost the change notification connection", self._db.name)
            lost = None

    async def _connect_after_restore(self, callback: ChangeCallback) -> asyncio.Event:
        """Connect; while a restore holds the store, wait for it to end: serving the store
        it is replacing, before its audit replay, could bring revoked secrets back."""
        tries = 0
        while True:
            try:
                return await self._connect(callback)
            except RestoreRunning as running:
                if tries % RESTORE_LOG_EVERY == 0:
                    log.warning("%s: waiting for it to finish before serving", running)
                tries += 1
            except OUTAGES as exc:
                if not tries:
                    raise  # no restore seen: the caller's outage handling
                # seen one: an outage meanwhile must not let this instance start unmarked
                if tries % RESTORE_LOG_EVERY == 0:
                    log.warning("token store %s: %s", self._db.name, self._db.scrub(exc))
                tries += 1
            await asyncio.sleep(RESTORE_RETRY)

    async def _connect(self, callback: ChangeCallback) -> asyncio.Event:
        """Connect and LISTEN; the event is set when that connection is gone."""

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            change = parse_payload(payload)
            if change is None:
                # Any role that can connect may NOTIFY this channel: junk must not be able
                # to empty every cache. Real changes are also in the change log.
                log.warning(
                    "token store %s: ignored a malformed change notification", self._db.name
                )
                return
            _deliver(callback, *change)

        conn = await self._db.connect()
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
            await mark_serving(conn, self._db.name)  # for as long as this connection lives
            self._db.refuse(None)  # served again (a restore may have refused it meanwhile)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        return lost

    async def _watch(self, lost: asyncio.Event) -> None:
        """Return once the listening connection is gone; a periodic query also notices a
        network that silently stopped delivering."""
        conn = self._conn
        while conn is not None and not lost.is_set() and not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._keepalive)
                return
            try:
                await conn.fetchval("SELECT 1")
            except OUTAGES:
                return


#: "<64 hex digits> <changed_at>", as writers send it; a bare digest (older writers) too.
_PAYLOAD: Final = re.compile(r"([0-9a-f]{64})(?: ([0-9]{1,12}(?:\.[0-9]{1,9})?))?")


def parse_payload(payload: str) -> tuple[bytes, float | None] | None:
    """(digest, changed_at) of a change notification; None for anything else."""
    match = _PAYLOAD.fullmatch(payload)
    if match is None:
        return None
    when = match.group(2)
    return bytes.fromhex(match.group(1)), None if when is None else float(when)


def _deliver(callback: ChangeCallback, digest: bytes | None, changed_at: float | None) -> None:
    try:
        callback(digest, changed_at)
    except Exception:  # a broken callback must not stop the listener
        log.exception("change notification callback failed")
