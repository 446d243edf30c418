"""``authsvc backup`` and ``restore`` (SPEC §13) on both stores, in process: a backup taken
while tokens are being written restores to a consistent store whose tokens work; a
restore refuses what it must, changing nothing. The audit replay: test_backup_replay.py;
the commands' exit statuses and output: test_backup_cli.py."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from authsvc.backup.commands import BackupRefused, restore_backup, take_backup
from authsvc.backup.manifest import MANIFEST
from authsvc.config import Config
from authsvc.rules.tokens import TokenRecord
from authsvc.service.key_check import KeyRefused, check_value
from authsvc.service.runtime import Runtime
from authsvc.store import ListQuery, RestoreUnfinished, StoreUnavailable, open_snapshots, open_store
from authsvc.store.postgres.serving import SERVING_LOCK
from authsvc.store.snapshots import SnapshotError, SnapshotRefused
from tests.auth_client import auth_client
from tests.factories import make_config
from tests.pg import connect
from tests.stores import Backend, PostgresBackend
from tests.webapp import ClientMaker, auth_status, mint

KEY = {"AUTHSVC_SECRET_KEY": "k" * 40}
OTHER_KEY = {"AUTHSVC_SECRET_KEY": "o" * 40}


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Config:
    """A configuration on the test's store, its audit log in ``tmp_path``."""
    return make_config(tmp_path, store=store_url, audit_log=str(tmp_path / "audit.log"))


async def wipe(backend: Backend, config: Config) -> None:
    """Make the configured store what a new host has: nothing (SQLite: no file;
    PostgreSQL: an empty schema of the same name, as the dump goes back into it)."""
    if isinstance(backend, PostgresBackend):
        name = backend.schema.name
        await backend.execute(f'DROP SCHEMA "{name}" CASCADE; CREATE SCHEMA "{name}"')
        return
    path = Path(config.store.removeprefix("sqlite:///"))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        each.unlink(missing_ok=True)


async def token_ids(config: Config) -> set[str]:
    runtime = await Runtime.open(config, environ=KEY)
    try:
        return {record.id for record in await runtime.store.all_tokens()}
    finally:
        await runtime.close()


async def backed_up(config: Config, folder: Path, count: int = 3) -> list[tuple[TokenRecord, str]]:
    """``count`` tokens made, then a backup of them in ``folder``; the tokens."""
    runtime = await Runtime.open(config, environ=KEY)
    try:
        made = [await mint(runtime, "Reader") for _ in range(count)]
    finally:
        await runtime.close()
    await take_backup(config, folder, KEY)
    return made


class Writer:
    """Creates tokens without pause until ``stop``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.made: list[tuple[TokenRecord, str]] = []
        self.stop = False
        self._grew = asyncio.Event()

    async def run(self) -> None:
        while not self.stop:
            self.made.append(await mint(self.runtime, "Reader"))
            self._grew.set()
            await asyncio.sleep(0)  # let the backup's own steps run in between

    async def made_at_least(self, count: int) -> None:
        while len(self.made) < count:
            self._grew.clear()
            await self._grew.wait()


class TestBackupDuringWrites:
    async def test_restores_a_consistent_store_whose_tokens_work(
        self, backend: Backend, config: Config, tmp_path: Path, aiohttp_client: ClientMaker
    ) -> None:
        """Tokens are created without pause before, during and after the backup: the
        restored store holds exactly the manifest's count, only tokens that were made,
        every one finished before the backup began, and each of those answers 200."""
        runtime = await Runtime.open(config, environ=KEY)
        writer = Writer(runtime)
        writing = asyncio.create_task(writer.run())
        await writer.made_at_least(5)  # under way
        finished_before = list(writer.made)
        manifest = await take_backup(config, tmp_path / "backup", KEY)
        await writer.made_at_least(len(writer.made) + 5)  # and still writing after it
        writer.stop = True
        await writing
        await runtime.close()
        made = writer.made

        await wipe(backend, config)
        restored = await restore_backup(config, tmp_path / "backup", environ=KEY)
        ids = await token_ids(config)
        assert restored.tokens == manifest.snapshot.token_count == len(ids)
        assert ids <= {record.id for record, _ in made}
        assert {record.id for record, _ in finished_before} <= ids
        runtime = await Runtime.open(config, environ=KEY)
        try:
            client = await auth_client(aiohttp_client, runtime)
            statuses = {await auth_status(client, secret) for _, secret in finished_before}
        finally:
            await runtime.close()
        assert statuses == {200}


class TestBackupFolder:
    async def test_private_files_and_a_manifest_without_secrets(
        self, config: Config, tmp_path: Path
    ) -> None:
        """The folder is 0700, its files 0600; the manifest names the version, schema,
        time, count and the key's check value, and never the key."""
        folder = tmp_path / "new" / "backup"
        made = await backed_up(config, folder)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
        text = (folder / MANIFEST).read_text()
        manifest = json.loads(text)
        assert manifest["token_count"] == len(made)
        assert manifest["key_check"] == check_value(KEY["AUTHSVC_SECRET_KEY"].encode())
        assert manifest["schema_version"] >= 3
        assert abs(manifest["time_epoch"] - time.time()) < 3600  # a plausible instant
        assert manifest["time"].endswith("Z")
        assert KEY["AUTHSVC_SECRET_KEY"] not in text
        assert all(secret not in text for _, secret in made)

    async def test_a_folder_that_holds_anything_is_refused(
        self, config: Config, tmp_path: Path
    ) -> None:
        await backed_up(config, tmp_path / "first", count=1)  # a store to back up
        folder = tmp_path / "backup"
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        with pytest.raises(BackupRefused, match="not empty"):
            await take_backup(config, folder, KEY)
        assert [p.name for p in folder.iterdir()] == ["notes.txt"]

    async def test_a_store_that_is_not_there_is_refused_and_not_made(
        self, config: Config, tmp_path: Path
    ) -> None:
        """A store setting that names no store (a typo in the file name or search_path, the
        wrong host) is refused: opening it would create an empty store and back that up,
        as if all were well."""
        store = open_store(config.store)
        with pytest.raises(BackupRefused, match=f"no token store at {store.name}"):
            await take_backup(config, tmp_path / "backup", KEY)
        assert not await store.exists()
        assert not (tmp_path / "backup").exists()

    async def test_another_key_is_refused(self, config: Config, tmp_path: Path) -> None:
        """Backing up is opening the store: its key check holds too."""
        await backed_up(config, tmp_path / "first")
        with pytest.raises(KeyRefused):
            await take_backup(config, tmp_path / "second", OTHER_KEY)
        assert not (tmp_path / "second").exists()


