"""The HMAC key belongs to its store (SPEC §13).

Every token digest in a store was computed with one key; under any other key every token
answers 401, and nothing would say why. So the store records a check value of its key,
``HMAC-SHA256(key, "authsvc key check v1")`` in hex (it proves which key, and reveals
nothing of it), and every command that opens the store compares:

- a store that holds tokens refuses a key with another check value, and refuses to run
  without its key (the key file missing and ``AUTHSVC_SECRET_KEY`` unset): a new key
  would orphan every token, so none is created;
- a store from the release before this check holds tokens but no check value: the key in
  use at its first start with this version is recorded (the migration; a wrong key file
  at that moment cannot be told from the right one);
- a store that holds no token takes any key (a missing key file is created, as always);
  the check value is recorded with its first token, in the insert's own transaction
  (``TokenStore.insert(..., key_check=...)``, from ``TokenService.create``), which also
  refuses a token of another key than the one the store names: two processes that
  opened an empty store with different keys cannot both fill it.

A refusal (:class:`KeyRefused`) writes nothing: no key file, no check value, and not even
a schema migration (:func:`open_checked` reads the store before opening it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from authsvc.service.secret_key import find_secret_key, key_source, load_secret_key
from authsvc.store import KEY_CHECK, ListQuery, RestoreUnfinished, TokenStore

log = logging.getLogger("authsvc.key_check")

#: The fixed label whose keyed hash is the check value; a new label is a new scheme.
CHECK_LABEL = b"authsvc key check v1"


class KeyRefused(Exception):
    """The key is not the store's (or is missing for a store that holds tokens); the
    message says which key, which store and what to do. Nothing was written."""


def check_value(key: bytes) -> str:
    """The check value of ``key``: a keyed hash of a fixed label, never the key."""
    return hmac.new(key, CHECK_LABEL, hashlib.sha256).hexdigest()


def same_check(stored: str, mine: str) -> bool:
    """Whether two check values are equal (compared in constant time)."""
    return hmac.compare_digest(stored.encode(), mine.encode())


class StoreKey:
    """The key a store's tokens are hashed with, checked against the store; ``check`` is
    what every token insert hands the store (see the module's docstring)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.check = check_value(key)


async def open_checked(
    store: TokenStore, key_file: Path, environ: Mapping[str, str] = os.environ
) -> None:
    """Open ``store`` (which creates or migrates its schema) only once it is clear that the
    key is not refused: a store that holds tokens, read as it is before opening
    (``TokenStore.key_state``), refuses a missing key or one whose check value is not its
    own with KeyRefused, and then nothing at all was written, not even a migration. The
    rest of the check (recording a previous release's key) is :func:`bind_key`'s.

    A store a restore has not finished is refused the same way (RestoreUnfinished)."""
    held, stored, restore_began = await store.key_state()
    if restore_began is not None:
        raise RestoreUnfinished(store.name, restore_began)
    if held:
        key = find_secret_key(key_file, environ)
        source = key_source(key_file, environ)
        if key is None:
            raise KeyRefused(missing_key_message(source, store.name, held))
        if stored is not None and not same_check(stored, check_value(key)):
            raise KeyRefused(other_key_message(source, store.name))
    await store.open()


async def tokens_held(store: TokenStore) -> int:
    """How many tokens the (opened) store holds."""
    return (await store.count_tokens([ListQuery()]))[0]


async def bind_key(
    store: TokenStore, key_file: Path, environ: Mapping[str, str] = os.environ
) -> StoreKey:
    """The key of the opened ``store``, checked as the module says (a missing key is
    created for a store without tokens); raise KeyRefused."""
    key = find_secret_key(key_file, environ)
    if key is None and not await tokens_held(store):
        key = load_secret_key(key_file, environ)
    return await _checked(store, key, key_source(key_file, environ))


async def check_key(
    store: TokenStore, key_file: Path, environ: Mapping[str, str] = os.environ
) -> StoreKey | None:
    """As :func:`bind_key`, but creating no key: None for a store without tokens and
    without a key (commands that need no key: ``migrate``, ``config check``,
    ``backup``)."""
    key = find_secret_key(key_file, environ)
    if key is None and not await tokens_held(store):
        return None
    return await _checked(store, key, key_source(key_file, environ))


async def _checked(store: TokenStore, key: bytes | None, source: str) -> StoreKey:
    stored = await store.read_meta(KEY_CHECK)
    if key is not None and stored is not None and same_check(stored, check_value(key)):
        return StoreKey(key)  # every start but the first: no count
    held = await tokens_held(store)
    if key is None:
        raise KeyRefused(missing_key_message(source, store.name, held))
    mine = check_value(key)
    if held and stored is None:
        # a store of the previous release: the key in use now is its key from here on
        await store.write_meta(KEY_CHECK, mine)
        log.info("recorded the check value of %s in the token store %s", source, store.name)
        return StoreKey(key)
    if held:
        raise KeyRefused(other_key_message(source, store.name))
    return StoreKey(key)  # no token yet: recorded with the first


def missing_key_message(source: str, store_name: str, held: int) -> str:
    """The refusal of a store that holds tokens, without its key."""
    return (
        f"{source} is missing, but the token store {store_name} holds {held} token(s) "
        "hashed with a key: restore that key file from your key backup (or set "
        "AUTHSVC_SECRET_KEY to that key); a new key would turn every token into a 401, so "
        "none was created and nothing was changed"
    )


def other_key_message(source: str, store_name: str) -> str:
    """The refusal of a key whose check value is not the store's."""
    return (
        f"the token store {store_name} was made with another key than {source}: with this "
        "key every token would answer 401. Use the key file that belongs to this store "
        "(restore it from your key backup, or point secret_key_file at it); nothing was "
        "changed"
    )
