"""The work of ``authsvc backup DIR`` and ``authsvc restore DIR`` (their output and exit
statuses: :mod:`authsvc.cli_backup`).

A backup holds the store and never the key: the key is backed up separately and kept
apart (docs/operations.md). Both commands check the key like every command that opens the
store (:mod:`authsvc.service.key_check`); a restore also refuses a key whose check value is
not the backup's, so it cannot bring back tokens that no key at hand can verify.

A restore changes nothing until every check has passed: the manifest, the snapshot file's
SHA-256, the schema version, the key, the audit log to replay (readable), and the target
store (absent or holding no token, unless ``force``, and served by no instance). From
then until its audit record, the store is marked as restoring (``Snapshots.mark_restoring``),
so that a restore stopped half-way leaves a store that serve and every command refuse.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from authsvc import __version__
from authsvc.backup.manifest import (
    Manifest,
    ManifestError,
    file_sha256,
    read_manifest,
    write_manifest,
)
from authsvc.backup.replay import ReplayReport, replay_audit
from authsvc.config import Config
from authsvc.rules.durations import rfc3339
from authsvc.service.audit import AuditLog
from authsvc.service.key_check import (
    check_key,
    check_value,
    open_checked,
    same_check,
    tokens_held,
)
from authsvc.service.secret_key import find_secret_key, key_source
from authsvc.service.token_service import CLI_ACTOR
from authsvc.store import TokenStore, open_snapshots, open_store
from authsvc.store.snapshots import SnapshotError, SnapshotRefused, Snapshots


class BackupRefused(Exception):
    """The backup or restore cannot go ahead as asked; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did."""

    manifest: Manifest
    store: str  # the store restored into, as messages name it
    tokens: int  # in the store after the restore, before the replay
    replay: ReplayReport | None


async def take_backup(
    config: Config, folder: Path, environ: Mapping[str, str] = os.environ
) -> Manifest:
    """Back the configured store up into ``folder`` (absent or empty; made mode 0700)."""
    store = open_store(config.store)
    if not await store.exists():  # opening would create an empty store, and back that up
        raise BackupRefused(
            f"there is no token store at {store.name} to back up (SQLite: no such file; "
            "PostgreSQL: no authsvc tables on its search_path); check "
            f"the store setting in {config.path}"
        )
    await open_checked(store, config.secret_key_file, environ)
    try:
        await check_key(store, config.secret_key_file, environ)
    finally:
        await store.close()
    made = _prepare(folder)
    began = time.time()
    snapshots = open_snapshots(config.store)
    try:
        snapshot = await snapshots.take(folder)
        sha256 = file_sha256(folder / snapshot.file)
        manifest = Manifest(__version__, snapshots.kind, store.name, began, snapshot, sha256)
        write_manifest(folder, manifest)
    except BaseException:
        _clear(folder, remove=made)  # never leave a backup that looks usable and is not
        raise
    return manifest


async def restore_backup(
    config: Config,
    folder: Path,
    *,
    force: bool = False,
    replay: Sequence[Path] | None = None,
    environ: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.time,
) -> Restored:
    """Restore the backup in ``folder`` into the configured store (see the module)."""
    try:
        manifest = read_manifest(folder)
    except ManifestError as error:
        raise BackupRefused(str(error)) from None
    snapshots = open_snapshots(config.store)
    store = open_store(config.store)
    _check_backup(folder, manifest, snapshots.kind, store.schema_version)
    _check_key(manifest, config, environ)
    for path in replay or ():
        _check_readable(path)
    async with snapshots.exclusive():  # no instance serves the store until the replay is done
        return await _restore(
            config,
            store,
            folder,
            manifest,
            snapshots,
            force=force,
            replay=replay,
            environ=environ,
            clock=clock,
        )


async def _restore(
    config: Config,
    store: TokenStore,
    folder: Path,
    manifest: Manifest,
    snapshots: Snapshots,
    *,
    force: bool,
    replay: Sequence[Path] | None,
    environ: Mapping[str, str],
    clock: Callable[[], float],
) -> Restored:
    """The restore itself, once the store is held for it."""
    state = await store.key_state()  # read as it is: nothing migrated before a refusal
    held = state.held
    if held and not force:
        raise BackupRefused(
            f"the token store {store.name} holds {held} token(s): a restore replaces the "
            "whole store; give --force to replace them (they are lost), or configure an "
            "empty store"
        )
    # Marked before the snapshot goes in, unmarked after the audit record: a restore that
    # stops anywhere between (an error, Ctrl-C, a crash) leaves a store that serve and every
    # command refuse (RestoreUnfinished), never one served without its replay.
    await snapshots.mark_restoring(rfc3339(clock()))  # keeps an unfinished restore's mark
    try:
        await snapshots.put_back(folder, manifest.snapshot)
    except SnapshotRefused:
        if state.restore_began is None:
            await snapshots.unmark_restoring()  # refused before it changed anything
        raise
    except Exception as error:
        raise _unfinished(store.name, error) from None
    try:
        restored, report = await _replay(
            config, store, manifest, replay=replay, environ=environ, clock=clock
        )
        await snapshots.unmark_restoring()
    except Exception as error:
        raise _unfinished(store.name, error) from None
    return Restored(manifest, store.name, restored, report)


def _unfinished(store_name: str, error: Exception) -> SnapshotError:
    """A failure once the store was marked as restoring: it stays refused."""
    return SnapshotError(
        f"the restore into {store_name} did not finish ({error}): the backup may be in place "
        "without the changes made after it, so tokens deleted, rotated or revoked since may "
        "work again; serve and every command refuse this store until a restore finishes: "
        "run the same restore again with --force (docs/operations.md, Restoring)"
    )


async def _replay(
    config: Config,
    store: TokenStore,
    manifest: Manifest,
    *,
    replay: Sequence[Path] | None,
    environ: Mapping[str, str],
    clock: Callable[[], float],
) -> tuple[int, ReplayReport | None]:
    """Open the restored store (an older snapshot's schema is migrated), check its key,
    replay the audit logs, and audit the restore; (tokens restored, the replay's report)."""
    await store.open()
    try:
        await check_key(store, config.secret_key_file, environ)
        restored = await tokens_held(store)
        report = None
        if replay is not None:
            report = await replay_audit(store, replay, manifest.time, now=clock)
    finally:
        await store.close()
    details: dict[str, object] = {
        "backup_time": rfc3339(manifest.time),
        "tokens_restored": restored,
        "replayed": None if replay is None else [str(path) for path in replay],
    }
    if report is not None:
        details.update(report.counts())
    AuditLog(config.audit_log, clock).write("store.restore", actor=CLI_ACTOR, details=details)
    return restored, report


def _check_backup(folder: Path, manifest: Manifest, kind: str, supported: int) -> None:
    """The backup fits this store and this authsvc, and its file is intact."""
    if manifest.store_kind != kind:
        raise BackupRefused(
            f"the backup in {folder} is of a {manifest.store_kind} store, but the configured "
            f"store is {kind}: restore it into a store of its kind"
        )
    if manifest.snapshot.schema_version > supported:
        raise BackupRefused(
            f"the backup in {folder} has schema version {manifest.snapshot.schema_version}, "
            f"newer than this authsvc supports ({supported}): upgrade authsvc "
            f"(the backup was made by authsvc {manifest.authsvc_version})"
        )
    path = folder / manifest.snapshot.file
    try:
        intact = file_sha256(path) == manifest.sha256
    except OSError as error:
        raise BackupRefused(
            f"cannot read the backup file {path}: {error.strerror or error}"
        ) from None
    if not intact:
        raise BackupRefused(f"the backup file {path} is damaged: its SHA-256 is not the manifest's")


def _check_key(manifest: Manifest, config: Config, environ: Mapping[str, str]) -> None:
    """The configured key is the backup's (nothing to compare for a backup without tokens
    and without a check value)."""
    expected = manifest.snapshot.key_check
    if expected is None and not manifest.snapshot.token_count:
        return
    source = key_source(config.secret_key_file, environ)
    key = find_secret_key(config.secret_key_file, environ)
    if key is None:
        raise BackupRefused(
            f"{source} is missing: restore the key file that belongs to this backup first "
            "(it is kept apart from the backup); without it no restored token would work"
        )
    if expected is None or not same_check(expected, check_value(key)):
        raise BackupRefused(
            f"the backup was made with another key than {source}: with this key every "
            "restored token would answer 401. Restore the key file that belongs to this "
            "backup (or point secret_key_file at it); nothing was changed"
        )


def _check_readable(path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise BackupRefused(
            f"cannot read the audit log {path}: {error.strerror or error}"
        ) from None


def _prepare(folder: Path) -> bool:
    """Make ``folder`` ready (mode 0700); whether it was made here. Refuse a folder that
    holds anything."""
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise BackupRefused(f"{folder} exists and is not a folder")
        if any(folder.iterdir()):
            raise BackupRefused(f"{folder} is not empty: back up into a new or empty folder")
        folder.chmod(0o700)
        return False
    folder.mkdir(mode=0o700, parents=True)
    folder.chmod(0o700)  # whatever the umask
    return True


def _clear(folder: Path, *, remove: bool) -> None:
    """Undo an unfinished backup: remove the folder made for it, or empty the one given."""
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for each in folder.iterdir():
        with contextlib.suppress(OSError):
            each.unlink()
