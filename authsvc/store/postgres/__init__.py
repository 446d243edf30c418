"""The PostgreSQL store (asyncpg): a pool, versioned migrations, LISTEN/NOTIFY changes."""

from authsvc.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
