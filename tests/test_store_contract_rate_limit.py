"""TokenStore contract, a token's ``rate_limit`` (schema version 3): stored by insert, read
back by every lookup and listing, and changed by ``update_token`` together with or apart
from the permissions, each change logged so other instances' caches drop the record.
``store`` / ``new_store`` (tests/stores.py) run each test on each STORE_KINDS."""

from __future__ import annotations

import dataclasses

import pytest

from authsvc.store import KEEP, ListQuery, TokenChange, TokenStore
from tests.stores import StoreFactory, add, digest_for


class TestRateLimitIsStored:
    """What insert was given comes back from every read."""

    async def test_every_read_returns_the_limit(self, store: TokenStore) -> None:
        """get, get_by_digest (current and previous secret), list_tokens and all_tokens."""
        limited = await add(store, "limited", rate_limit="600/m")
        free = await add(store, "free")
        assert free.rate_limit is None
        assert await store.get(limited.id) == limited
        assert await store.get_by_digest(digest_for("limited")) == limited
        _, page = await store.list_tokens(ListQuery())
        assert page == [free, limited]
        assert await store.all_tokens() == [free, limited]
        await store.replace_digest(limited.id, digest_for("rotated"), grace_ends_at=2e9)
        previous = await store.get_by_digest(digest_for("limited"))
        assert previous is not None
        assert (previous.rate_limit, previous.via_previous) == ("600/m", True)

    async def test_the_limit_survives_reopening(self, new_store: StoreFactory) -> None:
        """The limit is durable, like every other field."""
        first = new_store()
        await first.open()
        kept = await add(first, "kept", rate_limit="5/s")
        await first.close()
        second = new_store()
        await second.open()
        assert await second.get(kept.id) == kept


class TestUpdateToken:
    """update_token changes what it is given, keeps the rest, and logs the change."""

    @pytest.mark.parametrize(
        ("before", "change", "permissions", "rate_limit"),
        [
            pytest.param(None, TokenChange(rate_limit="10/s"), {"Reader"}, "10/s", id="set"),
            pytest.param("10/s", TokenChange(rate_limit="1/h"), {"Reader"}, "1/h", id="replace"),
            pytest.param("10/s", TokenChange(rate_limit=None), {"Reader"}, None, id="clear"),
            pytest.param(
                "10/s",
                TokenChange(permissions=frozenset({"A"})),
                {"A"},
                "10/s",
                id="keep-limit",
            ),
            pytest.param(
                None,
                TokenChange(permissions=frozenset({"A", "B"}), rate_limit="600/m"),
                {"A", "B"},
                "600/m",
                id="both",
            ),
        ],
    )
    async def test_applies_the_change(
        self,
        store: TokenStore,
        before: str | None,
        change: TokenChange,
        permissions: set[str],
        rate_limit: str | None,
    ) -> None:
        """The updated record is returned and stored; other fields stay as they were."""
        token = await add(store, "ops", ip_filter="office", expires_at=2e9, rate_limit=before)
        other = await add(store, "other", rate_limit="7/m")
        updated = await store.update_token(token.id, change)
        expected = dataclasses.replace(
            token, permissions=frozenset(permissions), rate_limit=rate_limit
        )
        assert updated == expected
        assert await store.get(token.id) == expected
        assert await store.get_by_digest(digest_for("ops")) == expected
        assert await store.get(other.id) == other

    async def test_each_change_is_logged(self, store: TokenStore) -> None:
        """Every update logs the token's digest, its kept previous secret's too, so other
        instances drop what they cached of either."""
        token = await add(store, "watched")
        await store.replace_digest(token.id, digest_for("new"), grace_ends_at=2e9)
        start = await store.latest_change()
        await store.update_token(token.id, TokenChange(rate_limit="1/s"))
        high, changes = await store.changes_since(start)
        assert high == start + 2
        assert {digest for digest, _ in changes} == {digest_for("new"), digest_for("watched")}
        await store.update_token(token.id, TokenChange(rate_limit=None))
        assert await store.latest_change() == high + 2

    async def test_a_change_of_nothing_writes_nothing(self, store: TokenStore) -> None:
        """Both fields kept: the record as it is, and nothing logged."""
        token = await add(store, "still", rate_limit="3/m")
        start = await store.latest_change()
        assert await store.update_token(token.id, TokenChange(KEEP, KEEP)) == token
        assert await store.latest_change() == start

    async def test_unknown_token(self, store: TokenStore) -> None:
        """No such token: None, nothing written, nothing logged."""
        await add(store, "someone")
        start = await store.latest_change()
        change = TokenChange(permissions=frozenset({"X"}), rate_limit="1/s")
        assert await store.update_token("tok_0000000000000000", change) is None
        assert await store.latest_change() == start

    async def test_update_permissions_keeps_the_limit(self, store: TokenStore) -> None:
        """The older update_permissions replaces the permissions alone."""
        token = await add(store, "old api", rate_limit="2/s")
        updated = await store.update_permissions(token.id, frozenset({"B"}))
        assert updated == dataclasses.replace(token, permissions=frozenset({"B"}))
