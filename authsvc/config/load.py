"""YAML configuration → one immutable, pre-compiled :class:`Config`.

Loaded with a safe loader; every key validated; IP filters and endpoint templates
compiled once. Errors name the file, the key and (where there is one) the line.

The file is composed into YAML nodes (never constructed into objects), so that every
error can carry a line number and no tag can ever instantiate anything: a tag other than
the plain YAML ones (``!!python/...``, ``!!binary``, ``!custom``) is an error. Every
problem found is reported (ordered by line), not just the first. Messages read
``<file>: <dotted.key> (line N): <sentence>``, list items keyed by index
(``permissions.ManageUsers.endpoints.2``); problems of the whole file read
``<file>: line N: <sentence>``. Decisions where docs/configuration.md is silent:

- A section given but left empty (``cache:``) means "all defaults"; ``permissions`` and
  ``trusted_proxies`` must be written out (``trusted_proxies: []`` trusts no peer).
- ``description`` is optional (default ``""``); duplicate keys and duplicate endpoint
  templates are errors; YAML merge keys (``<<``) are not supported.
- Whole numbers are plain decimal (``100000`` or ``100_000``); durations must be strings
  with a unit, so ``ttl: 5`` is an error. ``cache.ttl`` is at most 1h.
- Relative paths (sqlite store, key file, ``unix:`` sockets) are joined to the file's
  folder and normalised lexically (``config/../var`` becomes ``var``).
- ``listen.auth`` and ``listen.admin`` must differ; ports are 1-65535 (no port 0).
- The reserved permissions are added after the catalog, in Config.permissions' order.
- A store URL is never echoed in an error (a PostgreSQL URL may hold a password).
"""

from __future__ import annotations

from pathlib import Path

from authsvc.config.errors import ConfigError
from authsvc.config.model import Config
from authsvc.config.sections import MAX_FILE_SIZE, read_config


def parse_config(text: str, path: Path) -> Config:
    """Validate and compile ``text`` as if read from ``path``; raise ConfigError."""
    return read_config(text, path)


def load_config(path: Path) -> Config:
    """Read, validate and compile the file at ``path``; raise ConfigError."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_SIZE + 1)
    except OSError as error:
        reason = "it is a folder" if isinstance(error, IsADirectoryError) else error.strerror
        raise ConfigError([f"{path}: cannot read the configuration: {reason or error}"]) from None
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError([f"{path}: the file is larger than 1 MiB; is it the configuration?"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError([f"{path}: line {line}: the file is not valid UTF-8 text"]) from None
    return parse_config(text, path)