class TestRestoreRefusals:
    async def test_a_store_that_holds_tokens_needs_force(
        self, config: Config, tmp_path: Path
    ) -> None:
        """Refused without --force, the store untouched; --force replaces it."""
        made = await backed_up(config, tmp_path / "backup")
        runtime = await Runtime.open(config, environ=KEY)
        newer, _ = await mint(runtime, "Reader")
        await runtime.close()
        with pytest.raises(BackupRefused, match="--force"):
            await restore_backup(config, tmp_path / "backup", environ=KEY)
        assert newer.id in await token_ids(config)
        await restore_backup(config, tmp_path / "backup", force=True, environ=KEY)
        assert await token_ids(config) == {record.id for record, _ in made}

    async def test_a_store_being_served_is_refused(self, config: Config, tmp_path: Path) -> None:
        """An instance serving the store (its change feed running, as in serve) makes even a
        forced restore refused, nothing changed; once it stops, the restore goes ahead.
        SQLite: the file is in use; PostgreSQL: the instance holds the serving lock."""
        made = await backed_up(config, tmp_path / "backup")
        serving = await Runtime.open(config, environ=KEY)
        feed = serving.change_feed()
        await feed.start()
        try:
            newer, _ = await mint(serving, "Reader")
            with pytest.raises(SnapshotRefused, match="in use"):
                await restore_backup(config, tmp_path / "backup", force=True, environ=KEY)
            assert newer.id in await token_ids(config)
            assert (await open_store(config.store).key_state()).restore_began is None
        finally:
            await feed.stop()
            await serving.close()
        await restore_backup(config, tmp_path / "backup", force=True, environ=KEY)
        assert await token_ids(config) == {record.id for record, _ in made}

    async def test_another_key_is_refused_and_nothing_changes(
        self, backend: Backend, config: Config, tmp_path: Path
    ) -> None:
        await backed_up(config, tmp_path / "backup")
        await wipe(backend, config)
        with pytest.raises(BackupRefused, match="another key"):
            await restore_backup(config, tmp_path / "backup", environ=OTHER_KEY)
        runtime = await Runtime.open(config, environ=OTHER_KEY)  # still an empty store
        try:
            assert await runtime.store.count_tokens([ListQuery()]) == [0]
        finally:
            await runtime.close()

    async def test_a_missing_key_is_refused_and_not_created(
        self, backend: Backend, config: Config, tmp_path: Path
    ) -> None:
        await backed_up(config, tmp_path / "backup")
        await wipe(backend, config)
        with pytest.raises(BackupRefused, match="missing"):
            await restore_backup(config, tmp_path / "backup", environ={})
        assert not config.secret_key_file.exists()

    async def test_a_backup_of_a_newer_schema_is_refused(
        self, backend: Backend, config: Config, tmp_path: Path
    ) -> None:
        await backed_up(config, tmp_path / "backup")
        path = tmp_path / "backup" / MANIFEST
        path.write_text(path.read_text().replace('"schema_version": 3', '"schema_version": 99'))
        await wipe(backend, config)
        with pytest.raises(BackupRefused, match="newer than this authsvc"):
            await restore_backup(config, tmp_path / "backup", environ=KEY)

    async def test_a_damaged_snapshot_is_refused(
        self, backend: Backend, config: Config, tmp_path: Path
    ) -> None:
        await backed_up(config, tmp_path / "backup")
        manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
        snapshot = tmp_path / "backup" / manifest["file"]
        data = bytearray(snapshot.read_bytes())
        data[len(data) // 2] ^= 0xFF
        snapshot.write_bytes(bytes(data))
        await wipe(backend, config)
        with pytest.raises(BackupRefused, match="damaged"):
            await restore_backup(config, tmp_path / "backup", environ=KEY)

    async def test_a_folder_without_a_manifest_is_refused(
        self, config: Config, tmp_path: Path
    ) -> None:
        (tmp_path / "backup").mkdir()
        with pytest.raises(BackupRefused, match=MANIFEST):
            await restore_backup(config, tmp_path / "backup", environ=KEY)


@pytest.mark.parametrize("stops", ["in-the-replay", "once-the-snapshot-is-in"])
async def test_a_restore_that_does_not_finish_leaves_the_store_refused(
    backend: Backend, config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stops: str
) -> None:
    """The restore stops half-way (the store goes away in the replay; or right after the
    snapshot went in, before the store was even opened): the error says that revoked tokens
    may work again, and until a restore finishes, serve and every command refuse the
    store (RestoreUnfinished) instead of serving it without its replay."""
    await backed_up(config, tmp_path / "backup")
    await wipe(backend, config)
    audit = tmp_path / "audit.log"
    audit.touch()

    async def store_gone(*_: object, **__: object) -> None:
        raise StoreUnavailable("connection lost")

    with monkeypatch.context() as patched:
        if stops == "in-the-replay":
            patched.setattr("authsvc.backup.commands.replay_audit", store_gone)
        else:
            patched.setattr(type(open_store(config.store)), "open", store_gone)
        with pytest.raises(SnapshotError) as caught:
            await restore_backup(config, tmp_path / "backup", replay=[audit], environ=KEY)
    assert "may work again" in str(caught.value)
    assert "refuse this store until a restore finishes" in str(caught.value)
    with pytest.raises(RestoreUnfinished, match="has not finished"):
        await Runtime.open(config, environ=KEY)
    with pytest.raises(RestoreUnfinished):
        await take_backup(config, tmp_path / "later", KEY)

    await restore_backup(config, tmp_path / "backup", force=True, replay=[audit], environ=KEY)
    assert len(await token_ids(config)) == 3  # a restore finished: served again


async def test_a_refused_restore_keeps_the_mark_of_an_unfinished_one(
    backend: Backend, config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore stops half-way; the next one is refused (SQLite: the file is open
    elsewhere; PostgreSQL: an instance serves the schema) and must leave the first one's
    mark, or the store would be served without its replay."""
    await backed_up(config, tmp_path / "backup")

    async def store_gone(*_: object, **__: object) -> None:
        raise StoreUnavailable("connection lost")

    with monkeypatch.context() as patched:
        patched.setattr("authsvc.backup.commands.replay_audit", store_gone)
        with pytest.raises(SnapshotError):
            await restore_backup(config, tmp_path / "backup", replay=[], force=True, environ=KEY)
    first = (await open_store(config.store).key_state()).restore_began
    assert first is not None
    in_use = await _hold_in_use(backend, config)
    try:
        with pytest.raises(SnapshotRefused, match="in use"):
            await restore_backup(config, tmp_path / "backup", force=True, environ=KEY)
    finally:
        await in_use()
    assert (await open_store(config.store).key_state()).restore_began == first


async def _hold_in_use(backend: Backend, config: Config) -> Callable[[], Awaitable[None]]:
    """Make the store "in use" for a restore; the way to let it go."""
    if isinstance(backend, PostgresBackend):
        conn = await connect(backend.url)  # an instance's serving lock, as listen() takes it
        await conn.execute(
            "SELECT pg_advisory_lock_shared($1, hashtext(current_schema()))", SERVING_LOCK
        )
        return conn.close
    raw = sqlite3.connect(config.store.removeprefix("sqlite:///"))
    raw.execute("SELECT count(*) FROM tokens").fetchone()

    async def release() -> None:
        raw.close()

    return release


async def test_a_backup_of_a_store_being_restored_is_refused(
    config: Config, tmp_path: Path
) -> None:
    """The snapshot itself checks the mark (a restore marking the store between the key
    check and the snapshot): a backup never captures a store without its replay."""
    await backed_up(config, tmp_path / "first")
    snapshots = open_snapshots(config.store)
    await snapshots.mark_restoring("2026-12-02T10:00:00Z")
    (tmp_path / "second").mkdir()
    with pytest.raises(RestoreUnfinished):
        await snapshots.take(tmp_path / "second")
