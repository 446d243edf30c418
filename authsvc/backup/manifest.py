"""``DIR/manifest.json``: what a backup folder holds, written last (a folder without it is
an unfinished backup) and read first by ``restore``.

It names the authsvc version, the store's kind and schema version, the moment the backup
began (RFC 3339 and epoch seconds), the token count and the key's check value, and the
snapshot file with its SHA-256. Never the key, a secret or a store URL's password.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authsvc.rules.durations import rfc3339
from authsvc.service.secret_key import fsync_folder
from authsvc.store.snapshots import Snapshot

MANIFEST = "manifest.json"
FORMAT = "authsvc-backup/1"
_MAX_MANIFEST = 64 * 1024


class ManifestError(Exception):
    """The folder holds no readable authsvc backup manifest; the message says why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """One backup: the snapshot, and where and when it comes from."""

    authsvc_version: str
    store_kind: str
    store: str  # as messages name it: a file, or postgresql://host:port/db
    time: float  # when the backup began: the audit replay starts there
    snapshot: Snapshot
    sha256: str

    def as_json(self) -> dict[str, Any]:
        """The manifest file's content."""
        return {
            "format": FORMAT,
            "authsvc_version": self.authsvc_version,
            "store_kind": self.store_kind,
            "store": self.store,
            "schema_version": self.snapshot.schema_version,
            "time": rfc3339(self.time),
            "time_epoch": self.time,
            "token_count": self.snapshot.token_count,
            "key_check": self.snapshot.key_check,
            "file": self.snapshot.file,
            "sha256": self.sha256,
            "store_facts": dict(self.snapshot.facts),
        }

    @classmethod
    def of(cls, data: object) -> Manifest:
        """The manifest in ``data`` (parsed JSON); raise ManifestError."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"it is not an authsvc backup manifest of format {FORMAT}")
        try:
            snapshot = Snapshot(
                file=_text(data, "file"),
                token_count=_count(data, "token_count"),
                key_check=None if data.get("key_check") is None else _text(data, "key_check"),
                schema_version=_count(data, "schema_version"),
                facts=_mapping(data, "store_facts"),
            )
            manifest = cls(
                authsvc_version=_text(data, "authsvc_version"),
                store_kind=_text(data, "store_kind"),
                store=_text(data, "store"),
                time=_epoch(data, "time_epoch"),
                snapshot=snapshot,
                sha256=_text(data, "sha256"),
            )
        except (KeyError, TypeError) as error:
            raise ManifestError(f"its field {error.args[0]} is missing or wrong") from None
        if Path(snapshot.file).name != snapshot.file or snapshot.file.startswith("."):
            raise ManifestError("its file is not a plain file name in the backup folder")
        return manifest


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise KeyError(name)
    return value


def _count(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KeyError(name)
    return value


def _epoch(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise KeyError(name)
    return float(value)


def _mapping(data: dict[str, Any], name: str) -> dict[str, object]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise KeyError(name)
    return value


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks (dumps may be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write the manifest (mode 0600) under a temporary name, sync it, rename it."""
    temp = folder / f".{MANIFEST}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest.as_json(), handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    temp.rename(folder / MANIFEST)
    fsync_folder(folder)


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the backup in ``folder``; raise ManifestError."""
    path = folder / MANIFEST
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_MANIFEST + 1)
    except FileNotFoundError:
        raise ManifestError(
            f"{folder} holds no {MANIFEST}: it is no (finished) authsvc backup"
        ) from None
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror or error}") from None
    if len(raw) > _MAX_MANIFEST:
        raise ManifestError(f"{path} is too large to be an authsvc backup manifest")
    try:
        data = json.loads(raw)
    except ValueError:
        raise ManifestError(f"{path} is not JSON") from None
    try:
        return Manifest.of(data)
    except ManifestError as error:
        raise ManifestError(f"{path}: {error}") from None
