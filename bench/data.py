"""Benchmark data: many tokens, fast, straight into an SQLite store (bench-only shortcut)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path

from authsvc.rules.tokens import ALPHABET, PREFIX, RANDOM_LENGTH, checksum, digest
from authsvc.store import open_store


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
    now = time.time()
    rows = []
    secrets_out = []
    for index in range(count):
        secret = fast_secret()
        secrets_out.append(secret)
        rows.append(
            (
                f"tok_{index:016x}",
                f"bench-{index}",
                digest(key, secret),
                json.dumps([permission]),
                now,
                None,
                "bench",
            )
        )
    connection = sqlite3.connect(db)
    with connection:
        connection.executemany(
            "INSERT INTO tokens (id, name, digest, permissions, ip_filter, created_at,"
            " expires_at, created_by) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
            rows,
        )
    connection.close()
    if secrets_file is not None:
        secrets_file.write_text("\n".join(secrets_out) + "\n")


async def _create_schema(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")  # creates the schema
    await store.open()
    await store.close()
