"""Snapshots of the SQLite store (:mod:`authsvc.store.snapshots`).

Taking one uses SQLite's online backup API from the live file: one step copies every page
inside one read transaction, so the copy is one moment of the store while ``serve`` keeps
writing (WAL readers do not block writers). The copy is then switched to the rollback
journal, so the backup is one self-contained file.

A restore marks the store as restoring (a file beside it, ``<store>.restoring``, holding
when it began) before the snapshot goes in, and removes the mark once it has finished;
:func:`read_restore_mark` is how the store sees it (``TokenStore.key_state``).

Putting one back never writes into a store file in place: the snapshot is copied to a
temporary file beside the store, checked, synced, and renamed over it. A store already
there is first checkpointed and switched out of WAL, which removes its ``-wal`` file (a
WAL left beside a renamed file would be applied to the wrong database) and fails while
another process still has it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from authsvc.store import KEY_CHECK, RestoreUnfinished
from authsvc.store.snapshots import Snapshot, SnapshotError, SnapshotRefused

SNAPSHOT_FILE = "authsvc.db"
_BUSY_TIMEOUT = 5.0


class SQLiteSnapshots:
    """Snapshots of the SQLite store in the file ``path``."""

    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    async def take(self, folder: Path) -> Snapshot:
        """Copy the live file into ``folder``; its facts, read from the copy."""
        return await asyncio.to_thread(self._take, folder / SNAPSHOT_FILE)

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Nothing to hold: :meth:`put_back` refuses a file another process has open."""
        yield

    async def mark_restoring(self, began: str) -> None:
        """Write the restoring mark beside the store, durably."""
        await asyncio.to_thread(self._mark, began)

    async def unmark_restoring(self) -> None:
        """Remove the restoring mark, durably."""
        await asyncio.to_thread(self._unmark)

    async def put_back(self, folder: Path, snapshot: Snapshot) -> None:
        """Replace the store file by the snapshot's copy, atomically."""
        await asyncio.to_thread(self._put_back, folder / snapshot.file)

    def _take(self, target: Path) -> Snapshot:
        if not self._path.exists():
            raise SnapshotError(f"there is no token store at {self._path} to back up")
        _create_private(target)
        try:
            with (
                contextlib.closing(_connect(self._path)) as source,
                contextlib.closing(_connect(target)) as copy,
            ):
                source.execute("PRAGMA query_only = ON")
                began = read_restore_mark(self._path)  # the file open: a restore now refuses
                if began is not None:
                    raise RestoreUnfinished(str(self._path), began)
                source.backup(copy)  # every page in one step: one read transaction
                copy.execute("PRAGMA journal_mode = DELETE")
                return Snapshot(target.name, *_facts(copy))
        except sqlite3.Error as error:
            raise SnapshotError(f"cannot back up the token store {self._path}: {error}") from None
        finally:
            _fsync(target)

    def _put_back(self, snapshot_file: Path) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temp = self._path.with_name(f".{self._path.name}.restore-{secrets.token_hex(4)}")
        _create_private(temp)
        try:
            with (
                contextlib.closing(_connect(_read_only(snapshot_file))) as source,
                contextlib.closing(_connect(temp)) as copy,
            ):
                source.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")
                if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise SnapshotError(f"the backup file {snapshot_file} is damaged")
            _fsync(temp)
            if self._path.exists():
                self._leave_wal()
            os.replace(temp, self._path)
            _fsync(self._path.parent)
        except sqlite3.Error as error:
            raise SnapshotError(f"cannot restore {snapshot_file}: {error}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _mark(self, began: str) -> None:
        mark = restore_mark(self._path)
        if mark.exists():
            return  # an unfinished restore's mark is kept as it is
        mark.parent.mkdir(parents=True, exist_ok=True)
        temp = mark.with_name(f".{mark.name}-{secrets.token_hex(4)}")
        _create_private(temp)
        try:
            temp.write_text(began + "\n")
            _fsync(temp)
            os.replace(temp, mark)
        finally:
            temp.unlink(missing_ok=True)
        _fsync(mark.parent)

    def _unmark(self) -> None:
        mark = restore_mark(self._path)
        mark.unlink(missing_ok=True)
        _fsync(mark.parent)

    def _leave_wal(self) -> None:
        """Fold the store's WAL into its file and drop it; refused while it is in use."""
        try:
            with contextlib.closing(_connect(self._path, timeout=0.5)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        except sqlite3.OperationalError:
            mode = "busy"
        if str(mode).lower() != "delete":
            raise SnapshotRefused(
                f"the token store {self._path} is in use by another process: stop authsvc "
                "(serve and any CLI call) before restoring"
            )


def restore_mark(path: Path) -> Path:
    """The file that says a restore into the store file ``path`` has not finished."""
    return path.with_name(path.name + ".restoring")


def read_restore_mark(path: Path) -> str | None:
    """When the unfinished restore into the store file ``path`` began, or None."""
    mark = restore_mark(path)
    try:
        return mark.read_text().strip() or "an unknown time"
    except FileNotFoundError:
        return None
    except OSError as error:  # there, but unreadable (another owner): marked all the same
        return f"an unknown time ({mark} cannot be read: {error.strerror or error})"


def _facts(conn: sqlite3.Connection) -> tuple[int, str | None, int]:
    """(token count, key check value, schema version) of the database on ``conn``."""
    if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        raise SnapshotError("the snapshot failed SQLite's integrity check")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    count = int(conn.execute("SELECT count(*) FROM tokens").fetchone()[0])
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'authsvc_meta'"
    ).fetchone()
    row = (
        conn.execute("SELECT value FROM authsvc_meta WHERE name = ?", (KEY_CHECK,)).fetchone()
        if has_meta
        else None
    )
    return count, None if row is None else str(row[0]), version


def _connect(path: Path | str, *, timeout: float = _BUSY_TIMEOUT) -> sqlite3.Connection:
    uri = isinstance(path, str)
    return sqlite3.connect(path, timeout=timeout, isolation_level=None, uri=uri)


def _read_only(path: Path) -> str:
    """A URI opening ``path`` read-only (a backup is never written to)."""
    return f"file:{quote(str(path.resolve()))}?mode=ro"


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (sqlite would use the umask's mode)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _fsync(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
