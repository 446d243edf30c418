"""TokenStore contract for rotations with a grace (both stores): the previous digest is
kept and found, ended early only on the right conditions, counted as existing, and every
change to it is logged so other instances drop what they cached."""

from __future__ import annotations

import dataclasses

from authsvc.store import TokenStore
from tests.stores import add, digest_for

GRACE_END = 2_000_000_000.0


async def rotated_with_grace(store: TokenStore, name: str) -> tuple[str, bytes, bytes]:
    """A token rotated with a grace: (id, previous digest, current digest)."""
    token = await add(store, name)
    new = digest_for(f"{name} rotated")
    result = await store.replace_digest(token.id, new, grace_ends_at=GRACE_END)
    assert result is not None
    return token.id, digest_for(name), new


class TestRotationWithGrace:
    """replace_digest(grace_ends_at=...) and get_by_digest."""

    async def test_both_digests_find_the_token(self, store: TokenStore) -> None:
        """The new digest finds the token as it is; the old one finds the same token marked
        as found by its previous secret; both carry the grace's end."""
        token = await add(store, "both")
        old, new = digest_for("both"), digest_for("both new")
        result = await store.replace_digest(token.id, new, grace_ends_at=GRACE_END)
        expected = dataclasses.replace(token, grace_ends_at=GRACE_END)
        assert result == (old, expected)
        assert await store.get_by_digest(new) == expected
        assert await store.get_by_digest(old) == dataclasses.replace(expected, via_previous=True)
        assert await store.get(token.id) == expected
        assert await store.all_tokens() == [expected]

    async def test_a_rotation_ends_the_older_previous_secret(self, store: TokenStore) -> None:
        """Rotating again (with or without a grace) forgets the previous digest at once."""
        token_id, oldest, middle = await rotated_with_grace(store, "twice")
        await store.replace_digest(token_id, digest_for("third"), grace_ends_at=GRACE_END + 1)
        assert await store.get_by_digest(oldest) is None
        found = await store.get_by_digest(middle)
        assert found is not None
        assert (found.via_previous, found.grace_ends_at) == (True, GRACE_END + 1)
        await store.replace_digest(token_id, digest_for("fourth"))
        assert await store.get_by_digest(middle) is None
        assert await store.get_by_digest(digest_for("third")) is None
        current = await store.get_by_digest(digest_for("fourth"))
        assert current is not None
        assert current.grace_ends_at is None

    async def test_delete_forgets_both_digests(self, store: TokenStore) -> None:
        """A deleted token is found by neither secret: the previous digest brings nothing
        back."""
        token_id, previous, current = await rotated_with_grace(store, "deleted")
        assert await store.delete(token_id) == current
        assert await store.get_by_digest(previous) is None
        assert await store.get_by_digest(current) is None

    async def test_conditional_delete(self, store: TokenStore) -> None:
        """delete(digest=...) deletes only while that digest is the current one."""
        token_id, previous, current = await rotated_with_grace(store, "conditional")
        assert await store.delete(token_id, digest=previous) is None
        assert await store.get(token_id) is not None
        assert await store.delete(token_id, digest=current) == current
        assert await store.get(token_id) is None


class TestEndGrace:
    """end_grace: only the grace that is still running, named by the right digest."""

    async def test_by_the_current_digest(self, store: TokenStore) -> None:
        """The current digest ends it: the previous one finds nothing afterwards."""
        token_id, previous, current = await rotated_with_grace(store, "first use")
        assert await store.end_grace(token_id, current) == (current, previous)
        assert await store.get_by_digest(previous) is None
        found = await store.get_by_digest(current)
        assert found is not None
        assert found.grace_ends_at is None
        assert await store.end_grace(token_id, current) is None  # nothing left to end

    async def test_by_the_previous_digest(self, store: TokenStore) -> None:
        """With previous=True the previous digest names the grace (a leaked secret)."""
        token_id, previous, current = await rotated_with_grace(store, "leaked")
        assert await store.end_grace(token_id, previous) is None  # not its current digest
        assert await store.end_grace(token_id, current, previous=True) is None
        assert await store.end_grace(token_id, previous, previous=True) == (current, previous)
        assert await store.get_by_digest(previous) is None

    async def test_without_a_digest(self, store: TokenStore) -> None:
        """digest None (a restore's replay) ends whichever grace is running; none: None."""
        token_id, previous, current = await rotated_with_grace(store, "replayed")
        assert await store.end_grace(token_id, None) == (current, previous)
        assert await store.get_by_digest(previous) is None
        assert await store.get_by_digest(current) is not None
        assert await store.end_grace(token_id, None) is None

    async def test_a_grace_replaced_by_another_rotation_is_left_alone(
        self, store: TokenStore
    ) -> None:
        """A first use of the old grace's new secret, recorded after another rotation made
        that secret the previous one, does not end the new grace."""
        token_id, _, middle = await rotated_with_grace(store, "raced")
        await store.replace_digest(token_id, digest_for("newest"), grace_ends_at=GRACE_END)
        assert await store.end_grace(token_id, middle) is None
        assert await store.get_by_digest(middle) is not None

    async def test_unknown_token(self, store: TokenStore) -> None:
        """No such token, or no grace: None, nothing changes."""
        token = await add(store, "plain")
        assert await store.end_grace("tok_0000000000000000", digest_for("plain")) is None
        assert await store.end_grace(token.id, digest_for("plain")) is None
        assert await store.get_by_digest(digest_for("plain")) == token


class TestExistingAndChanges:
    """digest_prefixes and the change log know previous digests."""

    async def test_digest_prefixes_include_previous_secrets_in_order(
        self, store: TokenStore
    ) -> None:
        """The compact set of existing tokens holds the previous digests too, sorted."""
        expected = []
        for i in range(12):
            _, previous, current = await rotated_with_grace(store, f"token {i}")
            expected += [previous[:8], current[:8]]
        await add(store, "plain")
        expected.append(digest_for("plain")[:8])
        prefixes = await store.digest_prefixes()
        assert prefixes == b"".join(sorted(expected))

    async def test_every_digest_touched_is_logged(self, store: TokenStore) -> None:
        """Changes name the previous digest wherever it changes: rotation (old, older
        previous, new), permission update and end of grace (both), delete (both)."""
        token_id, previous, current = await rotated_with_grace(store, "logged")
        mark = await store.latest_change()
        await store.update_permissions(token_id, frozenset({"Writer"}))
        _, changes = await store.changes_since(mark)
        assert {digest for digest, _ in changes} == {previous, current}

        newest = digest_for("newest")
        mark = await store.latest_change()
        await store.replace_digest(token_id, newest, grace_ends_at=GRACE_END)
        _, changes = await store.changes_since(mark)
        assert [digest for digest, _ in changes] == [current, previous, newest]

        mark = await store.latest_change()
        await store.end_grace(token_id, newest)
        _, changes = await store.changes_since(mark)
        assert {digest for digest, _ in changes} == {newest, current}

        await store.replace_digest(token_id, digest_for("last"), grace_ends_at=GRACE_END)
        mark = await store.latest_change()
        await store.delete(token_id)
        _, changes = await store.changes_since(mark)
        assert {digest for digest, _ in changes} == {digest_for("last"), newest}
