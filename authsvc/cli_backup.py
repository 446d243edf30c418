"""``authsvc backup DIR`` and ``authsvc restore DIR [--force] [--replay-audit FILE]``
(docs/cli.md, docs/operations.md): their arguments, output and exit statuses; the work is
:mod:`authsvc.backup.commands`'.

Exit status 2 for a refusal (nothing was changed: a folder not empty, a store not empty, a
key that is not the backup's, a damaged or newer backup), 1 when the work failed (pg_dump
missing or failing, the store unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from authsvc.backup.commands import BackupRefused, Restored, restore_backup, take_backup
from authsvc.backup.manifest import Manifest
from authsvc.config import Config
from authsvc.rules.durations import rfc3339
from authsvc.service.secret_key import ENV_VAR
from authsvc.store.snapshots import SnapshotError, SnapshotRefused

COMMANDS = ("backup", "restore")
_EXIT_FAILURE = 1
_EXIT_REFUSED = 2


def add_backup_parsers(commands: Any) -> None:
    """The ``backup`` and ``restore`` commands on ``commands``, the parser's sub-parsers."""
    backup = commands.add_parser(
        "backup",
        help="write a consistent backup of the token store into DIR while serve runs "
        "(not the key: back that up separately)",
    )
    backup.add_argument("dir", type=Path, metavar="DIR", help="a new or empty folder")
    restore = commands.add_parser(
        "restore", help="restore a backup into the configured store (absent or empty)"
    )
    restore.add_argument("dir", type=Path, metavar="DIR", help="a folder made by authsvc backup")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace a store that holds tokens (they are lost)",
    )
    restore.add_argument(
        "--replay-audit",
        type=Path,
        action="append",
        metavar="FILE",
        help="re-apply the audit log's changes made after the backup: deleted, rotated "
        "and revoked tokens stay dead, permission changes are made again; repeat it for "
        "the logs of every host and the rotated files since the backup (applied in time "
        "order)",
    )


def run_backup_command(args: argparse.Namespace, config: Config) -> int:
    """Run ``backup`` or ``restore``; the exit status. KeyRefused and StoreError pass on
    to the CLI's handler."""
    try:
        if args.command == "backup":
            manifest = asyncio.run(take_backup(config, args.dir))
            _print_backup(args.dir, manifest, config)
        else:
            restored = asyncio.run(
                restore_backup(config, args.dir, force=args.force, replay=args.replay_audit)
            )
            _print_restore(args.dir, restored, args.replay_audit)
    except (BackupRefused, SnapshotRefused) as refused:
        return _fail(str(refused), _EXIT_REFUSED)
    except SnapshotError as error:
        return _fail(str(error), _EXIT_FAILURE)
    return 0


def _fail(message: str, status: int) -> int:
    print(f"authsvc: {message}", file=sys.stderr)
    return status


def _print_backup(folder: Path, manifest: Manifest, config: Config) -> None:
    snapshot = manifest.snapshot
    print(
        f"backed up {snapshot.token_count} token(s) of {manifest.store} to {folder} "
        f"(schema version {snapshot.schema_version}, {rfc3339(manifest.time)})"
    )
    where = (
        f"the environment variable {ENV_VAR}"
        if ENV_VAR in os.environ
        else f"the key file {config.secret_key_file}"
    )
    print(
        f"the HMAC key is NOT in the backup: it is {where}. Back it up separately and keep "
        "it apart from this folder: without it no token of this backup works, and one "
        "stolen copy should not hold both"
    )


def _print_restore(folder: Path, restored: Restored, replayed: list[Path] | None) -> None:
    manifest = restored.manifest
    print(
        f"restored {restored.tokens} token(s) from {folder} "
        f"(backup of {rfc3339(manifest.time)}) into {restored.store}"
        if restored.tokens == manifest.snapshot.token_count
        else f"restored {restored.tokens} token(s) from {folder}, but its manifest says "
        f"{manifest.snapshot.token_count}: check the store"
    )
    report = restored.replay
    if report is None or replayed is None:
        print(
            "no audit log replayed: changes made after the backup (deletions, rotations, "
            "revocations) are undone; give --replay-audit with the audit log to make them again"
        )
        return
    files = ", ".join(map(str, replayed))
    print(f"replayed {report.applied} change(s) recorded in {files} after the backup")
    if report.starts_after_backup:
        print(
            "  WARNING: no record in these files is older than the backup: the log may have "
            "been rotated since, or another host's log is missing. Give every audit log "
            "file written since the backup (--replay-audit once each), or changes made "
            "between are undone"
        )
    lines = (
        ("deleted (deleted or revoked after the backup)", report.deleted),
        (
            "deleted (rotated after the backup: its new secret is in no backup; issue a new token)",
            report.rotated,
        ),
        (
            "deleted (a previous secret revoked as leaked after the backup; issue a new token)",
            report.leaked_previous,
        ),
        ("permissions / rate limit set again", report.updated),
        ("LOST (created after the backup: issue them again)", report.lost),
        ("grace ended (its new secret was in use after the backup)", report.graces_ended),
    )
    for what, ids in lines:
        if ids:
            print(f"  {what}: {', '.join(ids)}")
    if report.unreadable:
        shown = ", ".join(report.unreadable[:20])
        more = " ..." if len(report.unreadable) > 20 else ""
        print(f"  unreadable lines skipped: {len(report.unreadable)} ({shown}{more})")
