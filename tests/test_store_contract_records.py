"""TokenStore contract, records: what goes in comes back out (durably, even when the writer is
killed), and every change to a token.

Every test runs against each backend (``store`` / ``new_store`` from tests/stores.py, one per
STORE_KINDS); PostgreSQL tests get a schema of their own and, without a reachable server,
skip (and fail in CI).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import sys
import textwrap

import pytest

from authsvc.rules.tokens import new_token_id
from authsvc.store import NameTaken, StoreError, StoreUnavailable, TokenStore, Usage, open_store
from tests.factories import new_record
from tests.processes import child_env
from tests.stores import Backend, StoreFactory, add, digest_for, names


class TestRoundTrip:
    """What goes in comes back out, field for field."""

    async def test_every_field_round_trips(self, store: TokenStore) -> None:
        """get and get_by_digest return exactly what insert stored."""
        full = new_record(
            "Ünïcode name ✓",
            permissions=frozenset({"ViewThings", "EditThings", "Admin"}),
            ip_filter="office",
            created_at=1_700_000_000.123456,
            expires_at=1_800_000_000.5,
            created_by="tok_0123456789abcdef",
            last_used_at=1_700_000_100.25,
            last_used_ip="2001:db8::1",
        )
        await store.insert(full, b"\x00\xff" * 16)
        assert await store.get(full.id) == full
        assert await store.get_by_digest(b"\x00\xff" * 16) == full

    async def test_optional_fields_round_trip_as_none(self, store: TokenStore) -> None:
        """A token without expiry, filter or use comes back with None in those fields."""
        plain = await add(store, "plain")
        got = await store.get(plain.id)
        assert got is not None
        assert (got.expires_at, got.ip_filter, got.last_used_at, got.last_used_ip) == (None,) * 4
        assert got.permissions == plain.permissions == frozenset({"Reader"})

    async def test_unknown_lookups_return_none(self, store: TokenStore) -> None:
        """Lookups of ids and digests that were never stored return None."""
        await add(store, "someone")
        assert await store.get("tok_0000000000000000") is None
        assert await store.get_by_digest(digest_for("nobody")) is None

    async def test_data_survives_reopening(self, new_store: StoreFactory) -> None:
        """A token written by one store object is there after close and a fresh open."""
        first = new_store()
        await first.open()
        kept = await add(first, "kept")
        await first.close()
        second = new_store()
        await second.open()
        assert await second.get(kept.id) == kept
        await second.close()


class TestInsert:
    """insert keeps names unique and writes all or nothing."""

    async def test_name_taken_writes_nothing(self, store: TokenStore) -> None:
        """A second token with a used name raises NameTaken and leaves no trace."""
        first = await add(store, "ci")
        clash = new_record("ci")
        with pytest.raises(NameTaken, match="ci"):
            await store.insert(clash, digest_for("clash"))
        assert await store.get(clash.id) is None
        assert await store.get_by_digest(digest_for("clash")) is None
        assert await store.all_tokens() == [first]

    async def test_names_are_case_sensitive(self, store: TokenStore) -> None:
        """Names differing only in case are distinct tokens."""
        await add(store, "CI")
        await add(store, "ci")
        assert sorted(names(await store.all_tokens())) == ["CI", "ci"]

    async def test_name_is_free_again_after_delete(self, store: TokenStore) -> None:
        """Deleting a token frees its name for a new token."""
        old = await add(store, "reused")
        await store.delete(old.id)
        new = new_record("reused")
        await store.insert(new, digest_for("second"))
        assert await store.get(new.id) == new

    @pytest.mark.parametrize(
        ("same_id", "same_digest"),
        [
            pytest.param(True, False, id="duplicate-id"),
            pytest.param(False, True, id="duplicate-digest"),
        ],
    )
    async def test_other_collisions_are_store_errors(
        self, store: TokenStore, same_id: bool, same_digest: bool
    ) -> None:
        """A reused id or digest fails as a StoreError that is neither NameTaken nor outage."""
        first = await add(store, "first")
        other = new_record("other", id=first.id if same_id else new_token_id())
        with pytest.raises(StoreError) as caught:
            await store.insert(other, digest_for("first" if same_digest else "other"))
        assert not isinstance(caught.value, NameTaken | StoreUnavailable)
        assert await store.all_tokens() == [first]


class TestChanges:
    """update_permissions, replace_digest and delete."""

    async def test_update_permissions(self, store: TokenStore) -> None:
        """The new permission set is returned and stored; other fields stay as they were."""
        token = await add(store, "ops", ip_filter="office", expires_at=2e9)
        updated = await store.update_permissions(token.id, frozenset({"A", "B"}))
        expected = dataclasses.replace(token, permissions=frozenset({"A", "B"}))
        assert updated == expected
        assert await store.get(token.id) == expected

    async def test_replace_digest(self, store: TokenStore) -> None:
        """Rotation returns the old digest; only the new digest finds the token afterwards."""
        token = await add(store, "rotating")
        result = await store.replace_digest(token.id, digest_for("new secret"))
        assert result == (digest_for("rotating"), token)
        assert await store.get_by_digest(digest_for("rotating")) is None
        assert await store.get_by_digest(digest_for("new secret")) == token

    async def test_delete(self, store: TokenStore) -> None:
        """Delete returns the digest once; the token is gone by id and by digest."""
        token = await add(store, "doomed")
        keep = await add(store, "kept")
        assert await store.delete(token.id) == digest_for("doomed")
        assert await store.get(token.id) is None
        assert await store.get_by_digest(digest_for("doomed")) is None
        assert await store.delete(token.id) is None
        assert await store.all_tokens() == [keep]

    async def test_unknown_ids_return_none(self, store: TokenStore) -> None:
        """Every change to an id that does not exist returns None and changes nothing."""
        token = await add(store, "bystander")
        missing = "tok_ffffffffffffffff"
        assert await store.update_permissions(missing, frozenset({"X"})) is None
        assert await store.replace_digest(missing, digest_for("x")) is None
        assert await store.delete(missing) is None
        assert await store.all_tokens() == [token]

    async def test_failed_write_is_rolled_back(self, store: TokenStore, backend: Backend) -> None:
        """When the last step of a change (its change-log entry) fails, none of it is kept."""
        token = await add(store, "atomic")
        logged = await store.latest_change()
        error = await backend.refuse_change_log()
        with pytest.raises(error):
            await store.update_permissions(token.id, frozenset({"Everything"}))
        with pytest.raises(error):
            await store.delete(token.id)
        with pytest.raises(error):
            await add(store, "never")
        assert await store.get(token.id) == token
        assert await store.latest_change() == logged
        assert [record.name for record in await store.all_tokens()] == ["atomic"]


class TestRecordUsage:
    """record_usage only ever moves last use forward."""

    async def test_usage_moves_forward_only(self, store: TokenStore) -> None:
        """Later uses replace earlier ones; older reports never overwrite newer ones."""
        token = await add(store, "used")
        await store.record_usage([Usage(token.id, 100.0, "10.0.0.1")])
        await store.record_usage([Usage(token.id, 50.0, "10.0.0.2")])
        got = await store.get(token.id)
        assert got is not None
        assert (got.last_used_at, got.last_used_ip) == (100.0, "10.0.0.1")
        await store.record_usage([Usage(token.id, 300.0, "10.0.0.3"), Usage(token.id, 200.0, "x")])
        got = await store.get(token.id)
        assert got is not None
        assert (got.last_used_at, got.last_used_ip) == (300.0, "10.0.0.3")

    async def test_batch_updates_several_tokens(self, store: TokenStore) -> None:
        """One batch updates every listed token and ignores ids that no longer exist."""
        one, two = await add(store, "one"), await add(store, "two")
        await store.record_usage(
            [
                Usage(one.id, 1.0, "::1"),
                Usage("tok_0000000000000000", 2.0, "::2"),
                Usage(two.id, 3.0, "192.0.2.7"),
            ]
        )
        got = {r.name: (r.last_used_at, r.last_used_ip) for r in await store.all_tokens()}
        assert got == {"one": (1.0, "::1"), "two": (3.0, "192.0.2.7")}

    async def test_empty_batch_changes_nothing(self, store: TokenStore) -> None:
        """An empty batch is accepted and leaves records untouched."""
        token = await add(store, "idle")
        await store.record_usage([])
        assert await store.get(token.id) == token


CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from authsvc.store import open_store
    from authsvc.rules.tokens import TokenRecord, new_token_id

    async def main() -> None:
        store = open_store(sys.argv[1])
        await store.open()
        for i in range(100_000):
            token = TokenRecord(new_token_id(), f"t{i}", frozenset({"P"}), None, 1.0, None, "cli")
            await store.insert(token, os.urandom(32))
            print(token.id, flush=True)

    asyncio.run(main())
    """
)


