"""The HMAC key under which token digests are stored.

``AUTHSVC_SECRET_KEY`` (at least 32 characters) wins over the key file. The file is
created with mode 0600 on first use, atomically (``O_EXCL``), so a CLI call and a
starting service cannot create two different keys.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "AUTHSVC_SECRET_KEY"
MIN_ENV_KEY_LENGTH = 32
MIN_FILE_KEY_BYTES = 32

log = logging.getLogger("authsvc.secret_key")


class SecretKeyError(Exception):
    """The key cannot be read or created; the message says what to do."""


def load_secret_key(path: Path, environ: Mapping[str, str] = os.environ) -> bytes:
    """The key from the environment, else from ``path`` (created if absent)."""
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
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)  # another process created it first
    except OSError as error:
        raise SecretKeyError(
            f"cannot create the secret key file {path}: {error.strerror}"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    log.info("created a new secret key file %s (mode 0600)", path)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        raise SecretKeyError(f"cannot read the secret key file {path}: {error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret key file %s is readable by others: chmod 600 it", path)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SecretKeyError(
            f"the secret key file {path} does not hold a hex key; delete it only if no token "
            "was issued with it (every existing token would stop working)"
        ) from None
    if len(key) < MIN_FILE_KEY_BYTES:
        raise SecretKeyError(f"the secret key in {path} is shorter than {MIN_FILE_KEY_BYTES} bytes")
    return key
