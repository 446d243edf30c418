"""TokenStore contract, the values a store keeps about itself (schema version 3, ``authsvc_meta``;
the HMAC key's check value of SPEC §13 is one): read_meta / write_meta insert, replace and
keep them durably. ``store`` / ``new_store`` (tests/stores.py) run each test on each
STORE_KINDS."""

from __future__ import annotations

from authsvc.store import KEY_CHECK, TokenStore
from tests.stores import StoreFactory


class TestMeta:
    async def test_missing_is_none(self, store: TokenStore) -> None:
        """A new store keeps nothing, not even the key's check value."""
        assert await store.read_meta(KEY_CHECK) is None
        assert await store.read_meta("anything") is None

    async def test_write_then_replace(self, store: TokenStore) -> None:
        """The last value written is the one read; each name keeps its own."""
        await store.write_meta(KEY_CHECK, "v1:abc")
        await store.write_meta("other", "Ünïcode ✓")
        assert await store.read_meta(KEY_CHECK) == "v1:abc"
        await store.write_meta(KEY_CHECK, "v1:def")
        assert await store.read_meta(KEY_CHECK) == "v1:def"
        assert await store.read_meta("other") == "Ünïcode ✓"

    async def test_values_are_durable_and_shared(self, new_store: StoreFactory) -> None:
        """A value written by one store object is read by another, and after reopening."""
        writer, reader = new_store(), new_store()
        await writer.open()
        await reader.open()
        await writer.write_meta(KEY_CHECK, "check")
        assert await reader.read_meta(KEY_CHECK) == "check"
        await writer.close()
        again = new_store()
        await again.open()
        assert await again.read_meta(KEY_CHECK) == "check"
