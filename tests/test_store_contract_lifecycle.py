"""TokenStore contract, lifecycle: open, close and ping; what a store says about itself
(name, schema_version, exists); creating and migrating its schema; and ``open_store``, the one
factory. ``backend`` / ``new_store`` (tests/stores.py) run each test on each STORE_KINDS;
``backend`` also looks behind the stores' backs where the protocol cannot."""

from __future__ import annotations

import asyncio

import pytest

from authsvc.store import StoreError, StoreUnavailable, open_store
from authsvc.store.postgres.store import PostgresStore
from authsvc.store.sqlite.store import SQLiteStore
from tests.factories import new_record
from tests.stores import Backend, StoreFactory, add, digest_for, names

NEVER = "tok_0000000000000000"


class TestLifecycle:
    """open, close and ping."""

    async def test_calls_before_open_and_after_close_are_unavailable(
        self, new_store: StoreFactory
    ) -> None:
        """A store that is not open refuses calls with StoreUnavailable."""
        fresh = new_store()
        with pytest.raises(StoreUnavailable, match="not open"):
            await fresh.get(NEVER)
        await fresh.open()
        await fresh.ping()
        await fresh.close()
        await fresh.close()  # idempotent
        with pytest.raises(StoreUnavailable, match="closed"):
            await fresh.ping()
        with pytest.raises(StoreUnavailable, match="closed"):
            await fresh.insert(new_record(), digest_for("late"))


class TestIdentity:
    """name, schema_version and exists: what a store says about itself."""

    async def test_name_is_the_display_name(
        self, new_store: StoreFactory, backend: Backend
    ) -> None:
        """name is the file path or postgresql://host:port/db, before and after open."""
        # never a user, a password or the query string (search_path, application_name)
        store = new_store()
        assert store.name == backend.expected_name
        assert "?" not in store.name
        assert "@" not in store.name
        await store.open()
        assert store.name == backend.expected_name

    async def test_errors_name_the_store(self, new_store: StoreFactory) -> None:
        """A refusal names the store as its name does."""
        store = new_store()
        with pytest.raises(StoreUnavailable) as caught:
            await store.get(NEVER)
        assert store.name in str(caught.value)

    async def test_schema_version_is_what_open_records(
        self, new_store: StoreFactory, backend: Backend
    ) -> None:
        """schema_version is the backend's current version; open records exactly that one."""
        store = new_store()
        assert store.schema_version == backend.schema_version >= 1
        await store.open()
        assert store.schema_version == backend.schema_version
        assert await backend.recorded_versions() == [store.schema_version]

    async def test_exists(self, new_store: StoreFactory, backend: Backend) -> None:
        """exists creates nothing and is True once the store was opened, closed or not
        (SQLite: its file; PostgreSQL: its tables in the schema)."""
        store = new_store()
        assert await store.exists() is backend.exists_before_open
        assert await backend.schema_objects() == set()
        await store.open()
        assert await store.exists() is True
        assert {"tokens", "changes"} <= await backend.schema_objects()
        await store.close()
        assert await store.exists() is True


class TestSchema:
    """Creating and migrating the schema, as far as the protocol can tell."""

    async def test_newer_schema_is_refused_clearly(
        self, new_store: StoreFactory, backend: Backend
    ) -> None:
        """A store from a newer authsvc is refused with an upgrade hint, and not touched."""
        store = new_store()
        future = store.schema_version + 1
        await backend.stamp_schema_version(future)
        untouched = await backend.schema_objects()
        with pytest.raises(StoreError, match="newer than this authsvc supports") as caught:
            await store.open()
        assert not isinstance(caught.value, StoreUnavailable)
        assert str(caught.value).endswith(
            f"database schema version {future} is newer than this authsvc supports"
            f" ({store.schema_version}); upgrade authsvc"
        )
        assert await backend.schema_objects() == untouched
        assert "tokens" not in untouched
        with pytest.raises(StoreUnavailable, match="not open"):
            await store.get(NEVER)

    async def test_concurrent_migrations(self, new_store: StoreFactory, backend: Backend) -> None:
        """Three stores opening an empty store at once all start; the schema is made once."""
        stores = [new_store() for _ in range(3)]
        await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(add(s, f"from-{i}") for i, s in enumerate(stores)))
        assert names(await stores[0].all_tokens()) == ["from-0", "from-1", "from-2"]
        assert await backend.recorded_versions() == [backend.schema_version]
        await asyncio.gather(*(s.close() for s in stores))

    async def test_failed_migration_leaves_nothing(
        self, new_store: StoreFactory, backend: Backend
    ) -> None:
        """A migration that fails halfway is rolled back whole: no tables, no version."""
        await backend.execute("CREATE TABLE changes (unrelated text)")  # a later step clashes
        with pytest.raises(StoreUnavailable, match="changes"):
            await new_store().open()
        assert await backend.schema_objects() == {"changes"}


class TestOpenStore:
    """open_store picks the backend from the URL scheme."""

    @pytest.mark.parametrize(
        ("url", "kind"),
        [
            pytest.param("sqlite:///var/tokens.db", SQLiteStore, id="sqlite-url"),
            pytest.param("postgresql://u:pw@db:5432/authsvc", PostgresStore, id="postgresql-url"),
            pytest.param("postgres://db/authsvc", PostgresStore, id="postgres-alias"),
        ],
    )
    def test_scheme_selects_backend(self, url: str, kind: type[object]) -> None:
        """Each supported scheme gives an (unopened) store of its backend."""
        assert isinstance(open_store(url), kind)

    def test_unknown_scheme_is_rejected(self) -> None:
        """Any other scheme is a ValueError naming the supported ones."""
        with pytest.raises(ValueError, match="postgresql://"):
            open_store("mysql://db/authsvc")
