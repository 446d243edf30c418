"""Backup and restore of a whole store (``authsvc backup`` / ``restore``, SPEC §13): the
protocol each backend's snapshot module implements (``sqlite/snapshot.py``,
``postgres/snapshot.py``); ``open_snapshots(url)`` in this package picks one.

A snapshot is one consistent moment of the store, taken while it keeps serving and
writing, in one file of a backup folder. Its facts (token count, the key's check value,
schema version) are read from that same moment, so they describe the file exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from authsvc.store import StoreError


class SnapshotError(StoreError):
    """A snapshot could not be taken or put back (a tool missing or failing, a file
    unreadable); the message says what to do."""


class SnapshotRefused(StoreError):
    """The snapshot cannot go into this store as configured (another PostgreSQL schema,
    a store in use); nothing was changed."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a snapshot file holds, as read from the snapshot itself."""

    file: str  # its name inside the backup folder
    token_count: int
    key_check: str | None  # the store's recorded check value of its key (§13)
    schema_version: int
    #: what the backend needs to put it back (PostgreSQL: the schema and the tables)
    facts: Mapping[str, object] = field(default_factory=dict)


class Snapshots(Protocol):
    """Takes and puts back snapshots of one configured store."""

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``: a snapshot goes back only into its own kind."""

    async def take(self, folder: Path) -> Snapshot:
        """Write a consistent snapshot of the live store into ``folder`` (an empty folder
        of mode 0700; the file is made 0600) and read its facts from it."""

    def exclusive(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The store kept for one restore, from its first look at the store to its last
        write: SnapshotRefused while an instance serves it. PostgreSQL: its serving lock,
        which instances starting meanwhile wait for; SQLite: nothing to hold, as
        :meth:`put_back` refuses a file another process has open."""

    async def mark_restoring(self, began: str) -> None:
        """Mark the store as restoring since ``began``, durably and where the snapshot
        going in cannot erase it: until :meth:`unmark_restoring`, ``key_state`` reports
        it and serve and every command refuse the store."""

    async def unmark_restoring(self) -> None:
        """The restore has finished: remove the mark."""

    async def put_back(self, folder: Path, snapshot: Snapshot) -> None:
        """Replace the store's content by ``snapshot`` (from ``folder``), all or nothing
        where the backend allows, inside :meth:`exclusive`. The caller has checked that the
        store may be replaced (absent, holding no token, or ``--force``)."""
