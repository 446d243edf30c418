"""The HMAC key under which token digests are stored.

``AUTHSVC_SECRET_KEY`` (at least 32 characters) wins over the key file. The file is
created with mode 0600 on first use (for a store without tokens only: see
:mod:`authsvc.service.key_check`). The key is written and fsynced under a temporary
name, then hard-linked to its final name: ``link`` fails if the name exists, so a CLI call
and a starting service racing to create it agree on one key, and nobody ever reads a
half-written file (a plain ``O_EXCL`` create leaves an empty file visible until written).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "AUTHSVC_SECRET_KEY"
MIN_ENV_KEY_LENGTH = 32
MIN_FILE_KEY_BYTES = 32
_MAX_KEY_FILE_SIZE = 4096  # a key file holds 65 bytes; never slurp some other big file

log = logging.getLogger("authsvc.secret_key")


class SecretKeyError(Exception):
    """The key cannot be read or created; the message says what to do."""


def load_secret_key(path: Path, environ: Mapping[str, str] = os.environ) -> bytes:
    """The key from the environment, else from ``path`` (created if absent).

    Only for a store that holds no token: otherwise a missing key must be refused, not
    replaced (:mod:`authsvc.service.key_check` decides, with :func:`find_secret_key`)."""
    key = find_secret_key(path, environ)
    if key is not None:
        return key
    _create_key_file(path)
    return _read_key_file(path)


def find_secret_key(path: Path, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The key from the environment, else from ``path``; None when neither holds one
    (nothing is created)."""
    from_env = environ.get(ENV_VAR)
    if from_env is not None:
        if len(from_env) < MIN_ENV_KEY_LENGTH:
            raise SecretKeyError(
                f"{ENV_VAR} must hold at least {MIN_ENV_KEY_LENGTH} characters (for example "
                "the output of: python3 -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return from_env.encode()
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        return None


def key_source(path: Path, environ: Mapping[str, str] = os.environ) -> str:
    """Where the key comes from, as messages name it (never the key itself)."""
    return ENV_VAR if ENV_VAR in environ else f"the key file {path}"


def _create_key_file(path: Path) -> None:
    """Create ``path`` holding a fresh key, unless another process creates it first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise SecretKeyError(
            f"cannot create the secret key file {path}: {error.strerror or error}"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return  # another process created it first: its key is the key
        fsync_folder(path.parent)  # a key lost in a crash would orphan every token
    except OSError as error:
        raise SecretKeyError(
            f"cannot create the secret key file {path}: {error.strerror or error}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    log.info("created a new secret key file %s (mode 0600)", path)


def fsync_folder(folder: Path) -> None:
    """Make a file created or renamed in ``folder`` survive a crash (its entry synced)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(_MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError:
        raise
    except OSError as error:
        reason = "it is a folder" if isinstance(error, IsADirectoryError) else error.strerror
        raise SecretKeyError(f"cannot read the secret key file {path}: {reason or error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret key file %s is readable by others: chmod 600 it", path)
    try:
        if len(data) > _MAX_KEY_FILE_SIZE:
            raise ValueError("too large")
        key = bytes.fromhex(data.decode("ascii").strip())
    except ValueError:  # UnicodeDecodeError is a ValueError
        raise SecretKeyError(
            f"the secret key file {path} does not hold a hex key; delete it only if no token "
            "was issued with it (every existing token would stop working)"
        ) from None
    if len(key) < MIN_FILE_KEY_BYTES:
        raise SecretKeyError(
            f"the secret key in {path} is shorter than {MIN_FILE_KEY_BYTES} bytes; delete it "
            "only if no token was issued with it (every existing token would stop working)"
        )
    return key
