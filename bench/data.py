"""Benchmark data: many tokens, fast, straight into an SQLite store (bench-only shortcut)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from authsvc.rules.tokens import ALPHABET, PREFIX, RANDOM_LENGTH, checksum, digest
from authsvc.store import open_store

#: One token to insert: id, name, secret, permissions, IP filter name (or None).
TokenRow = tuple[str, str, str, Sequence[str], str | None]


def fast_secret() -> str:
    """A well-formed secret from one urandom call (the product uses secrets.choice)."""
    number = int.from_bytes(os.urandom(40), "big")
    chars = []
    for _ in range(RANDOM_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    body = PREFIX + "".join(chars)
    return body + checksum(body)


def bulk_tokens(
    db: Path, key: bytes, count: int, permission: str, secrets_file: Path | None
) -> None:
    """Insert ``count`` tokens in one transaction; optionally write their secrets out."""
    asyncio.run(_create_schema(db))
    secrets_out = [fast_secret() for _ in range(count)]
    insert_tokens(
        db,
        key,
        (
            (f"tok_{index:016x}", f"bench-{index}", secret, [permission], None)
            for index, secret in enumerate(secrets_out)
        ),
    )
    if secrets_file is not None:
        secrets_file.write_text("\n".join(secrets_out) + "\n")


def insert_tokens(db: Path, key: bytes, tokens: Iterable[TokenRow]) -> None:
    """Insert tokens into an existing store in one transaction."""
    now = time.time()
    rows = [
        (id_, name, digest(key, secret), json.dumps(list(permissions)), ip_filter, now, "bench")
        for id_, name, secret, permissions, ip_filter in tokens
    ]
    connection = sqlite3.connect(db)
    with connection:
        connection.executemany(
            "INSERT INTO tokens (id, name, digest, permissions, ip_filter, created_at,"
            " expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
            rows,
        )
    connection.close()


async def _create_schema(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")  # creates the schema
    await store.open()
    await store.close()
