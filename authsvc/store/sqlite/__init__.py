"""The embedded SQLite store: one file, WAL, a change log polled by other processes."""

from authsvc.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
