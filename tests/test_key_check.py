"""The key belongs to its store (SPEC §13), on both stores: a store that holds tokens
refuses another key and refuses to run without its key (creating none, writing nothing);
a store of the previous release gets its key's check value at its first start; a store
without tokens takes any key, and records its check value with its first token.

The command line's side of it (exit status 2 for every command): test_key_check_cli.py.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from authsvc.config import Config
from authsvc.service.key_check import CHECK_LABEL, KeyRefused, check_value
from authsvc.service.runtime import Runtime
from authsvc.store import KEY_CHECK, ListQuery
from tests.factories import make_config
from tests.stores import Backend, StoreFactory, add
from tests.webapp import mint

KEY_A = {"AUTHSVC_SECRET_KEY": "a" * 40}
KEY_B = {"AUTHSVC_SECRET_KEY": "b" * 40}


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Config:
    """A configuration on the test's store, with its key file (absent) in ``tmp_path``."""
    return make_config(tmp_path, store=store_url, audit_log=str(tmp_path / "audit.log"))


async def stored_check(new_store: StoreFactory) -> str | None:
    """The check value the store records, read behind the runtime's back."""
    store = new_store()
    await store.open()
    try:
        return await store.read_meta(KEY_CHECK)
    finally:
        await store.close()


async def token_count(new_store: StoreFactory) -> int:
    store = new_store()
    await store.open()
    try:
        return (await store.count_tokens([ListQuery()]))[0]
    finally:
        await store.close()


async def make_tokens(config: Config, environ: dict[str, str], count: int = 1) -> None:
    runtime = await Runtime.open(config, environ=environ)
    try:
        for _ in range(count):
            await mint(runtime, "Reader")
    finally:
        await runtime.close()


class TestRefusals:
    async def test_another_key_is_refused_and_nothing_is_written(
        self, config: Config, new_store: StoreFactory
    ) -> None:
        """Tokens made under key A: key B is refused, naming the variable and the store;
        the recorded check value and the tokens stay as they were."""
        await make_tokens(config, KEY_A, count=2)
        with pytest.raises(KeyRefused) as refused:
            await Runtime.open(config, environ=KEY_B)
        message = str(refused.value)
        assert "AUTHSVC_SECRET_KEY" in message
        assert "another key" in message
        assert "b" * 40 not in message  # never the key itself
        assert await stored_check(new_store) == check_value(KEY_A["AUTHSVC_SECRET_KEY"].encode())
        assert await token_count(new_store) == 2
        runtime = await Runtime.open(config, environ=KEY_A)  # its own key still opens it
        await runtime.close()

    async def test_another_key_file_is_named(self, config: Config, new_store: StoreFactory) -> None:
        """A key file holding another key: the refusal names that file."""
        await make_tokens(config, {})
        config.secret_key_file.write_text("cd" * 32 + "\n")
        with pytest.raises(KeyRefused, match="another key") as refused:
            await Runtime.open(config, environ={})
        assert str(config.secret_key_file) in str(refused.value)
        assert await token_count(new_store) == 1

    async def test_a_missing_key_is_refused_and_not_created(
        self, config: Config, new_store: StoreFactory
    ) -> None:
        """The key file gone from a store that holds tokens: refused, and no new key file
        appears (it would turn every token into a 401)."""
        await make_tokens(config, {})
        before = await stored_check(new_store)
        config.secret_key_file.unlink()
        with pytest.raises(KeyRefused, match="missing") as refused:
            await Runtime.open(config, environ={})
        assert str(config.secret_key_file) in str(refused.value)
        assert not config.secret_key_file.exists()
        assert [p.name for p in config.secret_key_file.parent.iterdir() if "key" in p.name] == []
        assert await stored_check(new_store) == before


class TestRecording:
    async def test_a_previous_release_store_gets_the_key_in_use(
        self, config: Config, new_store: StoreFactory
    ) -> None:
        """Tokens but no check value (written by the release before): the first start
        records the key in use, and from then on another key is refused."""
        old = new_store()
        await old.open()
        await add(old, "from the previous release")
        await old.close()
        assert await stored_check(new_store) is None
        runtime = await Runtime.open(config, environ=KEY_A)
        await runtime.close()
        assert await stored_check(new_store) == check_value(KEY_A["AUTHSVC_SECRET_KEY"].encode())
        with pytest.raises(KeyRefused):
            await Runtime.open(config, environ=KEY_B)

    async def test_an_empty_store_takes_a_new_key_and_records_it_with_its_first_token(
        self, config: Config, new_store: StoreFactory
    ) -> None:
        """No token, no key: the key file is created as always; the check value is
        recorded when the first token is written, not before."""
        runtime = await Runtime.open(config, environ={})
        try:
            assert config.secret_key_file.exists()
            assert await stored_check(new_store) is None
            await mint(runtime, "Reader")
        finally:
            await runtime.close()
        key = bytes.fromhex(config.secret_key_file.read_text())
        assert await stored_check(new_store) == check_value(key)

    async def test_a_store_emptied_of_tokens_takes_another_key(
        self, config: Config, new_store: StoreFactory
    ) -> None:
        """Every token deleted: nothing depends on the old key any more, so another key
        is taken, and its check value replaces the old one with the next token."""
        runtime = await Runtime.open(config, environ=KEY_A)
        record, _ = await mint(runtime, "Reader")
        await runtime.service.delete(actor="cli", client=None, token_id=record.id)
        await runtime.close()
        await make_tokens(config, KEY_B)
        assert await stored_check(new_store) == check_value(KEY_B["AUTHSVC_SECRET_KEY"].encode())

    async def test_the_backend_keeps_the_value_where_the_protocol_says(
        self, backend: Backend, config: Config, new_store: StoreFactory
    ) -> None:
        """Written through the store's meta table: a backup of the tables carries it."""
        await make_tokens(config, KEY_A)
        assert "authsvc_meta" in await backend.schema_objects()
        assert await stored_check(new_store) is not None


def test_the_check_value_is_a_keyed_hash_of_a_label_never_the_key() -> None:
    """HMAC-SHA256(key, label) in hex: the same for one key, different for another, and
    neither the key nor its hex."""
    key = bytes(range(32))
    value = check_value(key)
    assert value == hmac.new(key, CHECK_LABEL, hashlib.sha256).hexdigest()
    assert value == check_value(bytes(range(32)))
    assert value != check_value(bytes(range(1, 33)))
    assert key.hex() not in value


async def test_two_processes_on_an_empty_store_cannot_fill_it_with_two_keys(
    config: Config, new_store: StoreFactory
) -> None:
    """Both open the empty store (each may use its key then); the first token records its
    key in the insert's own transaction, and the other key's token is refused, unwritten,
    instead of replacing the check value (which would leave tokens of two keys)."""
    first = await Runtime.open(config, environ=KEY_A)
    second = await Runtime.open(config, environ=KEY_B)
    try:
        await mint(first, "Reader")
        with pytest.raises(KeyRefused, match="another key"):
            await mint(second, "Reader")
        await mint(first, "Reader")  # its own key keeps working
    finally:
        await first.close()
        await second.close()
    assert await stored_check(new_store) == check_value(b"a" * 40)
    assert await token_count(new_store) == 2