async def stored_ids(url: str) -> set[str]:
    """The ids of every token in the store at ``url``."""
    survivor = open_store(url)
    await survivor.open()
    try:
        return {r.id for r in await survivor.all_tokens()}
    finally:
        await survivor.close()


class TestKill9:
    """Acknowledged inserts survive the writing process being killed."""

    def test_every_acknowledged_insert_survives_sigkill(self, store_url: str) -> None:
        """Every id the child printed after insert returned is in the store after kill -9."""
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, store_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert child.stdout is not None
        assert child.stderr is not None
        printed: list[str] = []
        try:
            while len(printed) < 200:
                line = child.stdout.readline()
                assert line, f"child stopped early: {child.stderr.read()}"
                printed.append(line.strip())
            child.send_signal(signal.SIGKILL)
            child.wait()
            # lines already in the pipe were printed before the kill: they count too
            printed += [line.strip() for line in child.stdout if line.endswith("\n")]
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        assert set(printed) <= asyncio.run(stored_ids(store_url))
        assert len(printed) >= 200


class TestDigestPrefixes:
    """digest_prefixes: the compact, sorted set of which tokens exist."""

    async def test_empty_store(self, store: TokenStore) -> None:
        """A store without tokens has no prefixes."""
        assert await store.digest_prefixes() == b""

    async def test_follows_inserts_rotations_and_deletes(self, store: TokenStore) -> None:
        """The first 8 bytes of every current digest, ascending, one entry per token."""
        tokens = [await add(store, f"token {i}") for i in range(40)]
        live = {token.id: digest_for(token.name) for token in tokens}
        await store.replace_digest(tokens[0].id, digest_for("rotated"))
        live[tokens[0].id] = digest_for("rotated")
        await store.delete(tokens[1].id)
        del live[tokens[1].id]
        expected = b"".join(sorted(digest[:8] for digest in live.values()))
        assert await store.digest_prefixes() == expected
