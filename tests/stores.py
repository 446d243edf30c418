"""The store URL fixture every store-agnostic test is parametrised with."""

from __future__ import annotations

from pathlib import Path

import pytest

STORE_KINDS = ("sqlite", "postgresql")


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: an SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'authsvc.db'}"
    schema = request.getfixturevalue("pg_schema")
    return str(schema.url)
